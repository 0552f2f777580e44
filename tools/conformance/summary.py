"""Summaries of Python modules read with ``ast``: the names a module binds, its classes and the
signatures of its functions and methods. A summary is plain JSON data, so that it can be cached.

A binding is a list whose first item says what the name is:

- ``["module", "a.b"]``: ``import a.b as name``;
- ``["from", "a.b", "c"]``: ``from a.b import c`` (a submodule or a name of ``a.b``);
- ``["class", "Outer.Inner"]`` / ``["function", "f"]``: defined here (see ``classes`` /
  ``functions``, keyed by qualified name);
- ``["alias", "a.b.c"]``: ``name = a.b.c``, a dotted name read in this module;
- ``["value"]``: anything else (its type is not followed).

``dynamic`` says the module binds names that cannot be read (a module ``__getattr__``,
``globals()[name] = ...``). ``all`` is the module's ``__all__`` when it is a literal list (what ``import *`` takes), else
``None``. A class summary has ``bases`` (dotted names, ``None`` for a base that is not a plain name),
``members`` (name -> ``["method", qualname]``, ``["static", qualname]``, ``["classmethod",
qualname]``, ``["property"]``, ``["attr"]`` or ``["class", qualname]``) and ``open`` (its
``__getattr__`` hands out attributes it does not define). A function summary has ``params``
(``[name, kind, has_default]``, kind one of ``pos``, ``kwonly``, ``varargs``, ``varkw``) and,
for a function taking ``**kwargs``, ``kwargs``: the keywords it reads from them (``accepts``),
the base-class methods it passes them to (``forward``: ``[method, [keywords it sets itself]]``)
and whether it hands them anywhere else (``open``: then any keyword is accepted).
"""
import ast

#: Decorators that make a method something other than a plain function.
_KIND_DECORATORS = {"staticmethod": "static", "classmethod": "classmethod", "property": "property",
                    "cached_property": "property", "abstractproperty": "property"}


def dotted(node):
    """``a.b.c`` for a chain of names and attributes, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def absolute_module(module, is_package, level, name):
    """The module a ``from`` import names (resolving ``level`` leading dots)."""
    if not level:
        return name
    parts = module.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(parts + ([name] if name else []))


def summarize(source, module, is_package=False):
    """The summary of one module's source (see the module docstring)."""
    tree = ast.parse(source)
    summary = {"bindings": {}, "star": [], "classes": {}, "functions": {}, "dynamic": False,
               "all": _public_names(tree)}
    _block(tree.body, summary, module, is_package)
    if any(isinstance(node, ast.Call) and dotted(node.func) in ("globals", "vars", "locals")
           for node in ast.walk(tree)):
        summary["dynamic"] = True  # names bound through globals()[...] cannot be listed
    if module.endswith("_pb2"):
        from tools.conformance import protos

        protos.add_messages(summary, tree, module)
    return summary


def _public_names(tree):
    """A module's ``__all__`` when it is a literal list of names (``None`` if absent or computed)."""
    found = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            if "__all__" in [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]:
                return None  # changed some other way (__all__.extend(...))
            continue
        value = node.value
        if not isinstance(value, (ast.List, ast.Tuple)) or \
                not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
            return None
        names = [e.value for e in value.elts]
        found = (found or []) + names if isinstance(node, ast.AugAssign) else names
    return found


def _bind(bindings, name, binding):
    """Bind ``name``; a later ``["value"]`` does not hide an earlier, better known binding."""
    if binding == ["value"] and name in bindings:
        return
    bindings[name] = binding


