"""predict_keras.py --tta, --ensemble and --part-id / --num-parts, end to end on tiny data."""
import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.cli import predict as predict_keras
from generators import synthetic
from tests.cli.predict_runs import error_line as _error_line, run_predict as _run

SHAPE = (32, 32, 24)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Three cases (BraTS 2017 layout), two tiny checkpoints (a file and a run folder) with
    different weights, and one that records another architecture."""
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.checkpoints import save_checkpoint

    base = tmp_path_factory.mktemp("averaging")
    paths = {"root": str(base / "root"), "folder": str(base / "run_b")}
    synthetic.write_dataset(paths["root"], n_cases=3, shape=SHAPE, seed=8, splits=(1.0, 0.0, 0.0))
    paths["cases"] = sorted(name for name in os.listdir(paths["root"])
                            if os.path.isdir(os.path.join(paths["root"], name)))
    paths["case"] = os.path.join(paths["root"], paths["cases"][0])
    os.makedirs(paths["folder"])
    paths["checkpoint"] = str(base / "tiny_a_epoch_001.h5")
    paths["other"] = os.path.join(paths["folder"], "tiny_epoch_002.h5")
    paths["liar"] = str(base / "liar_epoch_001.h5")
    for seed, path, name in ((1, paths["checkpoint"], "tiny"), (2, paths["other"], "tiny"),
                             (2, paths["liar"], "dense24")):
        clear_session()
        keras.utils.set_random_seed(seed)
        save_checkpoint(build_model("tiny", 38), path, 1, name, "same")
    clear_session()
    return paths


def _config(stdout):
    (line,) = [line for line in stdout.splitlines() if line.startswith("predict: ")]
    return json.loads(line[len("predict: "):])


def _predict_case(workspace, out, extra, capsys, checkpoint="checkpoint"):
    """Predict the first case with probabilities; returns (labels, probabilities, stdout)."""
    case_id = os.path.basename(workspace["case"])
    code, stdout, err = _run(["-m", workspace[checkpoint], "-mn", "tiny", "-i", workspace["case"],
                              "-o", out, "--save-probabilities"] + extra, capsys)
    assert code == 0, err
    labels = np.asarray(nib.load(os.path.join(out, case_id + ".nii.gz")).dataobj)
    probabilities = np.asarray(nib.load(os.path.join(out, case_id + "_probabilities.nii.gz")).dataobj)
    return labels, probabilities, stdout


def _predict_in_graph_mode(workspace, out, extra):
    """predict_keras.py --graph-mode on the first case, in a process of its own (graph mode is
    chosen once per process); returns (labels, probabilities, stdout)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "predict_keras.py"), "--graph-mode",
                           "-m", workspace["checkpoint"], "-mn", "tiny", "-i", workspace["case"],
                           "-o", out, "--save-probabilities"] + extra,
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    assert done.returncode == 0, done.stderr
    case_id = os.path.basename(workspace["case"])
    labels = np.asarray(nib.load(os.path.join(out, case_id + ".nii.gz")).dataobj)
    probabilities = np.asarray(nib.load(os.path.join(out, case_id + "_probabilities.nii.gz")).dataobj)
    return labels, probabilities, done.stdout


def test_tta_and_ensemble_write_averaged_labels_record_the_flags_and_work_in_graph_mode(
        workspace, tmp_path, capsys):
    extra = ["--tta", "--ensemble", workspace["folder"]]
    labels, probabilities, stdout = _predict_case(workspace, str(tmp_path / "eager"), extra, capsys)
    config = _config(stdout)
    assert config["tta"] is True and config["ensemble"] == [workspace["folder"]]
    assert (config["part_id"], config["num_parts"]) == (0, 1)
    assert "model tiny 2/2 (valid padding) from %s" % workspace["other"] in stdout
    assert "over 2 model(s) x 8 mirror image(s): 16 forward passes per box" in stdout
    case_id = os.path.basename(workspace["case"])
    header = nib.load(os.path.join(str(tmp_path / "eager"), case_id + ".nii.gz")).header
    assert header["descrip"].tobytes().startswith(b"tiny fcn tta ensemble of 2 labels (brats2017)")
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    expected = np.array([0, 1, 2, 4])[np.argmax(probabilities[..., [0, 1, 2, 4]], axis=-1)]
    assert np.mean(expected == labels) > 0.9999
    graph_labels, graph, graph_stdout = _predict_in_graph_mode(workspace, str(tmp_path / "graph"),
                                                               extra)
    config = _config(graph_stdout)
    assert config["graph_mode"] is True and config["tta"] is True
    np.testing.assert_allclose(graph, probabilities, atol=1e-4)
    assert np.mean(graph_labels == labels) > 0.9999


