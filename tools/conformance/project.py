"""Walk this project's code as one version of a library would run it, and report what the
library lacks.

Each pass walks every module's top level, then the functions that reachable code calls or
names, and the entry points (functions nothing in the project names, methods the library calls
on the project's subclasses), statement by statement, with the values it can know
(:mod:`.values`): the library's modules, classes and functions reached from ``import``
statements and from ``facts`` (the values the project's own version switches take on that
version, e.g. ``IS_TF1 = True``). Conditions that fold to a constant (``if IS_TF1``,
``graph_mode() and not IS_TF1``, ``TF_VERSION < (2, 5)``; a function that returns a constant
folds too) decide which branch is walked: code that the version cannot reach is skipped
(a function only such code calls is not walked), everything else is checked.

Checked: every attribute of a library module, class or instance (inherited members included,
protobuf message fields too), every keyword and the number of positional arguments (and the
required ones) of every call to a library function, method or class. A parameter's value comes
from the project's calls of its function; passes repeat until those values settle. An attribute
of a value whose type the walk does not know is checked by name: one that the newer library
(``newer_names``) defines but the checked library nowhere defines is reported as well.

Not followed: what library functions return (except ``return_types``), dictionaries passed
as ``**kwargs`` whose keys are not literal, values whose possible types disagree (the walk
keeps the known one where one path gives ``None`` or an unknown value).
"""
import ast
import os
import re

from tools.conformance import library as lib
from tools.conformance import values as v
from tools.conformance.calls import Calls
from tools.conformance.expressions import Expressions
from tools.conformance.members import Members
from tools.conformance.summary import dotted

#: A command-line option of the project's parsers (its value is an attribute of the configuration).
_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)$")