def _block(statements, summary, module, is_package):
    """Module-level statements, including those inside ``try``, ``if`` and ``with`` blocks."""
    bindings = summary["bindings"]
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    _bind(bindings, alias.asname, ["module", alias.name])
                else:
                    head = alias.name.split(".")[0]
                    _bind(bindings, head, ["module", head])
        elif isinstance(node, ast.ImportFrom):
            base = absolute_module(module, is_package, node.level, node.module)
            for alias in node.names:
                if alias.name == "*":
                    summary["star"].append(base)
                else:
                    _bind(bindings, alias.asname or alias.name, ["from", base, alias.name])
        elif isinstance(node, ast.ClassDef):
            _bind(bindings, node.name, ["class", node.name])
            _class(node, node.name, summary)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _bind(bindings, node.name, ["function", node.name])
            summary["functions"][node.name] = function_summary(node)
            if node.name == "__getattr__":
                summary["dynamic"] = True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            _assignment(node, bindings)
        elif isinstance(node, ast.Try):
            for part in [node.body, node.orelse, node.finalbody] + [h.body for h in node.handlers]:
                _block(part, summary, module, is_package)
        elif isinstance(node, (ast.If, ast.With)):
            _block(node.body, summary, module, is_package)
            _block(getattr(node, "orelse", []), summary, module, is_package)


def _assignment(node, bindings):
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    value = node.value
    source = dotted(value) if value is not None else None
    for target in targets:
        names = [target] if isinstance(target, ast.Name) else getattr(target, "elts", [])
        for name in names:
            if isinstance(name, ast.Name):
                _bind(bindings, name.id, ["alias", source] if source and name is target else ["value"])


def _bases(node):
    """Dotted names of a class's bases (``six.with_metaclass(meta, *bases)`` unwrapped)."""
    bases = []
    for base in node.bases:
        if isinstance(base, ast.Call) and (dotted(base.func) or "").endswith("with_metaclass"):
            bases.extend(dotted(arg) for arg in base.args[1:])
        else:
            bases.append(dotted(base))
    return bases


def _class(node, qualname, summary):
    members = {}
    info = {"name": node.name, "bases": _bases(node), "members": members, "open": False}
    summary["classes"][qualname] = info
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _method(item, qualname, info, summary)
        elif isinstance(item, ast.ClassDef):
            members[item.name] = ["class", qualname + "." + item.name]
            _class(item, qualname + "." + item.name, summary)
        elif isinstance(item, (ast.Assign, ast.AnnAssign)):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            for target in targets:
                for name in [target] + list(getattr(target, "elts", [])):
                    if isinstance(name, ast.Name):
                        members.setdefault(name.id, ["attr"])
    for name in _instance_attributes(node):
        members.setdefault(name, ["attr"])
    info["open"] = info["open"] or _sets_unnamed_attributes(node)


def _method(node, class_qualname, info, summary):
    qualname = class_qualname + "." + node.name
    kind = "method"
    for decorator in node.decorator_list:
        name = dotted(decorator) or ""
        if name.endswith(".setter") or name.endswith(".deleter"):
            return  # the property's getter is its member
        kind = _KIND_DECORATORS.get(name.split(".")[-1], kind)
    summary["functions"][qualname] = function_summary(node)
    info["members"][node.name] = [kind] if kind == "property" else [kind, qualname]
    if node.name in ("__getattr__", "__getattribute__"):
        info["open"] = info["open"] or _delegates(node)
        for item in ast.walk(node):
            if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value.isidentifier():
                info["members"].setdefault(item.value, ["attr"])


def _delegates(node):
    """Whether ``__getattr__`` returns attributes of another object (``getattr(x, name)``)."""
    param = node.args.args[1].arg if len(node.args.args) > 1 else None
    for item in ast.walk(node):
        if (isinstance(item, ast.Call) and dotted(item.func) == "getattr" and len(item.args) > 1
                and isinstance(item.args[1], ast.Name) and item.args[1].id == param):
            return True
    return False


