"""The install checks of ``make lint``: requirements/ascend.txt per machine (markers, source-built
pins, metadata-only wheels), every runtime dependency named, and the minimum-version check of
the dependencies' APIs catching a keyword that only newer SciPy has. (The pip resolution itself
needs the network; ``make lint`` runs it.)"""
import os
import shutil
import zipfile

import pytest

from tools import check_ascend_requirements as ascend
from tools import check_dependency_minimums as minimums
from tools.conformance.project import Walk
from tools.conformance.wheels import cache_root

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _text():
    with open(os.path.join(ROOT, ascend.REQUIREMENTS)) as handle:
        return handle.read()


@pytest.mark.parametrize("machine, present, absent", [
    ("x86_64", ["tensorflow==1.15.5", "numpy<1.19,>=1.17", "h5py==2.10.0", "gast==0.2.2"], []),
    ("aarch64", ["numpy<1.20,>=1.19.2", "h5py==2.10.0", "gast==0.2.2"], ["tensorflow"]),
])
def test_requirements_per_machine(machine, present, absent):
    found = dict((r.name, str(r)) for r in ascend.requirements(_text(), machine))
    for requirement in present:
        assert requirement in found.values()
    for name in absent:
        assert name not in found
    assert all(";" not in line for line in found.values())


def test_source_built_packages_are_pinned_and_get_a_metadata_wheel(tmp_path):
    with pytest.raises(ValueError, match="gast is built from source and must be pinned with =="):
        ascend.pinned_version(ascend.Requirement("gast>=0.2"))
    path = ascend.metadata_wheel(str(tmp_path), "h5py", "2.10.0", ["numpy>=1.7", "six"])
    assert os.path.basename(path) == "h5py-2.10.0-py3-none-any.whl"
    with zipfile.ZipFile(path) as wheel:
        metadata = wheel.read("h5py-2.10.0.dist-info/METADATA").decode()
    assert "Name: h5py\nVersion: 2.10.0\nRequires-Dist: numpy>=1.7\nRequires-Dist: six\n" in metadata


def test_every_runtime_dependency_is_named():
    assert ascend.missing_dependencies(ROOT, _text()) == []
    without_scipy = "\n".join(line for line in _text().splitlines() if not line.startswith("scipy"))
    assert ascend.missing_dependencies(ROOT, without_scipy) == ["scipy"]


def test_ascend_lower_bounds_are_not_below_the_minimums(tmp_path):
    lowest = minimums.minimums(ROOT)
    assert lowest["SimpleITK"] == "2.1" and lowest["numpy"] == "1.17"
    assert minimums.lower_bounds_below(ROOT, lowest) == []
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "requirements"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), root)
    with open(os.path.join(root, ascend.REQUIREMENTS), "w") as handle:
        handle.write(_text().replace("scipy>=1.4,<1.8", "scipy>=1.3,<1.8"))
    assert minimums.lower_bounds_below(root, lowest) == [
        "requirements/ascend.txt: scipy<1.8,>=1.3 allows versions below 1.4 (pyproject.toml)"]


def test_a_keyword_of_a_newer_scipy_is_reported(tmp_path):
    from tests.tools.test_conformance import copy_project, lines_of, plant

    root = copy_project(str(tmp_path))
    path = "densenet3d_keras/evaluation/lesionwise.py"
    plant(root, path, "ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY)",
          "ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY, axes=(0, 1))")
    libraries = minimums.dependency_libraries(minimums.minimums(ROOT), os.path.join(cache_root(), "minimums"))
    findings = Walk(libraries, root, tuple(libraries.by_package)).run(["densenet3d_keras.evaluation.lesionwise"])
    line, = lines_of(root, path, "axes=(0, 1)")
    assert findings == [(path, line, "scipy.ndimage.label(axes=) (not in scipy 1.4.0)")]
