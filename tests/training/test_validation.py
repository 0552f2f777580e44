"""Validation during training end to end: the log line, the best checkpoint, history.csv,
TensorBoard scalars, resuming, and the held-out cases never trained on."""
import contextlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

import train_keras

VALIDATION = re.compile(r"^validation epoch (\d+): dice wt ([0-9.]+), tc ([0-9.]+), et ([0-9.]+), "
                        r"mean ([0-9.]+) \(1 case, [0-9.]+ s\)$", re.M)


def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = train_keras.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Five labelled 48x48x40 cases: train.txt 3, val.txt 1, test.txt 1."""
    from generators.synthetic import write_dataset

    root = str(tmp_path_factory.mktemp("validation_data"))
    names = write_dataset(root, n_cases=5, shape=(48, 48, 40), seed=3, splits=(0.6, 0.2, 0.2))
    return {"root": root, "names": names, "val": names[3]}


def _argv(dataset, save, cache, *extra):
    return ["-mn", "tiny", "-r", dataset["root"], "--n-pos", "2", "--n-neg", "2", "--padding", "valid",
            "--cache-dir", cache, "-sp", save, "--val-list", "val.txt"] + list(extra)


@pytest.fixture(scope="module")
def run(dataset, tmp_path_factory):
    from densenet3d_keras.core.compat import clear_session

    work = str(tmp_path_factory.mktemp("validation_run"))
    save, cache = os.path.join(work, "run"), os.path.join(work, "cache")
    clear_session()
    code, out, err = _main(_argv(dataset, save, cache, "-e", "2", "--keep", "1", "--tensorboard",
                                 "--reduce-lr-on-plateau", "--early-stopping", "3"))
    clear_session()
    assert code == 0, err
    with open(os.path.join(save, "train_0.log")) as handle:
        log = handle.read()
    return {"save": save, "cache": cache, "work": work, "log": log, "out": out}


def test_validation_line_follows_each_epoch_and_modelzoo_lines_are_unchanged(run, dataset):
    log = run["log"]
    assert len(re.findall(r"^epoch-patient: ", log, re.M)) == 2 * 3 * 2  # epochs x patients x batches
    assert len(re.findall(r"^patient loss: ", log, re.M)) == 2 * 3
    lines = log.splitlines()
    for epoch in (1, 2):
        done = [i for i, line in enumerate(lines) if line.startswith("epoch %d done:" % epoch)][0]
        assert lines[done + 1].startswith("validation epoch %d: dice wt " % epoch)
    assert [int(m[0]) for m in VALIDATION.findall(log)] == [1, 2]
    patients = re.search(r"^patients of worker 0: (.*)$", log, re.M).group(1).split(", ")
    assert patients == dataset["names"][:3] and dataset["val"] not in patients
    assert "validation cases, after every 1 epoch(s) and the last: %s\n" % dataset["val"] in log
    assert "1 validation case(s) prepared" in run["out"]


def test_best_checkpoint_is_the_best_validated_epoch_and_scores_as_logged(run, dataset):
    from densenet3d_keras.core.labels import REGIONS, region_mask
    from densenet3d_keras.evaluation.metrics import dice
    from densenet3d_keras.inference.predict import predict_fcn
    from densenet3d_keras.models.loading import load_model
    from generators.brats import load_case
    from generators.volumes import load_case_volumes

    scores = dict((int(m[0]), [float(v) for v in m[1:]]) for m in VALIDATION.findall(run["log"]))
    best_epoch = max(scores, key=lambda epoch: (scores[epoch][3], -epoch))
    with open(os.path.join(run["save"], "checkpoint.json")) as handle:
        pointer = json.load(handle)
    assert pointer["latest"] == "tiny_epoch_002.h5" and pointer["best"] == "tiny_best.h5"
    assert pointer["best_epoch"] == best_epoch
    assert pointer["best_dice_mean"] == pytest.approx(scores[best_epoch][3], abs=1e-4)
    # --keep 1 pruned the epoch checkpoints but never the best one.
    assert sorted(f for f in os.listdir(run["save"]) if f.endswith(".h5")) == ["tiny_best.h5", "tiny_epoch_002.h5"]

    # Scored again from the files, without the cache or the callback: the same Dice.
    model, _, info = load_model(os.path.join(run["save"], "tiny_best.h5"), "tiny", None, "valid")
    assert info["epoch"] == best_epoch
    volumes = load_case_volumes(load_case(os.path.join(dataset["root"], dataset["val"])))
    labels = predict_fcn(model, volumes.image, volumes.background).labels
    again = [dice(region_mask(labels, r), region_mask(volumes.label, r)) for r in REGIONS]
    np.testing.assert_allclose(again, scores[best_epoch][:3], atol=1e-4)


def test_history_csv_curves_and_tensorboard_scalars(run):
    from callbacks.history import read_history
    from densenet3d_keras.core.compat import tf

    rows = read_history(os.path.join(run["save"], "history.csv"))
    assert [row["epoch"] for row in rows] == [1, 2]  # counted from 1, as the log and the checkpoints
    means = [float(v) for v in re.findall(r"^epoch \d done: mean loss ([0-9.]+),", run["log"], re.M)]
    np.testing.assert_allclose([row["loss"] for row in rows], means, atol=1e-4)
    logged = [float(m[4]) for m in VALIDATION.findall(run["log"])]
    np.testing.assert_allclose([row["val_dice_mean"] for row in rows], logged, atol=1e-4)
    assert [row["lr"] for row in rows] == pytest.approx([5e-4, 5e-4])
    with open(os.path.join(run["save"], "learning_curves.png"), "rb") as handle:
        assert handle.read(4) == b"\x89PNG"
    tags = set()
    for folder, _, files in os.walk(os.path.join(run["save"], "tensorboard")):
        for name in files:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                tags.update((os.path.basename(folder), value.tag) for value in event.summary.value)
    # Keras writes "val_*" keys to the validation folder, without the prefix.
    assert {("train", "epoch_loss"), ("train", "epoch_lr"), ("validation", "epoch_dice_mean"),
            ("validation", "epoch_dice_wt")} <= tags


def test_resume_appends_history_and_keeps_the_best(run, dataset):
    from densenet3d_keras.core.compat import clear_session

    save = os.path.join(run["work"], "resumed")
    shutil.copytree(run["save"], save)
    with open(os.path.join(save, "checkpoint.json")) as handle:
        before = json.load(handle)
    clear_session()
    code, out, err = _main(_argv(dataset, save, run["cache"], "-e", "3", "--keep", "1", "-c", "true",
                                 "-lp", save))
    clear_session()
    assert code == 0, err
    with open(os.path.join(save, "checkpoint.json")) as handle:
        after = json.load(handle)
    third = float(VALIDATION.findall(out)[-1][4])
    if third > before["best_dice_mean"]:
        assert after["best_epoch"] == 3 and after["best_dice_mean"] == pytest.approx(third, abs=1e-4)
    else:
        assert dict((k, after[k]) for k in ("best", "best_epoch", "best_dice_mean")) == \
            dict((k, before[k]) for k in ("best", "best_epoch", "best_dice_mean"))
    from callbacks.history import read_history

    assert [row["epoch"] for row in read_history(os.path.join(save, "history.csv"))] == [1, 2, 3]


def test_validation_cases_are_never_trained_on(dataset, tmp_path):
    listed = tmp_path / "all.txt"
    listed.write_text("\n".join(dataset["names"]) + "\n")
    save = str(tmp_path / "run")
    code, _, err = _main(_argv(dataset, save, str(tmp_path / "cache"), "--train-list", str(listed)))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --val-list val.txt names training cases: %s" % dataset["val"])
    assert not os.path.exists(save)


def test_without_a_training_list_every_other_case_is_trained_on(dataset, tmp_path):
    from densenet3d_keras.cli.train import build_parser
    from densenet3d_keras.training.config import resolve
    from densenet3d_keras.training.data import select_cases
    from densenet3d_keras.training.validation import select_validation_cases

    root = str(tmp_path / "data")
    shutil.copytree(dataset["root"], root)
    os.remove(os.path.join(root, "train.txt"))
    config = resolve(build_parser().parse_args(["-r", root, "--val-list", "val.txt"]))
    held_out = [case.case_id for case in select_validation_cases(config)]
    lines = []
    cases = select_cases(config, held_out, lines.append)
    assert held_out == [dataset["val"]]
    assert [case.case_id for case in cases] == [n for n in dataset["names"] if n != dataset["val"]]
    assert lines == ["training on every case under %s except the 1 validation case(s)" % root]


@pytest.mark.parametrize("extra, message", [
    (["--early-stopping", "2"], "--early-stopping act on the validation Dice: give validation cases with --val-list"),
    (["--reduce-lr-on-plateau"], "--reduce-lr-on-plateau act on the validation Dice"),
    (["--val-every", "2"], "--val-every act on the validation Dice: give validation cases with --val-list"),
    (["--tensorboard", "{file}"], "TensorBoard folder {file} exists and is not a folder"),
    (["--tensorboard", "/dev/null/tb"], "cannot create TensorBoard folder /dev/null/tb: /dev/null is not a folder"),
    (["--val-list", "val.txt", "--reduce-lr-on-plateau", "1.5,2"], "the factor must be in (0, 1)"),
    (["--val-list", "val.txt", "--reduce-lr-on-plateau", "0.5"], "takes FACTOR,PATIENCE"),
    (["--val-list", "val.txt", "--val-every", "0"], "--val-every must be >= 1, got 0"),
    (["--val-list", "val.txt", "--early-stopping", "0"], "--early-stopping must be >= 1, got 0"),
    (["--val-list", "missing.txt"], "case list not found: missing.txt"),
])
def test_bad_validation_options_exit_2_with_one_line(dataset, tmp_path, extra, message):
    save = str(tmp_path / "run")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    extra = [flag.format(file=blocker) for flag in extra]
    code, _, err = _main(["-mn", "tiny", "-r", dataset["root"], "-sp", save] + extra)
    assert code == 2 and err.count("\n") == 1 and message.format(file=blocker) in err, err
    assert not os.path.exists(save)
