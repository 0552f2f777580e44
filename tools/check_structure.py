#!/usr/bin/env python
"""Structure checks of ``make lint``: no import cycle between modules, no over-long function,
no docstring naming a module or name of the project that does not exist.

Import cycles: every import between the project's modules (at module level or inside a
function) is an edge; a strongly connected component of more than one module is a cycle.
Function length: lines of a function's body after its docstring, at most ``--max-lines``
(benchmarks and tests are exempt).
Docstring references: every dotted name starting with a package of the project
(``densenet3d_keras.models.builder.build_model``, ``generators.volumes``,
``callbacks.checkpoint.EpochCheckpoint``, also after Sphinx's ``~``) in a module, class or
function docstring or a ``#:`` comment must name a module, then a name that module defines (a function, class,
assignment or import; a package's lazily exported ``_EXPORTS``), then members of a class it
defines (methods, class attributes, ``self.`` attributes). Parts after a name that is not a
class (a namedtuple, a constant) are not checked.

Exit code 1 with one line per problem, 0 when there is none.
"""
import argparse
import ast
import os
import re
import sys

PACKAGES = ("densenet3d_keras", "generators", "callbacks")
SCRIPTS = ("train_keras.py", "predict_keras.py", "evaluate_keras.py", "export_keras.py")
#: A dotted name of the project in a docstring (not part of a path or a longer word).
DOTTED = re.compile(r"(?<![\w./-])((?:%s)(?:\.[A-Za-z_]\w*)+)(?![\w/])" % "|".join(PACKAGES))
#: Last parts that make a match a file name (``callbacks.py``), not a dotted name.
FILE_SUFFIXES = ("py", "md", "txt", "json", "sh", "toml", "log", "csv", "png", "h5")


def python_files(root):
    """The project's modules: the packages and the top-level scripts, as paths."""
    found = [os.path.join(root, name) for name in SCRIPTS if os.path.isfile(os.path.join(root, name))]
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(root, package)):
            found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".py")]
    return sorted(found)


def module_name(root, path):
    """Dotted module name of ``path`` (``pkg/__init__.py`` is ``pkg``)."""
    parts = os.path.relpath(path, root)[:-3].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(tree, known):
    """Project modules imported anywhere in ``tree`` (``from a import b`` counts ``a.b`` if a module)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + ["%s.%s" % (node.module, a.name) for a in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def strongly_connected(graph):
    """Tarjan's algorithm: the strongly connected components of ``{node: set(successors)}``."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def long_functions(tree, max_lines):
    """``(name, line, length)`` of functions whose body (docstring excluded) is too long."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                    and isinstance(body[0].value.value, str)):
                body = body[1:]
            if not body:
                continue
            length = body[-1].end_lineno - body[0].lineno + 1
            if length > max_lines:
                found.append((node.name, node.lineno, length))
    return found


def defined_names(body):
    """``{name: node}`` of what a module or class body defines: functions, classes, assignment
    targets and imports (for a class also ``self.<name>`` assigned in its methods), and the keys
    of a module-level ``_EXPORTS`` dict (lazily exported names)."""
    found = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                found.update((n.id, node) for n in ast.walk(target) if isinstance(n, ast.Name))
            if (isinstance(node.value, ast.Dict) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS"
                                                         for t in targets)):
                found.update((key.value, node) for key in node.value.keys if isinstance(key, ast.Constant))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(((alias.asname or alias.name).split(".")[0], node) for alias in node.names)
    return found


def class_members(node):
    """:func:`defined_names` of a class body plus the ``self.<name>`` its methods assign."""
    found = defined_names(node.body)
    for method in node.body:
        if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for target in ast.walk(method):
                if (isinstance(target, ast.Attribute) and isinstance(target.ctx, ast.Store)
                        and isinstance(target.value, ast.Name) and target.value.id == "self"):
                    found.setdefault(target.attr, target)
    return found


def resolves(dotted, trees):
    """Whether ``dotted`` names a module of ``trees`` ({module name: (path, tree)}), a name it
    defines, and members of classes (see the module docstring)."""
    parts = dotted.split(".")
    known = len(parts)
    while known and ".".join(parts[:known]) not in trees:
        known -= 1
    if not known:
        return False
    names = defined_names(trees[".".join(parts[:known])][1].body)
    for part in parts[known:]:
        if part not in names:
            return False
        node = names[part]
        if not isinstance(node, ast.ClassDef):
            return True
        names = class_members(node)
    return True


def documentation(path, tree):
    """``(first line, text)`` of a module's docstrings (module, classes, functions) and of its
    ``#:`` documentation comments."""
    owners = [tree] + [node for node in ast.walk(tree)
                       if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    texts = [(owner.body[0].lineno, ast.get_docstring(owner, clean=False)) for owner in owners if owner.body]
    with open(path) as handle:
        texts += [(number, line) for number, line in enumerate(handle, 1) if line.lstrip().startswith("#:")]
    return [(line, text) for line, text in texts if text]


def unresolved_references(trees):
    """``(path, line, dotted name)`` of each reference in the documentation that does not resolve."""
    found = []
    for _, (path, tree) in sorted(trees.items()):
        for line, text in documentation(path, tree):
            for match in DOTTED.finditer(text):
                dotted = match.group(1)
                if dotted.rsplit(".", 1)[1] not in FILE_SUFFIXES and not resolves(dotted, trees):
                    found.append((path, line + text.count("\n", 0, match.start()), dotted))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--max-lines", type=int, default=60)
    args = parser.parse_args(argv)
    files = python_files(args.root)
    trees = {}
    for path in files:
        with open(path) as handle:
            trees[module_name(args.root, path)] = (path, ast.parse(handle.read(), path))
    known = set(trees)
    graph = dict((name, imported_modules(tree, known) - {name}) for name, (_, tree) in trees.items())
    problems = ["import cycle: %s" % " <-> ".join(component)
                for component in strongly_connected(graph) if len(component) > 1]
    for name, (path, tree) in sorted(trees.items()):
        for function, line, length in long_functions(tree, args.max_lines):
            problems.append("%s:%d: function %s is %d lines long (at most %d)"
                            % (os.path.relpath(path, args.root), line, function, length, args.max_lines))
    for path, line, dotted in unresolved_references(trees):
        problems.append("%s:%d: docstring names %s, which does not exist"
                        % (os.path.relpath(path, args.root), line, dotted))
    for problem in problems:
        print(problem)
    print("structure: %d modules, %d problem(s)" % (len(trees), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
