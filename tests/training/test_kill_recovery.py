"""A training run killed (``kill -9``) at any point of an epoch's end resumes with its
checkpoints, best copy, ``checkpoint.json`` and ``history.csv`` consistent again."""
import csv
import json
import os
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture
def flags(small_dataset, cache_dir, tmp_path):
    with open(os.path.join(small_dataset, "train.txt")) as handle:
        first = handle.read().split()[0]
    case_list = tmp_path / "one_case.txt"
    case_list.write_text(first + "\n")
    return ["-mn", "tiny", "-r", small_dataset, "--train-list", str(case_list), "--n-pos", "2",
            "--n-neg", "2", "-bs", "2", "--performance", "1", "--padding", "valid",
            "--val-list", "test.txt", "--cache-dir", cache_dir, "-sp", str(tmp_path / "run")]


def _train(argv, kill=None):
    command = [sys.executable]
    command += [os.path.join(HERE, "kill_at.py"), kill[0], str(kill[1]), "--"] if kill else ["train_keras.py"]
    return subprocess.run(command + argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)


def _history(save):
    with open(os.path.join(save, "history.csv")) as handle:
        return list(csv.DictReader(handle))


def _pointer(save):
    with open(os.path.join(save, "checkpoint.json")) as handle:
        return json.load(handle)


def _check_consistent(save, epochs):
    from densenet3d_keras.models.checkpoints import read_best, read_checkpoint_record

    rows = _history(save)
    assert [int(float(row["epoch"])) for row in rows] == list(range(1, epochs + 1))
    pointer = _pointer(save)
    assert pointer["latest"] == "tiny_epoch_%03d.h5" % epochs and pointer["epoch"] == epochs
    best = read_best(save, "tiny")
    assert best is not None and dict((k, pointer[k]) for k in best) == best
    scores = [float(row["val_dice_mean"]) for row in rows]
    assert best["best_dice_mean"] == pytest.approx(max(scores), abs=1e-6)
    assert scores[best["best_epoch"] - 1] == pytest.approx(best["best_dice_mean"], abs=1e-6)
    for row in rows:  # every row is its checkpoint's own record
        path = os.path.join(save, "tiny_epoch_%03d.h5" % int(float(row["epoch"])))
        recorded = read_checkpoint_record(path)["history"]
        assert float(row["loss"]) == pytest.approx(recorded["loss"], rel=1e-6)


@pytest.mark.parametrize("point", ["pointer", "history"])
def test_a_run_killed_at_an_epochs_end_resumes_consistently(keras_session, flags, tmp_path, point):
    save = str(tmp_path / "run")
    killed = _train(flags + ["-e", "2"], kill=(point, 2))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert os.path.isfile(os.path.join(save, "tiny_epoch_002.h5"))
    assert _pointer(save)["epoch"] == (1 if point == "pointer" else 2)
    assert len(_history(save)) == 1, "the kill came before epoch 2's history row"

    resumed = _train(flags + ["-e", "3", "-c", "true", "-lp", save])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "after epoch 2" in resumed.stdout
    if point == "pointer":
        assert "holds the later tiny_epoch_002.h5" in resumed.stdout
    else:
        assert "restored the row of epoch(s) 2 from their checkpoints" in resumed.stdout
    _check_consistent(save, 3)
