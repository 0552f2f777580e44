"""The layer contract of ``make lint`` (pyproject.toml, import-linter) holds for whole packages: an
upward import planted in any module of a layer, at module level or inside a function, fails it."""
import os
import shutil
import subprocess
import sys

import pytest

from tests import ROOT

LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")
pytestmark = pytest.mark.skipif(not os.path.isfile(LINT_IMPORTS), reason="import-linter is not installed")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The packages and pyproject.toml in a folder of their own, to plant imports in."""
    folder = str(tmp_path_factory.mktemp("contract"))
    for name in ("densenet3d_keras", "generators", "callbacks"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(folder, name),
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), folder)
    return folder


def _lint(folder):
    done = subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=folder, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    return done.returncode, done.stdout


def test_the_code_as_it_is_keeps_the_contract(copy):
    code, output = _lint(copy)
    assert code == 0, output
    assert "1 kept, 0 broken" in output


@pytest.mark.parametrize("module, planted, layer", [
    ("densenet3d_keras/inference/streaming.py", "from densenet3d_keras.cli import train", "densenet3d_keras.inference"),
    ("densenet3d_keras/core/geometry.py", "from densenet3d_keras.models import presets", "densenet3d_keras.core"),
    ("densenet3d_keras/inference/inferers/registry.py", "import densenet3d_keras.evaluation.report",
     "densenet3d_keras.inference"),
    ("densenet3d_keras/evaluation/table.py", "from densenet3d_keras.training import demo", "densenet3d_keras.evaluation"),
    ("callbacks/history.py", "from densenet3d_keras.training.config import TrainConfig", "callbacks"),
    ("generators/volumes.py", "import callbacks.history", "generators"),
    ("densenet3d_keras/models/flops.py", "from generators import sampling", "densenet3d_keras.models"),
    ("densenet3d_keras/runtime/threads.py", "from callbacks import monitors", "densenet3d_keras.runtime"),
])
def test_an_upward_import_anywhere_in_a_package_fails(copy, module, planted, layer):
    path = os.path.join(copy, module)
    with open(path) as handle:
        original = handle.read()
    try:
        with open(path, "a") as handle:  # inside a function: imported only when it runs
            handle.write("\n\ndef _planted():\n    %s  # noqa\n" % planted)
        code, output = _lint(copy)
    finally:
        with open(path, "w") as handle:
            handle.write(original)
    assert code != 0 and "0 kept, 1 broken" in output, output
    assert "%s is not allowed to import" % layer in output