class Walk(Expressions, Members, Calls):
    """The walk of one project against one library.

    Args:
        library: a :class:`.library.Library`.
        root: the project's folder.
        packages: top-level names of the library's modules (``("tensorflow",)``).
        facts: ``{module: {name: Value}}`` set after the module's own code ran.
        newer_names: names some newer version of the library defines (``set``), for values
            of unknown type; ``None`` leaves such values unchecked.
        common_names: names that other kinds of values have (never reported for those).
        return_types: ``{function Ref: class Ref}``, what some library functions return.
    """

    def __init__(self, library, root, packages, facts=None, newer_names=None, common_names=(),
                 return_types=None):
        self.library = library
        self.root = root
        self.packages = tuple(packages)
        self.facts = facts or {}
        self.newer_names = newer_names
        self.common_names = set(common_names)
        self.return_types = dict(return_types or {})
        self.own_names = set()
        self.findings = set()
        self.checked = {}
        self.reporting = False
        self.params = {}
        self._trees = {}

    # -- driving -----------------------------------------------------------------------------

    def run(self, modules, max_passes=12):
        """Walk ``modules`` (dotted names) until what the project's calls pass to its functions
        settles (at most ``max_passes`` times), reporting in the last pass; returns the sorted
        findings ``(path, line, text)``."""
        self.referenced = set()
        for path in (self.module_path(m) for m in modules):
            if path:
                with open(path) as handle:
                    text = handle.read()
                self.own_names |= _own_names(text)
                self.referenced |= _referenced_names(ast.parse(text))
        self.constructed = set()
        for number in range(max_passes):
            settled = number > 0 and self._calls == self.params and self._constructed == self.constructed
            self.reporting = settled or number == max_passes - 1
            if number > 0:
                self.params, self.constructed = self._calls, self._constructed
            self._start_pass()
            for module in modules:
                self.load_module(module)
            self._walk_reachable()
            if self.reporting:
                break
        self.passes = number + 1
        return sorted(self.findings)

    def _start_pass(self):
        self.modules, self._returns, self._busy, self._calls = {}, {}, set(), {}
        self._pending, self._reached, self._reached_names, self._constructed = [], set(), set(), set()

    def _walk_reachable(self):
        """Walk the functions the walk reached, and those nothing in the project names
        (entry points; methods the library calls); until no new one is reached."""
        while True:
            todo = [f for f in self._pending if id(f.node) not in self._returns and self._is_entry(f)]
            if not todo:
                return
            for function in todo:
                self.returns(function)

    def _is_entry(self, function):
        if id(function.node) in self._reached:
            return True
        name = function.node.name
        cls = function.owner
        if cls is None:
            return name not in self.referenced
        if id(cls.node) not in self._reached and cls.node.name in self.referenced:
            return False  # a class only code that this version skips names
        if name not in self.referenced or name in self._reached_names:
            return True
        if name.startswith("__") and name.endswith("__"):
            return True
        _, library_bases, _ = self.project_mro(cls)
        return any(self.library.member(base.ref, name) is not None for base in library_bases)

    def reach(self, value):
        """Note that reachable code names ``value`` (a project function, method or class)."""
        if isinstance(value, v.Method):
            value = value.function
        if isinstance(value, (v.Function, v.Class)):
            self._reached.add(id(value.node))

    def instances(self, cls):
        """What ``self`` is in a method of ``cls``: it or a subclass built in the last pass."""
        found = [cls] + [c for c in self.constructed if c is not cls and cls in self.project_mro(c)[0]]
        return v.Objects(found)

    def count(self, kind, shown):
        """Note a check of the last pass (``kind``: ``attributes`` or ``calls``)."""
        if self.reporting:
            self.checked.setdefault(kind, set()).add(shown)

    def report(self, node, frame, text):
        if self.reporting:
            path = os.path.relpath(frame.path, self.root)
            self.findings.add((path, getattr(node, "lineno", 0), text))

    # -- modules -----------------------------------------------------------------------------

    def module_path(self, name):
        base = os.path.join(self.root, *name.split("."))
        for path in (os.path.join(base, "__init__.py"), base + ".py"):
            if os.path.isfile(path):
                return path
        return None

    def load_module(self, name):
        """The project module ``name`` (walking its top level on first use in a pass)."""
        if name in self.modules:
            return v.Module(name)
        path = self.module_path(name)
        if path is None:
            return None
        if path not in self._trees:
            with open(path) as handle:
                self._trees[path] = ast.parse(handle.read(), path)
        env = {"__name__": v.UNKNOWN}  # "__main__" or the module's name
        self.modules[name] = env
        frame = Frame(self, name, path, env, None, None)
        self.block(self._trees[path].body, frame)
        env.update(self.facts.get(name, {}))
        return v.Module(name)

    def import_module(self, name, node, frame):
        """The value of ``import name`` (the library's, the project's or a foreign module)."""
        if name.split(".")[0] in self.packages:
            if self.library.tree.is_module(name):
                return v.Lib(("module", name), name)
            self.report(node, frame, "%s (not in %s)" % (name, self.library.label_for(name)))
            return v.UNKNOWN
        own = self.load_module(name)
        return own if own is not None else v.FOREIGN

    # -- statements --------------------------------------------------------------------------

    def block(self, statements, frame):
        """Walk statements; returns True when the block always ends in ``return``/``raise``."""
        for node in statements:
            if self.statement(node, frame):
                return True
        return False

    def statement(self, node, frame):
        handler = getattr(self, "_s_" + type(node).__name__, None)
        if handler is not None:
            return bool(handler(node, frame))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.value(child, frame)
        return False

    def _s_Return(self, node, frame):
        result = self.value(node.value, frame) if node.value is not None else v.Const(None)
        frame.returned = v.merge(frame.returned, result)
        return True

    def _s_Raise(self, node, frame):
        for part in (node.exc, node.cause):
            if part is not None:
                self.value(part, frame)
        return True

    def _s_If(self, node, frame):
        test = self.value(node.test, frame)
        if isinstance(test, v.Const):
            return self.block(node.body if test.value else node.orelse, frame)
        return self.branches([node.body, node.orelse], frame)

    def branches(self, blocks, frame):
        """Walk alternative blocks; afterwards a name has the merged value of the blocks that
        go on. True when all of them end."""
        outcomes = []
        for statements in blocks:
            branch = frame.copy()
            outcomes.append((self.block(statements, branch), branch))
        going_on = [branch for ended, branch in outcomes if not ended]
        if not going_on:
            for _, branch in outcomes:
                frame.returned = v.merge(frame.returned, branch.returned)
            return True
        frame.merge(going_on, [branch for _, branch in outcomes])
        return False

    def _s_Assign(self, node, frame):
        result = self.value(node.value, frame)
        for target in node.targets:
            self.assign(target, result, frame)

    def _s_AnnAssign(self, node, frame):
        if node.value is not None:
            self.assign(node.target, self.value(node.value, frame), frame)

    def _s_AugAssign(self, node, frame):
        self.value(node.value, frame)
        if isinstance(node.target, ast.Name):
            frame.set(node.target.id, v.UNKNOWN if frame.get(node.target.id) != v.FOREIGN else v.FOREIGN)
        else:
            self.value(node.target.value, frame)

    def assign(self, target, result, frame):
        if isinstance(target, ast.Name):
            frame.set(target.id, result)
        elif isinstance(target, (ast.Tuple, ast.List)):
            items = result.items if isinstance(result, v.Tuple) and len(result.items) == len(target.elts) \
                else [self.item(result) for _ in target.elts]
            for part, item in zip(target.elts, items):
                self.assign(part.value if isinstance(part, ast.Starred) else part, item, frame)
        elif isinstance(target, ast.Attribute):
            self.store_attribute(self.value(target.value, frame), target, result, frame)
        elif isinstance(target, ast.Subscript):
            owner = self.value(target.value, frame)
            key = self.value(target.slice, frame)
            if isinstance(owner, v.Dict) and owner.keys is not None:
                if isinstance(key, v.Const) and isinstance(key.value, str):
                    owner.keys[key.value] = result
                else:
                    owner.keys = None

    def _s_Expr(self, node, frame):
        self.value(node.value, frame)

    def _s_For(self, node, frame):
        self.assign(node.target, self.item(self.value(node.iter, frame)), frame)
        self.branches([node.body + node.orelse, []], frame)

    def _s_While(self, node, frame):
        self.value(node.test, frame)
        self.branches([node.body + node.orelse, []], frame)

    def _s_With(self, node, frame):
        for item in node.items:
            entered = self.enter(self.value(item.context_expr, frame), item.context_expr, frame)
            if item.optional_vars is not None:
                self.assign(item.optional_vars, entered, frame)
        return self.block(node.body, frame)

    def _s_Try(self, node, frame):
        self.branches([node.body + node.orelse] + [self._handler(h) for h in node.handlers], frame)
        return self.block(node.finalbody, frame)

    def _handler(self, handler):
        statements = list(handler.body)
        if handler.type is not None:
            statements.insert(0, ast.Expr(value=handler.type, lineno=handler.lineno))
        if handler.name:
            statements.insert(0, ast.Assign(targets=[ast.Name(id=handler.name, ctx=ast.Store())],
                                            value=ast.Constant(value=None), lineno=handler.lineno))
        return statements

    def _s_Import(self, node, frame):
        for alias in node.names:
            module = self.import_module(alias.name, node, frame)
            if alias.asname:
                frame.set(alias.asname, v.Lib(module.ref, alias.asname) if isinstance(module, v.Lib) else module)
            else:
                head = alias.name.split(".")[0]
                frame.set(head, self.import_module(head, node, frame) if head != alias.name else module)

    def _s_ImportFrom(self, node, frame):
        base = node.module or ""
        if node.level:
            parts = frame.module.split(".")
            is_package = frame.path.endswith("__init__.py")
            parts = parts[:len(parts) - node.level + (1 if is_package else 0)]
            base = ".".join(parts + ([node.module] if node.module else []))
        module = self.import_module(base, node, frame)
        for alias in node.names:
            if alias.name == "*":
                continue
            submodule = base + "." + alias.name
            if isinstance(module, v.Module) and self.module_path(submodule):
                frame.set(alias.asname or alias.name, self.load_module(submodule))
            else:
                frame.set(alias.asname or alias.name, self.attribute(module, alias.name, node, frame))

    def _s_FunctionDef(self, node, frame):
        kind = "method" if frame.is_class_body else "function"
        for decorator in node.decorator_list:
            name = dotted(decorator) or ""
            kind = {"staticmethod": "static", "classmethod": "classmethod", "property": "property"}.get(
                name, "decorated" if name and not name.endswith((".setter", ".deleter")) else kind)
            self.value(decorator, frame)
        function = v.Function(node, frame.module, frame, frame.owner if frame.is_class_body else None, kind)
        function.path = frame.path
        self._pending.append(function)
        if frame.is_class_body:
            frame.owner.members[node.name] = function
        else:
            frame.set(node.name, function)
            if frame.function is not None:
                self.returns(function)  # a nested function sees the names of its frame now

    _s_AsyncFunctionDef = _s_FunctionDef

    def _s_ClassDef(self, node, frame):
        bases = [self.value(base, frame) for base in node.bases]
        cls = v.Class(node, frame.module, bases)
        cls.path = frame.path
        body = Frame(self, frame.module, frame.path, {}, frame, cls, class_body=True)
        self.block(node.body, body)
        for name, value in body.env.items():
            cls.members.setdefault(name, value)
        frame.set(node.name, cls)