def test_ensemble_is_the_mean_of_its_checkpoints_and_a_repeated_one_changes_nothing(
        workspace, tmp_path, capsys):
    one, p_one, _ = _predict_case(workspace, str(tmp_path / "a"), [], capsys)
    _, p_other, _ = _predict_case(workspace, str(tmp_path / "b"), [], capsys, "other")
    _, p_mean, _ = _predict_case(workspace, str(tmp_path / "ab"),
                                 ["--ensemble", workspace["folder"]], capsys)
    np.testing.assert_allclose(p_mean, (p_one + p_other) / 2.0, atol=1e-5)
    twice, p_twice, _ = _predict_case(workspace, str(tmp_path / "aa"),
                                      ["--ensemble", workspace["checkpoint"]], capsys)
    np.testing.assert_allclose(p_twice, p_one, atol=1e-5)
    assert np.mean(twice == one) > 0.9999


def test_parts_predict_every_case_once_and_an_empty_part_exits_0(workspace, tmp_path, capsys):
    out = str(tmp_path / "out")
    argv = ["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"], "-o", out,
            "--num-parts", "2"]
    seen = []
    for part_id, count in ((0, 2), (1, 1)):
        before = set(os.listdir(out)) if os.path.isdir(out) else set()
        code, stdout, err = _run(argv + ["--part-id", str(part_id)], capsys)
        assert code == 0, err
        assert "part %d of 2: %d of the run's 3 case(s)" % (part_id, count) in stdout
        seen += sorted(set(os.listdir(out)) - before)
    assert sorted(seen) == [case_id + ".nii.gz" for case_id in workspace["cases"]]
    assert seen[:2] == [workspace["cases"][0] + ".nii.gz", workspace["cases"][2] + ".nii.gz"]
    empty = str(tmp_path / "empty")
    code, stdout, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                              "-o", empty, "--part-id", "4", "--num-parts", "5"], capsys)
    assert code == 0, err
    assert "part 4 of 5: 0 of the run's 3 case(s), nothing to do" in stdout
    assert not os.path.exists(empty)


@pytest.mark.parametrize("argv, message", [
    (["--part-id", "2", "--num-parts", "2"], "error: --part-id must be in 0..1 (--num-parts 2), got 2"),
    (["--part-id", "-1", "--num-parts", "3"], "error: --part-id must be in 0..2 (--num-parts 3), got -1"),
    (["--num-parts", "0"], "error: --num-parts must be >= 1, got 0"),
    (["--num-parts", "2", "--evaluate"], "error: --evaluate and --overlays need the whole run"),
])
def test_bad_part_flags_are_one_line_errors(argv, message, tmp_path, capsys):
    out = str(tmp_path / "out")
    root = str(tmp_path / "root")
    code, stdout, err = _run(["-m", "a.h5", "-mn", "tiny", "-r", root, "-o", out] + argv,
                             capsys)
    assert _error_line(code, err).startswith(message)
    assert not os.path.exists(out) and "predict:" not in stdout


@pytest.mark.parametrize("which, message", [
    ("missing", "error: --ensemble: checkpoint not found: "),
    ("liar", "error: --ensemble: checkpoint %s holds a dense24 model, not tiny"),
])
def test_bad_ensemble_checkpoint_stops_before_anything_is_written(workspace, tmp_path, capsys,
                                                                  which, message):
    path = str(tmp_path / "nowhere") if which == "missing" else workspace["liar"]
    out = str(tmp_path / "out")
    code, _, err = _run(["-m", workspace["checkpoint"], "-mn", "tiny", "-r", workspace["root"],
                         "-o", out, "--ensemble", workspace["folder"], path], capsys)
    line = _error_line(code, err)
    assert line.startswith(message.replace("%s", path)) and path in line
    assert not os.path.exists(out) and "planes" not in err
