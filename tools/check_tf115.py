#!/usr/bin/env python
"""TensorFlow 1.15 conformance of ``make lint``: every ``tf.*`` / ``keras.*`` name, attribute and
keyword that this code uses where TensorFlow 1.15 runs it exists in TensorFlow 1.15.5.

The TensorFlow 1.15.5 wheel (cp37, manylinux2010_x86_64: the one ``requirements/ascend.txt``
installs on x86-64) is downloaded once into ``~/.cache/densenet3d_keras/tf1155/``; it is not
installed (it cannot be, beside TensorFlow 2 and Python 3.11) but read: ``tf`` is its
``tensorflow_core`` package (``_api/v1``), ``keras`` its ``python/keras/api/_v1/keras``, and the
modules these names come from give the classes, methods and signatures. The project's code is
walked as TensorFlow 1.15 runs it (see :mod:`tools.conformance.project`): the version switches of
``densenet3d_keras/core/compat.py`` take their TensorFlow 1.15 values (``IS_TF1`` is True,
``TF_VERSION`` is ``(1, 15)``, so ``graph_mode()`` is True), and code behind a switch that 1.15
never takes (``if not IS_TF1``, ``graph_mode() and not IS_TF1``, after ``if IS_TF1: return``)
is not checked. That is how TensorFlow 2-only code is kept out of the check: behind one of these
switches, in a named function of ``core/compat.py`` where possible.

Output: one line ``file:line name (not in TF 1.15.5)`` per finding (or a line naming a call
whose arguments do not fit), then a summary line. Exit code 1 when there is a finding.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.conformance import values  # noqa: E402
from tools.conformance.library import Library  # noqa: E402
from tools.conformance.newer import common_names, newer_names  # noqa: E402
from tools.conformance.project import Walk  # noqa: E402
from tools.conformance.sources import WheelTree  # noqa: E402
from tools.conformance.wheels import cache_root, fetch  # noqa: E402

VERSION = "1.15.5"
LABEL = "TF " + VERSION
PLATFORM = "manylinux2010_x86_64"
#: The project's code that TensorFlow 1.15 may run: the packages and the top-level scripts.
PACKAGES = ("densenet3d_keras", "generators", "callbacks")
SCRIPTS = ("train_keras", "predict_keras", "evaluate_keras", "export_keras")
#: Where the names of ``tensorflow`` are in the wheel.
ROOTS = {"tensorflow": "tensorflow_core"}
COMPAT = "densenet3d_keras.core.compat"


def facts():
    """What ``core/compat.py``'s version switches and imports are under TensorFlow 1.15.5."""
    return {COMPAT: {"IS_TF1": values.Const(True),
                     "TF_VERSION": values.Const(tuple(int(p) for p in VERSION.split(".")[:2])),
                     "tf": values.Lib(("module", "tensorflow"), "tf"),
                     "keras": values.Lib(("module", "tensorflow.python.keras.api._v1.keras"), "keras")}}


def return_types():
    """What some TensorFlow 1.15.5 functions return, as read in their source (the walk does not
    follow return statements into the library): ``keras.models.load_model`` a Keras ``Model``
    (``load_model_from_hdf5`` / ``saved_model_load.load``), ``keras.backend.get_session`` a
    ``Session``."""
    keras = "tensorflow.python.keras."
    return {("function", keras + "saving.save", "load_model"): ("class", keras + "engine.training", "Model"),
            ("function", keras + "backend", "get_session"):
                ("class", "tensorflow.python.client.session", "Session")}


def project_modules(root):
    """Dotted names of the project's modules."""
    found = [name for name in SCRIPTS if os.path.isfile(os.path.join(root, name + ".py"))]
    for package in PACKAGES:
        for folder, _, names in os.walk(os.path.join(root, package)):
            for name in sorted(names):
                if name.endswith(".py"):
                    parts = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                    found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(found)


def tensorflow_library(cache):
    """The TensorFlow 1.15.5 wheel as a :class:`Library` (downloaded on first use)."""
    wheel = fetch("tensorflow", VERSION, cache, PLATFORM)
    return Library(WheelTree(wheel, ROOTS), LABEL, os.path.join(cache, "summaries.json"),
                   os.path.basename(wheel))


def walker(root, library, newer=None, project_facts=None):
    """The :class:`Walk` of the project at ``root`` against ``library`` as TensorFlow 1.15."""
    return Walk(library, root, ("tensorflow",), facts() if project_facts is None else project_facts,
                newer, common_names() if newer is not None else (), return_types())


def check(root, library, modules=None, newer=None, project_facts=None):
    """Findings ``(path, line, text)`` of the project at ``root`` against ``library``."""
    walk = walker(root, library, newer, project_facts)
    return walk.run(modules if modules is not None else project_modules(root))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=ROOT)
    parser.add_argument("--cache", default=os.path.join(cache_root(), "tf1155"),
                        help="where the wheel and its summaries are kept")
    args = parser.parse_args(argv)
    started = time.time()
    library = tensorflow_library(args.cache)
    walk = walker(args.root, library, newer_names(args.cache))
    findings = walk.run(project_modules(args.root))
    library.save()
    for path, line, text in findings:
        print("%s:%d %s" % (path, line, text))
    print("tf 1.15 conformance: %d module(s) against %s: %d attribute(s) and %d callable(s) checked, "
          "%d finding(s) (%.1f s)" % (len(project_modules(args.root)), os.path.basename(library.tree.path),
                                      len(walk.checked.get("attributes", ())), len(walk.checked.get("calls", ())),
                                      len(findings), time.time() - started))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
