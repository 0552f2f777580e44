"""A library read from its sources: which names its modules bind, what its classes and
functions accept. Module summaries (:mod:`.summary`) are made on first use and cached as JSON.

References to what a name is (``Ref``), as tuples:

- ``("module", "a.b")``, ``("class", module, qualname)``, ``("function", module, qualname)``;
- :data:`VALUE`: something whose type is not followed (a variable, an outside module);
- ``None``: the library has no such name.
"""
import hashlib
import json
import os
import re

from tools.conformance import summary as summary_module

VALUE = ("value",)
#: Builtin base classes: ``object`` adds nothing; the others have attributes not read here.
_BUILTIN_BASES = {"object": False, "Exception": True, "dict": True, "list": True, "tuple": True,
                  "type": True, "str": True, "int": True, "float": True, "ValueError": True}
#: What a source defines as a name: functions, classes, names and attributes assigned to,
#: optimizer hyper-parameters.
_DEFINED = re.compile(r"(?:\bdef\s+|\bclass\s+|\bself\.|^\s*|_set_hyper\(\s*['\"])([A-Za-z_]\w*)"
                      r"(?=\s*[(:=,'\"]|\s*$)|\.([A-Za-z_]\w*)\s*=(?!=)", re.M)


def defined_names(text):
    """Names a source text defines (a generous reading: see ``_DEFINED``)."""
    return set(name for pair in _DEFINED.findall(text) for name in pair if name)


def module_names(paths):
    """The module and package names of source files (``a/b/c.py``: ``a``, ``b``, ``c``)."""
    names = set()
    for path in paths:
        names.update(part[:-3] if part.endswith(".py") else part for part in path.split("/"))
    return names


def code_version():
    """A hash of the code that makes summaries, part of the cache key."""
    digest = hashlib.sha1()
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("summary.py", "protos.py", "library.py"):
        with open(os.path.join(here, name), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:12]


