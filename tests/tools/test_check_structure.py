"""tools/check_structure.py: import cycles, long functions and docstrings naming what does not exist."""
import os
import sys

import pytest

from tests import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import check_structure  # noqa: E402

MODULES = {
    "densenet3d_keras/__init__.py": '_EXPORTS = {"build_model": "densenet3d_keras.models.builder"}\n',
    "densenet3d_keras/models/__init__.py": "",
    "densenet3d_keras/models/builder.py": (
        "import os\n"
        "from collections import namedtuple\n"
        "PATHWAYS = ()\n"
        "Point = namedtuple('Point', 'x y')\n"
        "class Builder(object):\n"
        "    size = 3\n"
        "    def __init__(self):\n"
        "        self.layers = []\n"
        "    def build(self):\n"
        "        pass\n"
        "def build_model():\n"
        "    pass\n"),
    "generators/__init__.py": "",
    "callbacks/__init__.py": "",
}


@pytest.mark.parametrize("text, problem", [
    (":func:`densenet3d_keras.models.builder.build_model`", None),
    (":func:`~densenet3d_keras.models.builder.build_model`", None),
    (":mod:`densenet3d_keras.models`", None),
    ("``densenet3d_keras.models.builder.PATHWAYS``, ``densenet3d_keras.build_model``", None),
    (":meth:`densenet3d_keras.models.builder.Builder.build` and its ``.layers``", None),
    ("densenet3d_keras.models.builder.Builder.layers, densenet3d_keras.models.builder.Builder.size", None),
    ("densenet3d_keras.models.builder.Point.x (a namedtuple field) and builder.os", None),
    ("the file callbacks.py, densenet3d_keras/models/builder.py, run.densenet3d_keras.x", None),
    (":func:`densenet3d_keras.models.build_model`", "densenet3d_keras.models.build_model"),
    (":mod:`densenet3d_keras.metrics`", "densenet3d_keras.metrics"),
    ("see densenet3d_keras.models.builder.Builder.missing.", "densenet3d_keras.models.builder.Builder.missing"),
    (":func:`callbacks.checkpoint.find_checkpoint`", "callbacks.checkpoint.find_checkpoint"),
    ("generators.volumes", "generators.volumes"),
])
def test_docstring_references_resolve_or_are_reported(tmp_path, capsys, text, problem):
    for relative, source in MODULES.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (tmp_path / "callbacks" / "monitors.py").write_text(
        '"""Monitors."""\n\n\n#: See %s.\nLIMIT = 1\n\n\ndef check():\n    """Check (%s)."""\n' % (text, text))
    code = check_structure.main(["--root", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    if problem is None:
        assert code == 0, lines
    else:
        assert code == 1
        assert lines[:-1] == ["callbacks/monitors.py:%d: docstring names %s, which does not exist" % (line, problem)
                              for line in (9, 4)], lines


def test_the_project_passes(capsys):
    assert check_structure.main(["--root", ROOT]) == 0, capsys.readouterr().out
