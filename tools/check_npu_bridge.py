#!/usr/bin/env python
"""npu_bridge conformance of ``make lint``: every ``npu_bridge`` name, keyword and session-config
field this code uses exists, with that signature, in Huawei's TF Adapter.

The adapter cannot be installed here; what this project uses of it is written down, from the
adapter's published sources at one commit, in ``tools/data/npu_bridge_api.json`` (which says
where each entry comes from). The check:

- walks the project as TensorFlow 1.15 runs it (:mod:`tools.conformance.project`) against stubs
  generated from that list: every ``npu_bridge`` module, name, keyword and positional argument;
- reads the ``NpuOptimizer`` custom optimizer the code adds to the session's ``ConfigProto``:
  its name, each ``parameter_map["key"].<field>`` (key known to the adapter, read with that
  ``AttrValue`` field), and the ``--precision-mode`` values offered (``PRECISION_MODES`` and
  ``DEFAULT_PRECISION_MODE`` of ``densenet3d_keras/runtime/npu.py``) against the adapter's list.

The npu_bridge stand-in of the tests is built from the same list (``tests/runtime/test_npu.py``),
so it accepts exactly the calls the adapter accepts. Output: ``file:line name (not in ...)`` per
finding, then a summary line; exit code 1 when there is a finding.
"""
import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.check_tf115 import COMPAT, VERSION, project_modules  # noqa: E402
from tools.conformance import recorded, values  # noqa: E402
from tools.conformance.library import Library  # noqa: E402
from tools.conformance.project import Walk  # noqa: E402
from tools.conformance.sources import MemoryTree  # noqa: E402
from tools.conformance.summary import dotted  # noqa: E402

#: Where the project lists the ``precision_mode`` values it offers.
PRECISION_MODULE = "densenet3d_keras/runtime/npu.py"
PRECISION_NAMES = ("PRECISION_MODES", "DEFAULT_PRECISION_MODE")


def label(api):
    source = api["source"]
    return "npu_bridge of %s@%s" % (source["repository"], source["commit"][:8])


def facts():
    """The version switches of ``core/compat.py`` under TensorFlow 1.15 (TensorFlow itself is
    another library here: the TensorFlow check reads it)."""
    return {COMPAT: {"IS_TF1": values.Const(True),
                     "TF_VERSION": values.Const(tuple(int(p) for p in VERSION.split(".")[:2]))}}


def walk_findings(root, api, modules=None, checked=None):
    """Findings of the walk against the recorded API (``checked``: a dict to receive what it checked)."""
    library = Library(MemoryTree(recorded.stub_sources(api)), label(api))
    walk = Walk(library, root, ("npu_bridge",), facts())
    found = walk.run(modules if modules is not None else project_modules(root))
    if checked is not None:
        checked.update(walk.checked)
    return found


def config_findings(root, api, modules=None):
    """Findings of the ``NpuOptimizer`` custom optimizer and the precision modes."""
    config = api["session_config"]
    found = []
    for module in (modules if modules is not None else project_modules(root)):
        path = _module_path(root, module)
        with open(path) as handle:
            tree = ast.parse(handle.read(), path)
        relative = os.path.relpath(path, root)
        found += [(relative, line, text) for line, text in _parameter_findings(tree, config, label(api))]
        if relative.replace(os.sep, "/") == PRECISION_MODULE:
            found += [(relative, line, text) for line, text in _precision_findings(tree, config, label(api))]
    return sorted(found)


def _module_path(root, module):
    base = os.path.join(root, *module.split("."))
    return os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py"


def _parameter_findings(tree, config, where):
    """``custom_optimizers.add()`` objects named other than the adapter's optimizer; every
    ``parameter_map["key"].field`` the adapter does not read (or reads with another field)."""
    found, added = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and (dotted(node.value.func) or "").endswith("custom_optimizers.add"):
            added.update(t.id for t in node.targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr == "name" and dotted(target.value) in added \
                        and isinstance(node.value, ast.Constant) and node.value.value != config["custom_optimizer"]:
                    found.append((node.lineno, "custom optimizer %r (not in %s: it reads %r)"
                                  % (node.value.value, where, config["custom_optimizer"])))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Subscript) \
                and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "parameter_map":
            key = node.value.slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                found.append((node.lineno, "parameter_map[...] with a key that is not a literal (not checkable)"))
                continue
            expected = config["parameter_map"].get(key.value)
            if expected != node.attr:
                found.append((node.lineno, 'parameter_map["%s"].%s (not in %s%s)'
                              % (key.value, node.attr, where,
                                 ": it reads .%s" % expected if expected else "")))
    return found


def _precision_findings(tree, config, where):
    """Values of the project's precision-mode constants that the adapter does not accept."""
    found = []
    allowed = set(config["precision_mode"])
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) in PRECISION_NAMES for t in node.targets):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value not in allowed:
                    found.append((item.lineno, "precision_mode %r (not in %s)" % (item.value, where)))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=ROOT)
    parser.add_argument("--api", default=recorded.NPU_BRIDGE, help="the recorded npu_bridge API (JSON)")
    args = parser.parse_args(argv)
    api = recorded.load(args.api)
    checked = {}
    findings = sorted(set(walk_findings(args.root, api, checked=checked)) | set(config_findings(args.root, api)))
    for path, line, text in findings:
        print("%s:%d %s" % (path, line, text))
    print("npu_bridge conformance: %d recorded name(s) of %s, %d call(s) of them checked, %d finding(s)"
          % (len(recorded.members(api)), label(api), len(checked.get("calls", ())), len(findings)))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