class Library(object):
    """Questions about a library whose sources are in ``tree`` (a :class:`.sources.SourceTree`).

    Args:
        tree: the sources.
        label: how messages name the library (``TF 1.15.5``).
        cache_path: JSON file for the summaries (``None``: no cache).
        cache_key: what the cached summaries were made from; a file of another key is ignored.
    """

    def __init__(self, tree, label, cache_path=None, cache_key=""):
        self.tree = tree
        self.label = label
        self.cache_path = cache_path
        self.cache_key = "%s/%s" % (cache_key, code_version())
        self._summaries = {}
        self._names = None
        self._dirty = False
        if cache_path and os.path.isfile(cache_path):
            with open(cache_path) as handle:
                data = json.load(handle)
            if data.get("key") == self.cache_key:
                self._summaries = data["summaries"]
                self._names = set(data["names"]) if data.get("names") is not None else None

    def label_for(self, module):
        """How messages name the library a module belongs to."""
        return self.label

    def save(self):
        """Write the cache file if anything new was read."""
        if not (self.cache_path and self._dirty):
            return
        folder = os.path.dirname(self.cache_path)
        if folder and not os.path.isdir(folder):
            os.makedirs(folder)
        temporary = self.cache_path + ".tmp%d" % os.getpid()
        with open(temporary, "w") as handle:
            json.dump({"key": self.cache_key, "summaries": self._summaries,
                       "names": sorted(self._names) if self._names is not None else None}, handle)
        os.replace(temporary, self.cache_path)
        self._dirty = False

    def summary(self, module):
        """The summary of ``module``, ``None`` if the library has no such module."""
        if module not in self._summaries:
            found = self.tree.read(module)
            try:
                self._summaries[module] = summary_module.summarize(found[0], module, found[1]) \
                    if found else None
            except SyntaxError:
                self._summaries[module] = {"bindings": {}, "star": [], "classes": {},
                                           "functions": {}, "dynamic": True}
            self._dirty = True
        return self._summaries[module]

    def names(self):
        """Every name the library's sources define anywhere (:func:`defined_names`)."""
        if self._names is None:
            found = module_names(self.tree.files())
            for path in self.tree.files():
                found |= defined_names(self.tree._text(path) or "")
            self._names = found
            self._dirty = True
        return self._names

    # -- names -----------------------------------------------------------------------------

    def lookup(self, module, name, depth=0):
        """What ``name`` is in ``module`` (a ``Ref``; ``None`` if the module lacks it)."""
        found = self.summary(module)
        if found is None or depth > 40:
            return VALUE if depth > 40 else None
        binding = found["bindings"].get(name)
        if binding is not None:
            return self._binding(module, binding, depth)
        if self.tree.is_module(module + "." + name):
            return ("module", module + "." + name)
        for star in reversed(found["star"]):  # the last ``import *`` binds a name last
            if not name.startswith("_") and self._exports(star, name):
                ref = self.lookup(star, name, depth + 1) if self.tree.is_module(star) else VALUE
                if ref is not None:
                    return ref
        return VALUE if found["dynamic"] else None

    def _exports(self, module, name):
        """Whether ``from module import *`` can bind ``name`` (its literal ``__all__`` says)."""
        found = self.summary(module) if self.tree.is_module(module) else None
        return found is None or found.get("all") is None or name in found["all"]

    def _binding(self, module, binding, depth):
        kind = binding[0]
        if kind == "module":
            return ("module", binding[1]) if self.tree.is_module(binding[1]) else VALUE
        if kind == "from":
            base, name = binding[1], binding[2]
            if self.tree.is_module(base + "." + name):
                return ("module", base + "." + name)
            return self.lookup(base, name, depth + 1) if self.tree.is_module(base) else VALUE
        if kind in ("class", "function"):
            return (kind, module, binding[1])
        if kind == "alias":
            return self.resolve(module, binding[1], depth + 1)
        return VALUE

    def resolve(self, module, name, depth=0):
        """What a dotted ``name`` read in ``module`` is."""
        parts = name.split(".")
        ref = self.lookup(module, parts[0], depth)
        if ref is None and parts[0] in _BUILTIN_BASES:
            return VALUE
        for part in parts[1:]:
            if ref is None or ref == VALUE:
                return ref
            ref = self.attribute(ref, part)
        return ref

    def attribute(self, ref, name):
        """What ``ref.name`` is (a ``Ref``; ``None`` if it has no such attribute)."""
        if ref is None or ref == VALUE:
            return ref
        if ref[0] == "module":
            return self.lookup(ref[1], name)
        if ref[0] == "class":
            member = self.member(ref, name)
            return None if member is None else member[1]
        return VALUE

    # -- classes -----------------------------------------------------------------------------

    def class_info(self, ref):
        found = self.summary(ref[1])
        return found["classes"].get(ref[2]) if found else None

    def bases(self, ref):
        """``(base class refs, open)``: ``open`` when a base is not a class of the library."""
        info = self.class_info(ref)
        found, is_open = [], bool(info and info["open"])
        for base in (info["bases"] if info else []):
            if base in _BUILTIN_BASES:
                is_open = is_open or _BUILTIN_BASES[base]
                continue
            resolved = self.resolve(ref[1], base) if base else VALUE
            if resolved is not None and resolved[0] == "class":
                found.append(resolved)
            else:
                is_open = True
        return found, is_open

    def mro(self, ref):
        """``(classes in method resolution order, open)`` (C3 linearisation)."""
        return self._mro(ref, ())

    def _mro(self, ref, seen):
        if ref in seen:
            return [ref], True
        bases, is_open = self.bases(ref)
        sequences = []
        for base in bases:
            order, base_open = self._mro(base, seen + (ref,))
            sequences.append(order)
            is_open = is_open or base_open
        return [ref] + _merge(sequences + [list(bases)]), is_open

    def member(self, ref, name):
        """``(kind, Ref)`` of a class's attribute ``name`` along its MRO, ``None`` if it has none.

        Kinds: ``method``, ``static``, ``classmethod`` (ref: the function), ``class`` (a nested
        class), ``property`` and ``attr`` (ref: :data:`VALUE`).
        """
        order, is_open = self.mro(ref)
        for cls in order:
            info = self.class_info(cls)
            member = info["members"].get(name) if info else None
            if member is None:
                continue
            if member[0] in ("method", "static", "classmethod"):
                return member[0], ("function", cls[1], member[1])
            if member[0] == "class":
                return "class", ("class", cls[1], member[1])
            return member[0], VALUE
        return ("attr", VALUE) if is_open or name.startswith("__") and name.endswith("__") else None

    def field(self, ref, name):
        """A protobuf message class's field ``name`` (see :mod:`.protos`), or ``None``."""
        info = self.class_info(ref)
        return (info.get("fields") or {}).get(name) if info else None

    def proto_class(self, module, full_name):
        """The class of protobuf message ``full_name`` (``.tensorflow.AttrValue``) as seen from
        ``module``, searching it and the files it depends on."""
        pending, seen = [module], set()
        while pending:
            current = pending.pop(0)
            found = self.summary(current) if current not in seen else None
            seen.add(current)
            if not found:
                continue
            qualname = found.get("proto_names", {}).get(full_name)
            if qualname:
                return ("class", current, qualname)
            pending.extend(found.get("proto_dependencies", []))
        return None

    # -- signatures --------------------------------------------------------------------------

    def function(self, ref):
        found = self.summary(ref[1])
        return found["functions"].get(ref[2]) if found else None

    def keywords(self, ref, depth=0):
        """``(keywords a function accepts, any)``: ``any`` when it accepts every keyword."""
        info = self.function(ref)
        if info is None or depth > 20:
            return set(), True
        names = set(p[0] for p in info["params"] if p[1] in ("pos", "kwonly"))
        extra = info["kwargs"]
        if any(p[1] == "varkw" for p in info["params"]) and extra is None:
            return names, True
        if extra is None:
            return names, False
        if extra["open"]:
            return names, True
        names |= set(extra["accepts"])
        for method, explicit in extra["forward"]:
            target = self._super_method(ref, method)
            if target is None:
                return names, True
            more, anything = self.keywords(target, depth + 1)
            if anything:
                return names, True
            names |= more - set(explicit)
        return names, False

    def _super_method(self, ref, method):
        """The function ``super().method`` reaches from the function ``ref`` (a method)."""
        cls = ("class", ref[1], ref[2].rsplit(".", 1)[0]) if "." in ref[2] else None
        if cls is None or self.class_info(cls) is None:
            return None
        order, _ = self.mro(cls)
        for base in order[1:]:
            info = self.class_info(base)
            member = info["members"].get(method) if info else None
            if member and member[0] in ("method", "static", "classmethod"):
                return ("function", base[1], member[1])
        return None