class Frame(object):
    """Names visible to code being walked: its own, then its enclosing function's, then the
    module's. ``owner`` is the project class of a method or class body."""

    def __init__(self, walk, module, path, env, parent, owner, class_body=False):
        self.walk, self.module, self.path, self.env = walk, module, path, env
        self.parent, self.owner, self.is_class_body = parent, owner, class_body
        self.returned = None
        self.function = None

    def get(self, name):
        frame = self
        while frame is not None:
            if name in frame.env and not (frame.is_class_body and frame is not self):
                return frame.env[name]
            frame = frame.parent
        module = self.walk.modules.get(self.module, {})
        return module.get(name, v.FOREIGN)

    def set(self, name, value):
        self.env[name] = value

    def copy(self):
        twin = Frame(self.walk, self.module, self.path, dict(self.env), self.parent, self.owner,
                     self.is_class_body)
        twin.function = self.function
        return twin

    def merge(self, going_on, all_branches):
        """After alternatives: names of the branches that go on, merged; returns of all."""
        names = set()
        for branch in going_on:
            names |= set(branch.env)
        for name in names:
            merged = None
            for branch in going_on:
                merged = v.merge(merged, branch.env.get(name, self.env.get(name, v.UNKNOWN)))
            self.env[name] = merged
        for branch in all_branches:
            self.returned = v.merge(self.returned, branch.returned)


def _referenced_names(tree):
    """Names and attributes an expression of ``tree`` reads."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            found.add(node.attr)
    return found


def _own_names(text):
    """Names the project defines: definitions, ``--options`` of its parsers, namedtuple fields."""
    names = lib.defined_names(text)
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _OPTION.match(node.value)
            if match:
                names.add(match.group(1).replace("-", "_"))
        if isinstance(node, ast.Call) and (dotted(node.func) or "").endswith("namedtuple"):
            for item in ast.walk(node):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    names.update(item.value.replace(",", " ").split())
    return names
