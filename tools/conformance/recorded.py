"""An API written down by hand from a library's published sources (``tools/data/*.json``): the
names of its modules, what each is (function or class) and its signature.

From it come Python stubs (for the walk of :mod:`.project`, which reads them like any library)
and :class:`inspect.Signature` objects (for test doubles, which then accept exactly the calls
the real library accepts).
"""
import inspect
import json
import os

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
NPU_BRIDGE = os.path.join(DATA, "npu_bridge_api.json")

_KINDS = {"pos": inspect.Parameter.POSITIONAL_OR_KEYWORD, "kwonly": inspect.Parameter.KEYWORD_ONLY,
          "varargs": inspect.Parameter.VAR_POSITIONAL, "varkw": inspect.Parameter.VAR_KEYWORD}


def load(path=NPU_BRIDGE):
    with open(path) as handle:
        return json.load(handle)


def members(api):
    """``{(module, name): entry}`` of every recorded name."""
    return dict(((module, name), entry) for module, names in api["modules"].items()
                for name, entry in names.items())


def signature(entry):
    """The :class:`inspect.Signature` of a recorded function, or of a class's constructor
    (without ``self``). A parameter with a default gets ``None`` as its default."""
    return inspect.Signature([inspect.Parameter(name, _KINDS[kind], default=None if has_default and
                                                kind in ("pos", "kwonly") else inspect.Parameter.empty)
                              for name, kind, has_default in entry["params"]])


def _parameters(entry, first=()):
    text = []
    star = False
    for name, kind, has_default in entry["params"]:
        if kind == "kwonly" and not star:
            text.append("*")
            star = True
        text.append({"varargs": "*" + name, "varkw": "**" + name}.get(
            kind, name + ("=None" if has_default else "")))
        star = star or kind == "varargs"
    return ", ".join(list(first) + text)


def stub_sources(api):
    """``{path: source}`` of stub modules defining every recorded name with its signature.

    A stub class derives from an undefined name, so that the walk takes it for a class whose
    other attributes it cannot know (the real classes derive from TensorFlow's)."""
    files = {}
    for module, names in sorted(api["modules"].items()):
        lines = ['"""Stub generated from the recorded API (tools/conformance/recorded.py)."""']
        for name, entry in sorted(names.items()):
            if entry["kind"] == "class":
                lines += ["class %s(_unrecorded_base):" % name,
                          "    def __init__(%s):" % _parameters(entry, ["self"]), "        pass"]
            else:
                lines += ["def %s(%s):" % (name, _parameters(entry)), "    pass"]
        is_package = any(other.startswith(module + ".") for other in api["modules"])
        path = module.replace(".", "/") + ("/__init__.py" if is_package else ".py")
        files[path] = "\n".join(lines) + "\n"
    return files
