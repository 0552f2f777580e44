"""densenet3d_keras.core.memory: peak-memory estimates, and the warnings predict, evaluate and
training print before a case that may not fit."""
import os

import pytest

from densenet3d_keras.core import memory
from generators import synthetic
from tests.cli.predict_runs import run_predict

SHAPE = (48, 48, 40)


def test_estimates_grow_with_the_grid_and_match_the_measured_peaks():
    small, large = (240, 240, 155), (512, 512, 400)
    assert memory.predict_bytes(large) > memory.predict_bytes(small)
    assert memory.predict_bytes(small, probabilities=True) > memory.predict_bytes(small)
    # Measured peaks (the module's table): within 10% where they were fitted.
    assert memory.predict_bytes(small) == pytest.approx(2.33e9, rel=0.1)
    assert memory.predict_bytes((320, 320, 200)) == pytest.approx(3.63e9, rel=0.1)
    assert memory.evaluate_bytes((320, 320, 200)) == pytest.approx(1.03e9, rel=0.1)
    # The 512x512x400 probe: 10.4 GB to predict, 5.0 GB to evaluate, 4.9 GB to preprocess.
    assert 10.4e9 <= memory.predict_bytes(large) <= 1.3 * 10.4e9
    assert memory.evaluate_bytes(large) == pytest.approx(5.0e9, rel=0.1)
    assert memory.cache_bytes(large) == pytest.approx(4.9e9, rel=0.1)


def test_shortage_warns_only_when_the_estimate_exceeds_what_is_available():
    assert memory.shortage("predicting case A (1x1x1)", 2e9, available=3e9) is None
    line = memory.shortage("predicting case A (512x512x400)", 13.1e9, available=9.8e9)
    assert line.startswith("warning: predicting case A (512x512x400) needs about 13.1 GB")
    assert "9.8 GB are available" in line and "\n" not in line


def test_available_memory_is_read_from_the_machine():
    available = memory.available_bytes()
    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo here")
    assert 0 < available <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_a_cgroup_limit_caps_what_is_available(tmp_path):
    (tmp_path / "memory.max").write_text("4000000000\n")
    (tmp_path / "memory.current").write_text("1500000000\n")
    assert memory._cgroup_available(str(tmp_path)) == 2500000000
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_available(str(tmp_path)) is None
    assert memory._cgroup_available(str(tmp_path / "missing")) is None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.checkpoints import save_checkpoint

    base = tmp_path_factory.mktemp("memory")
    root = str(base / "root")
    synthetic.write_dataset(root, n_cases=1, shape=SHAPE, seed=3, splits=(1.0, 0.0, 0.0))
    case_id = sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))[0]
    clear_session()
    keras.utils.set_random_seed(1)
    checkpoint = str(base / "tiny_epoch_001.h5")
    save_checkpoint(build_model("tiny", 38), checkpoint, 1, "tiny", "same")
    clear_session()
    return {"root": root, "case_id": case_id, "checkpoint": checkpoint}


def _machine_with(monkeypatch, available):
    monkeypatch.setattr(memory, "available_bytes", lambda: available)


def test_predict_warns_before_a_case_that_may_not_fit_and_goes_ahead(workspace, tmp_path, capsys,
                                                                      monkeypatch):
    _machine_with(monkeypatch, 1e9)
    out = str(tmp_path / "out")
    code, stdout, err = run_predict(["-m", workspace["checkpoint"], "-r", workspace["root"],
                                     "-o", out, "--evaluate"], capsys)
    assert code == 0, err
    warnings = [line for line in stdout.splitlines() + err.splitlines() if "warning:" in line]
    expected = ("warning: predicting case %s (48x48x40) needs about %.1f GB"
                % (workspace["case_id"], memory.predict_bytes(SHAPE) / 1e9))
    assert any(line.startswith(expected) and "1.0 GB are available" in line for line in warnings)
    # Scoring needs far less than 1 GB: no warning about it.
    assert not any("scoring case" in line for line in warnings)
    assert os.path.isfile(os.path.join(out, workspace["case_id"] + ".nii.gz"))


def test_predict_says_nothing_when_the_case_fits(workspace, tmp_path, capsys, monkeypatch):
    _machine_with(monkeypatch, 64e9)
    code, stdout, err = run_predict(["-m", workspace["checkpoint"], "-r", workspace["root"],
                                     "-o", str(tmp_path / "out")], capsys)
    assert code == 0 and "warning:" not in stdout + err


def test_evaluate_and_the_training_cache_warn_too(workspace, tmp_path, monkeypatch):
    from densenet3d_keras.evaluation.report import evaluate_folder
    from generators.brats import discover_cases
    from generators.cache import load_cached

    _machine_with(monkeypatch, 1e6)
    case = discover_cases(workspace["root"], [workspace["case_id"]])[0]
    lines = []
    load_cached(case, str(tmp_path / "cache"), log=lines.append)
    assert [line for line in lines if line.startswith(
        "warning: preprocessing case %s (48x48x40) for training needs about" % case.case_id)]
    pred = tmp_path / "pred"
    pred.mkdir()
    os.symlink(case.label, str(pred / (case.case_id + ".nii.gz")))
    notes = []
    evaluate_folder(str(pred), [case], str(tmp_path / "scores"), on_note=notes.append)
    assert [line for line in notes if line.startswith(
        "warning: scoring case %s (48x48x40) needs about" % case.case_id)]
