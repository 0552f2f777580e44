"""Expressions of the project walk (:mod:`.project`): the value of each, folding constants."""
import ast
import operator

from tools.conformance import values as v

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
            ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Mod: operator.mod}


class Expressions(object):
    """Mixin of :class:`.project.Walk`: ``value(node, frame)`` of every kind of expression."""

    def value(self, node, frame):
        handler = getattr(self, "_e_" + type(node).__name__, None)
        if handler is not None:
            return handler(node, frame)
        parts = [self.value(child, frame) for child in ast.iter_child_nodes(node)
                 if isinstance(child, ast.expr)]
        return _combined(parts)

    def _e_Constant(self, node, frame):
        return v.Const(node.value)

    def reach_all(self, value):
        for item in value.items if isinstance(value, v.Alternatives) else [value]:
            self.reach(item)

    def _e_Name(self, node, frame):
        found = frame.get(node.id)
        self.reach_all(found)
        return found

    def _e_Attribute(self, node, frame):
        owner = self.value(node.value, frame)
        found = self.attribute(owner, node.attr, node, frame)
        if owner in (v.UNKNOWN, v.FOREIGN):
            self._reached_names.add(node.attr)  # any project method of that name may run
        self.reach_all(found)
        return found

    def _e_Call(self, node, frame):
        return self.call(node, frame)

    def _e_Starred(self, node, frame):
        return self.value(node.value, frame)

    def _e_BoolOp(self, node, frame):
        result = None
        for operand in node.values:
            current = self.value(operand, frame)
            if isinstance(current, v.Const):
                stops = bool(current.value) if isinstance(node.op, ast.Or) else not current.value
                if stops:  # the rest is never evaluated
                    return current if result is None else v.merge(result, current)
                continue
            result = v.merge(result, current) if result is not None else current
        return result if result is not None else v.Const(isinstance(node.op, ast.And))

    def _e_UnaryOp(self, node, frame):
        operand = self.value(node.operand, frame)
        if isinstance(operand, v.Const):
            try:
                return v.Const({ast.Not: operator.not_, ast.USub: operator.neg,
                                ast.UAdd: operator.pos, ast.Invert: operator.invert}[type(node.op)](operand.value))
            except (TypeError, KeyError):
                return v.FOREIGN
        return _combined([operand])

    def _e_Compare(self, node, frame):
        parts = [self.value(node.left, frame)] + [self.value(c, frame) for c in node.comparators]
        if all(isinstance(p, v.Const) for p in parts):
            try:
                return v.Const(all(_COMPARE[type(op)](a.value, b.value)
                                   for op, a, b in zip(node.ops, parts, parts[1:])))
            except (TypeError, KeyError):
                return v.FOREIGN
        return v.FOREIGN if v.UNKNOWN not in parts else v.UNKNOWN

    def _e_BinOp(self, node, frame):
        left, right = self.value(node.left, frame), self.value(node.right, frame)
        if isinstance(left, v.Const) and isinstance(right, v.Const) and type(node.op) in _BINARY:
            try:
                return v.Const(_BINARY[type(node.op)](left.value, right.value))
            except (TypeError, ValueError, ZeroDivisionError):
                return v.FOREIGN
        return _combined([left, right])

    def _e_IfExp(self, node, frame):
        test = self.value(node.test, frame)
        if isinstance(test, v.Const):
            return self.value(node.body if test.value else node.orelse, frame)
        return v.merge(self.value(node.body, frame), self.value(node.orelse, frame))

    def _e_Tuple(self, node, frame):
        return v.Tuple(self.value(item, frame) for item in node.elts)

    def _e_List(self, node, frame):
        item = None
        for element in node.elts:
            item = v.merge(item, self.value(element, frame))
        return v.Seq(item if item is not None else v.FOREIGN)

    _e_Set = _e_List

    def _e_Dict(self, node, frame):
        keys = {}
        for key, item in zip(node.keys, node.values):
            value = self.value(item, frame)
            name = self.value(key, frame) if key is not None else None
            if keys is not None and isinstance(name, v.Const) and isinstance(name.value, str):
                keys[name.value] = value
            else:
                keys = None
        return v.Dict(keys)

    def _e_Subscript(self, node, frame):
        owner = self.value(node.value, frame)
        key = self.value(node.slice, frame)
        if isinstance(owner, v.Tuple) and isinstance(key, v.Const) and isinstance(key.value, int):
            return owner.items[key.value] if -len(owner.items) <= key.value < len(owner.items) else v.FOREIGN
        if isinstance(owner, v.Dict) and owner.keys is not None and isinstance(key, v.Const):
            return owner.keys.get(key.value, v.FOREIGN)
        if isinstance(owner, v.Const):
            try:
                return v.Const(owner.value[key.value]) if isinstance(key, v.Const) else v.FOREIGN
            except (TypeError, KeyError, IndexError):
                return v.FOREIGN
        return self.item(owner)

    def item(self, container):
        """The value of an item of ``container`` (iteration, unpacking, subscription)."""
        if isinstance(container, v.Tuple):
            merged = None
            for item in container.items:
                merged = v.merge(merged, item)
            return merged if merged is not None else v.FOREIGN
        if isinstance(container, (v.Seq, v.Repeated, v.Mapping)):
            return container.item
        if isinstance(container, (v.Lib, v.Instance, v.Bound)) or container == v.UNKNOWN:
            return v.UNKNOWN
        return v.FOREIGN

    def _e_Lambda(self, node, frame):
        function = v.Function(node, frame.module, frame, None, "lambda")
        function.path = frame.path
        self.returns(function)
        return function

    def _comprehension(self, node, frame):
        inner = frame.copy()
        for generator in node.generators:
            self.assign(generator.target, self.item(self.value(generator.iter, inner)), inner)
            for condition in generator.ifs:
                self.value(condition, inner)
        return inner

    def _e_ListComp(self, node, frame):
        return v.Seq(self.value(node.elt, self._comprehension(node, frame)))

    _e_SetComp = _e_ListComp
    _e_GeneratorExp = _e_ListComp

    def _e_DictComp(self, node, frame):
        inner = self._comprehension(node, frame)
        self.value(node.key, inner)
        self.value(node.value, inner)
        return v.Dict(None)


def _combined(parts):
    """The value of an operation on ``parts``: UNKNOWN if a library object took part."""
    for part in parts:
        if part == v.UNKNOWN or isinstance(part, (v.Lib, v.Instance, v.Bound)):
            return v.UNKNOWN
    return v.FOREIGN
