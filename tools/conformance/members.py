"""Attributes in the project walk (:mod:`.project`): of library modules, classes and instances
(checked), of protobuf messages (fields followed), of the project's own objects."""
from tools.conformance import values as v
from tools.conformance.library import VALUE

#: Attributes every module, class or object has.
_UNIVERSAL = {"__name__", "__file__", "__doc__", "__path__", "__dict__", "__module__", "__spec__",
              "__qualname__", "__package__", "__loader__"}


class Members(object):
    """Mixin of :class:`.project.Walk`: ``attribute(value, name, node, frame)``."""

    def attribute(self, base, name, node, frame):
        if name in _UNIVERSAL:
            return v.FOREIGN
        if isinstance(base, v.Lib):
            return self._library_attribute(base, name, node, frame)
        if isinstance(base, v.Instance):
            return self._instance_attribute(base, name, node, frame)
        if isinstance(base, v.Module):
            env = self.modules.get(base.name, {})
            if name in env:
                return env[name]
            sub = base.name + "." + name
            return self.load_module(sub) if self.module_path(sub) else v.FOREIGN
        if isinstance(base, (v.Objects, v.Class, v.Super)):
            return self._project_attribute(base, name, node, frame)
        if base == v.UNKNOWN:
            self._check_name(name, node, frame)
            return v.UNKNOWN
        return v.FOREIGN

    def _check_name(self, name, node, frame):
        """An attribute of a value of unknown type: report a name of the newer library that the
        checked library nowhere defines (and neither this project, NumPy nor Python's types)."""
        if self.newer_names is None or name.startswith("__"):
            return
        if name in self.newer_names and name not in self.library.names() and name not in self.own_names \
                and name not in self.common_names:
            self.report(node, frame, "%s (not in %s)" % (_shown(node), self.library.label))

    def _missing(self, node, frame, shown, module):
        self.report(node, frame, "%s (not in %s)" % (shown, self.library.label_for(module)))
        return v.UNKNOWN

    def _library_attribute(self, base, name, node, frame):
        shown = base.shown + "." + name
        self.count("attributes", shown)
        kind = base.ref[0]
        if kind == "module":
            ref = self.library.lookup(base.ref[1], name)
            if ref is None:
                return self._missing(node, frame, shown, base.ref[1])
            return v.UNKNOWN if ref == VALUE else v.Lib(ref, shown)
        if kind == "class":
            member = self.library.member(base.ref, name)
            if member is None:
                return self._missing(node, frame, shown, base.ref[1])
            return self._member_value(member, shown, on_class=True)
        return v.UNKNOWN

    def _member_value(self, member, shown, on_class):
        kind, ref = member
        if kind == "class":
            return v.Lib(ref, shown)
        if kind == "classmethod":
            return v.Bound(ref, shown, 1)
        if kind == "static" or (kind == "method" and on_class):
            return v.Lib(ref, shown)
        if kind == "method":
            return v.Bound(ref, shown, 1)
        return v.UNKNOWN

    def _instance_attribute(self, base, name, node, frame):
        if name == "__class__":
            return v.Lib(base.ref, base.shown)
        shown = base.shown + "." + name
        self.count("attributes", shown)
        field = self.library.field(base.ref, name)
        if field is not None:
            return self._field_value(base, field, shown)
        member = self.library.member(base.ref, name)
        if member is None:
            return self._missing(node, frame, shown, base.ref[1])
        return self._member_value(member, shown, on_class=False)

    def _field_value(self, base, field, shown):
        """The value of a protobuf field (message fields are followed)."""
        if field["kind"] != "message":
            return v.FOREIGN
        ref = self.library.proto_class(base.ref[1], field["type"])
        item = v.Instance(ref, shown) if ref else v.UNKNOWN
        if field["map"]:
            return v.Mapping(v.Instance(ref, shown + "[]") if ref else v.UNKNOWN)
        return v.Repeated(v.Instance(ref, shown + "[]") if ref else v.UNKNOWN) if field["repeated"] else item

    def store_attribute(self, base, target, result, frame):
        """``base.name = result``: protobuf messages have only their fields; project objects
        remember what is set on them."""
        name = target.attr
        if isinstance(base, v.Objects):
            for cls in base.classes:
                cls.fields[name] = v.merge(cls.fields.get(name), result)
        elif isinstance(base, v.Instance):
            info = self.library.class_info(base.ref)
            if info is not None and "fields" in info and name not in info["fields"]:
                self._missing(target, frame, base.shown + "." + name, base.ref[1])

    # -- the project's own classes ---------------------------------------------------------

    def project_mro(self, cls):
        """Project classes of ``cls``'s hierarchy (depth first) and its library bases."""
        order, library_bases, unknown = [], [], False
        pending = [cls]
        while pending:
            current = pending.pop(0)
            if current in order:
                continue
            order.append(current)
            for base in current.bases:
                if isinstance(base, v.Class):
                    pending.append(base)
                elif isinstance(base, v.Lib) and base.ref[0] == "class":
                    library_bases.append(base)
                elif base != v.FOREIGN:
                    unknown = True
        return order, library_bases, unknown

    def _project_attribute(self, base, name, node, frame):
        if isinstance(base, v.Objects):
            result = None
            for cls in sorted(base.classes, key=lambda c: c.node.lineno):
                result = v.merge(result, self._class_member(cls, name, base, node, frame, False))
            return result if result is not None else v.FOREIGN
        if isinstance(base, v.Super):
            return self._class_member(base.owner, name, frame.get("self"), node, frame, True)
        return self._class_member(base, name, base, node, frame, False)

    def _class_member(self, cls, name, owner, node, frame, after):
        """``name`` looked up in project class ``cls`` (``after``: past ``cls``, as ``super()``)."""
        order, library_bases, unknown = self.project_mro(cls)
        for current in order[1:] if after else order:
            if name in current.members:
                return _unfolded(self.bind(current.members[name], owner))
            if name in current.fields and not after:
                return _unfolded(current.fields[name])
        for base in library_bases:
            member = self.library.member(base.ref, name)
            if member is not None:
                value = self._member_value(member, base.shown + "." + name, on_class=isinstance(owner, v.Class))
                return value
        if library_bases and not unknown and name not in self.own_names:
            return self._missing(node, frame, library_bases[0].shown + "." + name, library_bases[0].ref[1])
        return v.FOREIGN

    def bind(self, member, owner):
        """A class member seen through ``owner`` (an instance or the class)."""
        if not isinstance(member, v.Function) or member.kind == "lambda":
            return member
        if member.kind == "property":
            return self.returns(member)
        if member.kind == "static" or (isinstance(owner, v.Class) and member.kind != "classmethod"):
            return member
        if member.kind == "classmethod":
            return v.Method(member, member.owner)
        return v.Method(member, owner if isinstance(owner, v.Objects) else v.Objects([member.owner]))


def _unfolded(value):
    """An object's attribute never folds: whatever set it, other code may set it otherwise."""
    return v.FOREIGN if isinstance(value, v.Const) else value


def _shown(node):
    """``a.b.c`` as written, ``...`` for parts that are not names."""
    parts = []
    while hasattr(node, "attr"):
        parts.append(node.attr)
        node = node.value
    parts.append(getattr(node, "id", "..."))
    return ".".join(reversed(parts))