def _instance_attributes(node):
    """Attributes a class's methods set on ``self`` (``self.x = ...``, ``setattr(self, "x", ...)``),
    and the hyper-parameters an optimizer's ``self._set_hyper("x", ...)`` makes attributes."""
    found = set()
    for item in ast.walk(node):
        targets = []
        if isinstance(item, ast.Assign):
            targets = item.targets
        elif isinstance(item, (ast.AugAssign, ast.AnnAssign)):
            targets = [item.target]
        for target in targets:
            for part in [target] + list(getattr(target, "elts", [])):
                if isinstance(part, ast.Attribute) and dotted(part.value) == "self":
                    found.add(part.attr)
        if isinstance(item, ast.Call) and item.args:
            name, args = dotted(item.func), item.args
            if name == "self._set_hyper" and isinstance(args[0], ast.Constant):
                found.add(str(args[0].value))
            elif name == "setattr" and len(args) > 1 and dotted(args[0]) == "self" \
                    and isinstance(args[1], ast.Constant):
                found.add(str(args[1].value))
    return found


def _sets_unnamed_attributes(node):
    """Whether a class's methods set attributes whose names are computed
    (``setattr(self, name, ...)``, ``self.__dict__.update(...)``)."""
    for item in ast.walk(node):
        if isinstance(item, ast.Call):
            name = dotted(item.func)
            if name == "setattr" and len(item.args) > 1 and dotted(item.args[0]) == "self" \
                    and not isinstance(item.args[1], ast.Constant):
                return True
            if name == "self.__dict__.update":
                return True
    return False


def function_summary(node):
    """``{"params": [...], "kwargs": ...}`` of a function definition (module docstring)."""
    args = node.args
    params = []
    positional = list(getattr(args, "posonlyargs", [])) + list(args.args)
    first_default = len(positional) - len(args.defaults)
    for index, arg in enumerate(positional):
        params.append([arg.arg, "pos", index >= first_default])
    if args.vararg:
        params.append([args.vararg.arg, "varargs", True])
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append([arg.arg, "kwonly", default is not None])
    summary = {"params": params, "kwargs": None}
    if args.kwarg:
        params.append([args.kwarg.arg, "varkw", True])
        summary["kwargs"] = _kwargs_use(node, args.kwarg.arg)
    return summary


def _kwargs_use(node, name):
    """What a function does with its ``**name``: see :func:`function_summary`."""
    accepts, allowed, forward, validated = set(), set(), [], False
    handled = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Call):
            callee = dotted(item.func) or ""
            splat = [k for k in item.keywords if k.arg is None and dotted(k.value) == name]
            if splat:
                handled.update(id(k.value) for k in splat)
                target = _forward_target(item.func)
                if target is None:
                    return {"accepts": [], "forward": [], "open": True}
                forward.append([target, sorted(k.arg for k in item.keywords if k.arg)])
            elif callee.split(".")[-1] == "validate_kwargs" and item.args and dotted(item.args[0]) == name:
                validated = True
                handled.add(id(item.args[0]))
            elif callee in (name + ".pop", name + ".get") and item.args and isinstance(item.args[0], ast.Constant):
                accepts.add(str(item.args[0].value))
                handled.add(id(item.func.value))
        elif isinstance(item, ast.Subscript) and dotted(item.value) == name:
            key = item.slice.value if isinstance(item.slice, ast.Constant) else None
            if isinstance(key, str):
                accepts.add(key)
                handled.add(id(item.value))
        elif isinstance(item, ast.Compare) and isinstance(item.left, ast.Constant) \
                and any(dotted(c) == name for c in item.comparators):
            accepts.add(str(item.left.value))
            handled.update(id(c) for c in item.comparators)
        elif isinstance(item, ast.Assign) and isinstance(item.value, ast.Set):
            if all(isinstance(e, ast.Constant) for e in item.value.elts):
                allowed.update(str(e.value) for e in item.value.elts)
    if validated:
        accepts.update(allowed)
    loose = [item for item in ast.walk(node) if isinstance(item, ast.Name) and item.id == name
             and isinstance(item.ctx, ast.Load) and id(item) not in handled]
    return {"accepts": sorted(accepts), "forward": forward, "open": bool(loose) and not validated}


def _forward_target(func):
    """The method ``super(...).m(**kwargs)`` / ``super().m(**kwargs)`` passes keywords to, else ``None``."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) \
            and dotted(func.value.func) == "super":
        return func.attr
    return None
