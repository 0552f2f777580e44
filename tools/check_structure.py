#!/usr/bin/env python
"""Structure checks of ``make lint``: no import cycle between modules, no over-long function.

Import cycles: every import between the project's modules (at module level or inside a
function) is an edge; a strongly connected component of more than one module is a cycle.
Function length: lines of a function's body after its docstring, at most ``--max-lines``
(benchmarks and tests are exempt).

Exit code 1 with one line per problem, 0 when there is none.
"""
import argparse
import ast
import os
import sys

PACKAGES = ("densenet3d_keras", "generators", "callbacks")
SCRIPTS = ("train_keras.py", "predict_keras.py", "evaluate_keras.py", "export_keras.py")


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
    for problem in problems:
        print(problem)
    print("structure: %d modules, %d problem(s)" % (len(trees), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
