"""Calls in the project walk (:mod:`.project`): library calls are checked against their
signatures; calls of the project's functions walk them and pass on what is known of the
arguments."""
import ast

from tools.conformance import values as v
from tools.conformance.summary import dotted

#: What passes from a call to the called function's parameter (constants do not: a function
#: is walked for every value a caller might give, not only for those of this project's calls).
_PASSED = (v.Lib, v.Instance, v.Bound, v.Objects, v.Class, v.Function, v.Method, v.Repeated,
           v.Mapping)


class Arguments(object):
    """The arguments of a call: values, keyword names, whether ``*x``/``**x`` hide some."""

    def __init__(self, positional, keywords, hidden_positional, hidden_keywords):
        self.positional, self.keywords = positional, keywords
        self.hidden_positional, self.hidden_keywords = hidden_positional, hidden_keywords


class Calls(object):
    """Mixin of :class:`.project.Walk`: ``call(node, frame)`` and the walk of functions."""

    def call(self, node, frame):
        special = self._builtin_call(node, frame)
        if special is not None:
            return special
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "add":
            owner = self.value(func.value, frame)
            if isinstance(owner, v.Repeated):
                self.arguments(node, frame)
                return owner.item
            callee = self.attribute(owner, func.attr, func, frame)
        else:
            callee = self.value(func, frame)
        return self.apply(callee, self.arguments(node, frame), node, frame)

    def arguments(self, node, frame):
        positional, keywords = [], {}
        hidden_positional = hidden_keywords = False
        for arg in node.args:
            value = self.value(arg, frame)
            if isinstance(arg, ast.Starred):
                hidden_positional = True
            else:
                positional.append(value)
        for keyword in node.keywords:
            value = self.value(keyword.value, frame)
            if keyword.arg is not None:
                keywords[keyword.arg] = value
            elif isinstance(value, v.Dict) and value.keys is not None:
                keywords.update(value.keys)
            else:
                hidden_keywords = True
        return Arguments(positional, keywords, hidden_positional, hidden_keywords)

    def apply(self, callee, args, node, frame):
        if isinstance(callee, v.Alternatives):
            result = None
            for item in sorted(callee.items, key=repr):
                result = v.merge(result, self.apply(item, args, node, frame))
            return result
        if isinstance(callee, (v.Lib, v.Bound)) and callee.ref[0] == "function":
            self.check_signature(callee.ref, callee.shown, args, getattr(callee, "skip", 0), node, frame)
            returned = self.return_types.get(callee.ref)
            return v.Instance(returned, callee.shown + "()") if returned else v.UNKNOWN
        if isinstance(callee, v.Lib) and callee.ref[0] == "class":
            return self.construct(callee, args, node, frame)
        if isinstance(callee, v.Function):
            return self.call_function(callee, None, args)
        if isinstance(callee, v.Method):
            return self.call_function(callee.function, callee.owner, args)
        if isinstance(callee, v.Class):
            self._constructed.add(callee)
            init = self._class_member(callee, "__init__", v.Objects([callee]), node, frame, False)
            if isinstance(init, (v.Method, v.Bound)):
                self.apply(init, args, node, frame)
            return v.Objects([callee])
        if isinstance(callee, v.Objects):
            return self.apply(self.attribute(callee, "__call__", node, frame), args, node, frame)
        if isinstance(callee, v.Lib) and callee.ref[0] == "module":
            return v.UNKNOWN
        return v.UNKNOWN if callee in (v.UNKNOWN,) or isinstance(callee, v.Instance) else v.FOREIGN

    def construct(self, cls, args, node, frame):
        """``cls(...)`` for a library class: its ``__init__``'s signature (a protobuf message
        takes its fields as keywords)."""
        info = self.library.class_info(cls.ref)
        if info is not None and "fields" in info:
            self.count("calls", cls.shown)
            for name in sorted(args.keywords):
                if name not in info["fields"]:
                    self.report(node, frame, "%s(%s=) (not in %s)"
                                % (cls.shown, name, self.library.label_for(cls.ref[1])))
        else:
            member = self.library.member(cls.ref, "__init__")
            if member is not None and member[0] == "method":
                self.check_signature(member[1], cls.shown, args, 1, node, frame)
        return v.Instance(cls.ref, cls.shown)

    def check_signature(self, ref, shown, args, skip, node, frame):
        """Report keywords, positional arguments and required arguments that do not fit the
        library function ``ref`` (its first ``skip`` parameters are already bound)."""
        info = self.library.function(ref)
        if info is None:
            return
        self.count("calls", shown)
        label = self.library.label_for(ref[1])
        params = info["params"][skip:]
        positional = [p for p in params if p[1] == "pos"]
        if len(args.positional) > len(positional) and not any(p[1] == "varargs" for p in params):
            self.report(node, frame, "%s() takes at most %d positional argument(s) in %s, given %d"
                        % (shown, len(positional), label, len(args.positional)))
        accepted, anything = self.library.keywords(ref)
        for name in sorted(args.keywords):
            if not anything and name not in accepted:
                self.report(node, frame, "%s(%s=) (not in %s)" % (shown, name, label))
        if args.hidden_positional or args.hidden_keywords:
            return
        given = set(args.keywords)
        required = [p[0] for p in positional[len(args.positional):] if not p[2]]
        required += [p[0] for p in params if p[1] == "kwonly" and not p[2]]
        for name in required:
            if name not in given:
                self.report(node, frame, "%s() needs argument %s in %s" % (shown, name, label))

    # -- the project's functions -------------------------------------------------------------

    def call_function(self, function, owner, args):
        """Pass what is known of the arguments to ``function``'s parameters; its return value."""
        node = function.node
        names = [a.arg for a in list(getattr(node.args, "posonlyargs", [])) + list(node.args.args)]
        if owner is not None or function.kind == "classmethod":
            names = names[1:]
        known = self._calls.setdefault(id(node), {})
        pairs = list(zip(names, args.positional)) + list(args.keywords.items())
        for name, value in pairs:
            if isinstance(value, _PASSED):
                known[name] = v.merge(known.get(name), value)
        if function.kind == "decorated":
            self.returns(function)
            return v.UNKNOWN
        return self.returns(function)

    def returns(self, function):
        """Walk ``function`` (once a pass); what it returns."""
        key = id(function.node)
        if key in self._returns:
            return self._returns[key]
        if key in self._busy:
            return v.UNKNOWN
        self._busy.add(key)
        try:
            result = self._walk_function(function)
        finally:
            self._busy.discard(key)
        self._returns[key] = result
        return result

    def _walk_function(self, function):
        from tools.conformance.project import Frame

        node = function.node
        frame = Frame(self, function.module, function.path, {}, function.env, function.owner)
        frame.function = function
        self._bind_parameters(function, frame)
        if isinstance(node, ast.Lambda):
            return self.value(node.body, frame)
        ended = self.block(node.body, frame)
        if not ended:
            frame.returned = v.merge(frame.returned, v.Const(None))
        return frame.returned if frame.returned is not None else v.Const(None)

    def _bind_parameters(self, function, frame):
        args = function.node.args
        known = self.params.get(id(function.node), {})
        positional = list(getattr(args, "posonlyargs", [])) + list(args.args)
        for default in list(args.defaults) + [d for d in args.kw_defaults if d is not None]:
            self.value(default, function.env)
        for index, arg in enumerate(positional + list(args.kwonlyargs)):
            value = known.get(arg.arg, v.UNKNOWN)
            if index == 0 and function.owner is not None and function.kind not in ("static", "lambda"):
                value = function.owner if function.kind == "classmethod" else self.instances(function.owner)
            frame.set(arg.arg, value)
        if args.vararg:
            frame.set(args.vararg.arg, v.Seq(v.UNKNOWN))
        if args.kwarg:
            frame.set(args.kwarg.arg, v.Dict(None))

    def enter(self, value, node, frame):
        """What ``with value as x`` binds to ``x``."""
        if isinstance(value, v.Objects):
            entered = self.attribute(value, "__enter__", node, frame)
            if isinstance(entered, v.Method):
                return self.call_function(entered.function, entered.owner, Arguments([], {}, False, False))
        return v.UNKNOWN if value == v.UNKNOWN or isinstance(value, (v.Lib, v.Instance)) else v.FOREIGN

    # -- builtins ----------------------------------------------------------------------------

    def _builtin_call(self, node, frame):
        """``super()``, ``getattr``, ``importlib.import_module("...")``, ``dict(...)``; else ``None``."""
        name = dotted(node.func)
        if name not in ("super", "getattr", "hasattr", "dict", "importlib.import_module", "isinstance"):
            return None
        if "." not in name and frame.get(name) != v.FOREIGN:
            return None  # the name is the project's own
        args = self.arguments(node, frame)
        if name == "super":
            owner = frame.owner if frame.owner is not None else getattr(getattr(frame, "function", None), "owner", None)
            return v.Super(owner) if owner is not None else v.FOREIGN
        if name == "getattr" and len(node.args) == 2 and isinstance(node.args[1], ast.Constant):
            return self.attribute(args.positional[0], node.args[1].value, node, frame)
        if name == "dict" and not node.args and not args.hidden_keywords:
            return v.Dict(dict(args.keywords))
        if name == "importlib.import_module" and args.positional and isinstance(args.positional[0], v.Const):
            module = str(args.positional[0].value)
            if module.split(".")[0] in self.packages and not self.library.tree.is_module(module):
                return v.FOREIGN  # a failed import the code catches is no finding
            return self.import_module(module, node, frame)
        return v.UNKNOWN if name == "getattr" else v.FOREIGN