def _merge(sequences):
    """C3 merge; falls back to first-seen order for inconsistent hierarchies."""
    sequences = [list(s) for s in sequences if s]
    result = []
    while sequences:
        for sequence in sequences:
            head = sequence[0]
            if not any(head in other[1:] for other in sequences):
                break
        else:
            head = sequences[0][0]
        result.append(head)
        sequences = [[c for c in s if c != head] for s in sequences]
        sequences = [s for s in sequences if s]
    return result


class Libraries(object):
    """Several libraries walked at once: ``{top-level package: Library}``; each answers for the
    modules of its packages (the interface of :class:`Library`)."""

    def __init__(self, libraries):
        self.by_package = dict(libraries)
        self.tree = self
        self.label = ", ".join(sorted(set(lib.label for lib in self.by_package.values())))

    def _for(self, module):
        return self.by_package[module.split(".")[0]]

    def is_module(self, module):
        library = self.by_package.get(module.split(".")[0])
        return library is not None and library.tree.is_module(module)

    def label_for(self, module):
        return self._for(module).label

    def names(self):
        return set().union(*(lib.names() for lib in self.by_package.values()))

    def save(self):
        for library in self.by_package.values():
            library.save()

    def lookup(self, module, name, depth=0):
        return self._for(module).lookup(module, name, depth)

    def resolve(self, module, name, depth=0):
        return self._for(module).resolve(module, name, depth)

    def proto_class(self, module, full_name):
        return self._for(module).proto_class(module, full_name)

    def __getattr__(self, name):
        """``attribute``, ``member``, ``field``, ``class_info``, ``function``, ``keywords``,
        ``mro``: questions about a ``Ref``, answered by the library of its module."""
        if name not in ("attribute", "member", "field", "class_info", "function", "keywords", "mro"):
            raise AttributeError(name)

        def ask(ref, *args):
            if ref is None or ref == VALUE:
                return getattr(Library, name)(None, ref, *args) if name == "attribute" else None
            module = ref[1]
            return getattr(self._for(module), name)(ref, *args)

        return ask
