"""train_keras.py end to end: log lines, checkpoints, resume, flags and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import train_keras
from densenet3d_keras.cli.runner import str2bool
from densenet3d_keras.cli.train import build_parser
from densenet3d_keras.training.config import resolve

from tests import ROOT


def _run(args, capsys):
    code = train_keras.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _lines(path, marker):
    with open(path) as handle:
        return [line.rstrip("\n") for line in handle if line.startswith(marker)]


@pytest.fixture
def base_args(small_dataset, cache_dir, tmp_path):
    return ["-mn", "tiny", "-r", small_dataset, "--n-pos", "2", "--n-neg", "2", "-bs", "2",
            "--cache-dir", cache_dir, "-sp", str(tmp_path / "ckpt"), "--log-dir", str(tmp_path / "logs")]


def test_train_log_checkpoints_and_resume(keras_session, base_args, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ASCEND_DEVICE_ID", "3")
    code, out, err = _run(base_args + ["-e", "2", "--padding", "valid"], capsys)
    assert code == 0, err
    log = str(tmp_path / "logs" / "train_3.log")
    batches = _lines(log, "epoch-patient:")
    patients = _lines(log, "patient loss:")
    # 3 training cases (train.txt), 4 centres each -> 2 batches per patient, 2 epochs.
    assert len(batches) == 12 and len(patients) == 6
    assert batches[0].startswith("epoch-patient: 1, 1, iter: 1-2, p%: ")
    assert batches[-1].startswith("epoch-patient: 2, 3, iter: 2-2, ")
    assert batches[0] in out  # also on stdout
    fields = [line.split(" ") for line in batches]
    assert all(len(f) == 16 and float(f[15]) > 0 for f in fields)
    assert all(0.0 <= float(f[6].rstrip(",")) <= 1.0 for f in fields)
    assert all(np.isfinite(float(p.split(" ")[2].rstrip(","))) for p in patients)
    ckpt = tmp_path / "ckpt"
    assert sorted(os.listdir(str(ckpt))) == ["checkpoint.json", "config.json", "history.csv",
                                             "learning_curves.png", "tiny_epoch_001.h5",
                                             "tiny_epoch_002.h5"]
    with open(str(ckpt / "config.json")) as handle:
        config = json.load(handle)
    assert config["model_name"] == "tiny" and config["padding"] == "valid" and config["num_epochs"] == 2

    # Resume: one more epoch, optimizer state and epoch counter carried over.
    code, out, err = _run(base_args + ["-e", "3", "--padding", "valid", "-c", "true", "-lp", str(ckpt)], capsys)
    assert code == 0, err
    assert "resumed from" in out and "after epoch 2" in out
    batches = _lines(log, "epoch-patient:")
    assert len(batches) == 18 and batches[12].startswith("epoch-patient: 3, 1, iter: 1-2")
    from densenet3d_keras.models.objectives import CUSTOM_OBJECTS
    from densenet3d_keras.core.compat import keras

    resumed = keras.models.load_model(str(ckpt / "tiny_epoch_003.h5"), custom_objects=CUSTOM_OBJECTS)
    assert int(keras.backend.get_value(resumed.optimizer.iterations)) == 18

    # The checkpoint holds a tiny model: asking for dense24 names both.
    code, out, err = _run(["-mn", "dense24", "-r", base_args[3], "-c", "true", "-lp", str(ckpt),
                           "--cache-dir", base_args[-5], "-sp", str(tmp_path / "other")], capsys)
    assert code == 2 and "holds a tiny model, not dense24" in err


def test_modelzoo_awk_parsing_of_a_real_log(keras_session, base_args, tmp_path, capsys):
    code, _, err = _run(base_args + ["-e", "1", "--performance", "1"], capsys)
    assert code == 0, err
    log = str(tmp_path / "logs" / "train_0.log")
    step = subprocess.run(["bash", "-c", "grep 'time cust' %s | awk '{sum+=$16} END {print sum/NR}'" % log],
                          stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    accuracy = subprocess.run(["bash", "-c", "grep 'patient acc' %s | tail -1 | awk '{print $6}'" % log],
                              stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert float(step) > 0 and 0 <= float(accuracy) <= 100
    assert len(_lines(log, "epoch-patient:")) == 3  # --performance 1: one batch per patient


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("1", True), ("no", False)])
def test_booleans_parse(text, value):
    assert str2bool(text) is value
    args = build_parser().parse_args(["-r", "x", "-nc", text])
    assert args.n4correction is value


@pytest.mark.parametrize("argv, line", [
    (["-c", "yes_please"], "error: argument -c/--continue-training: expected true or false, "
                           "got 'yes_please' (see --help)"),
    (["-nc", "maybe"], "error: argument -nc/--n4correction: expected true or false, got 'maybe' "
                       "(see --help)"),
    (["--padding", "full"], "error: argument --padding: invalid choice: 'full' (choose from "),
])
def test_usage_errors_are_one_line_and_exit_2(argv, line, capsys):
    with pytest.raises(SystemExit) as exit:
        train_keras.main(["-r", "x"] + argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(line), err
    assert "usage:" not in err


def test_resolve_defaults_and_nocorrection():
    config = resolve(build_parser().parse_args(["-r", "data", "-mn", "dense24_nocorrection"]))
    assert config.architecture == "dense24" and config.n4correction is False
    assert config.patch_size == 38 and config.output_size == 12
    assert config.save_path == os.path.join("runs", "dense24_nocorrection")
    assert config.log_dir == config.save_path
    assert config.lr == 5e-4 and config.batch_size == 2 and config.num_epochs == 5
    assert config.n_pos == 200 and config.n_neg == 200


@pytest.mark.parametrize("args, message", [
    (["-mn", "dense99"], "unknown model name 'dense99' (choose from dense24, dense48"),
    (["-hs", "40"], "non-cubic patches"),
    (["-ps", "10"], "-ps 10 does not match the model"),
    (["-c", "true"], "-c true needs -lp"),
    (["-bs", "0"], "-bs must be >= 1"),
    (["--performance", "0"], "--performance must be >= 1, got 0"),
    (["--performance", "-1"], "--performance must be >= 1, got -1"),
    (["-mn", "dense24_nocorrection", "-nc", "true"], "drop -nc true"),
    (["--augment", "flip,rotate"], "unknown augmentation 'rotate' (choose from flip, intensity, or none)"),
    (["--lr-schedule", "poly", "--reduce-lr-on-plateau", "--val-list", "v.txt"],
     "--lr-schedule poly and --reduce-lr-on-plateau both set the learning rate"),
])
def test_bad_configuration_exits_2_with_one_line(args, message, capsys, tmp_path):
    code, out, err = _run(["-r", str(tmp_path)] + args, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_recipe_fills_in_what_the_command_line_does_not_give():
    from densenet3d_keras.cli.train import given_options
    from densenet3d_keras.training.recipes import RECIPES, apply_recipe

    argv = ["-r", "data", "--recipe", "real", "-e", "3", "--n-neg", "5"]
    config = resolve(apply_recipe(build_parser().parse_args(argv), given_options(argv)))
    recipe = RECIPES["real"]
    assert (config.num_epochs, config.n_neg) == (3, 5)
    assert config.patch_size == recipe["patch_size"] and config.output_size == recipe["patch_size"] - 26
    for key in ("padding", "precision", "sampling", "shuffle", "lr_schedule", "lr", "n_pos"):
        assert getattr(config, key) == recipe[key], key
    assert config.augment == tuple(recipe["augment"].split(","))
    plain = resolve(build_parser().parse_args(["-r", "data"]))
    assert (plain.sampling, plain.shuffle, plain.augment, plain.lr_schedule, plain.recipe) == (
        "reference", False, (), "constant", None)


def test_real_data_options_train_end_to_end(keras_session, base_args, tmp_path, capsys):
    code, out, err = _run(base_args + ["-e", "2", "--padding", "valid", "--sampling", "balanced",
                                       "--shuffle", "true", "--augment", "flip,intensity",
                                       "--lr-schedule", "poly", "--lr", "1e-3"], capsys)
    assert code == 0, err
    with open(str(tmp_path / "ckpt" / "config.json")) as handle:
        config = json.load(handle)
    assert (config["sampling"], config["shuffle"], config["augment"], config["lr_schedule"]) == (
        "balanced", True, ["flip", "intensity"], "poly")
    batches = _lines(str(tmp_path / "logs" / "train_0.log"), "epoch-patient:")
    patients = [int(line.split(" ")[2].rstrip(",")) for line in batches[:6]]
    assert sorted(patients) == [1, 1, 2, 2, 3, 3] and patients != sorted(patients)
    assert len(_lines(str(tmp_path / "logs" / "train_0.log"), "patient loss:")) == 6
    from callbacks.history import read_history

    rates = [row["lr"] for row in read_history(str(tmp_path / "ckpt" / "history.csv"))]
    # the rate of each epoch's last batch: steps 5 and 11 of 12
    assert rates == pytest.approx([1e-3 * (1 - 5 / 12.0) ** 0.9, 1e-3 * (1 - 11 / 12.0) ** 0.9], rel=1e-5)


def test_bad_data_exits_2_and_writes_nothing(small_dataset, tmp_path, capsys):
    save = tmp_path / "ckpt"
    common = ["-mn", "tiny", "-sp", str(save), "--cache-dir", str(tmp_path / "cache")]
    code, _, err = _run(common + ["-r", str(tmp_path / "missing")], capsys)
    assert code == 2 and "dataset root not found" in err
    code, _, err = _run(common + ["-r", small_dataset, "-nc", "true"], capsys)
    assert code == 2 and "N4-corrected file missing" in err and "_flair_corrected.nii.gz" in err
    code, _, err = _run(common + ["-r", small_dataset, "--train-list", str(tmp_path / "nope.txt")], capsys)
    assert code == 2 and "case list not found" in err
    assert not save.exists()


def test_missing_modality_in_a_training_case(tmp_path, capsys):
    from generators.synthetic import write_dataset

    root = str(tmp_path / "data")
    write_dataset(root, n_cases=2, shape=(40, 40, 40), seed=1, splits=(1.0, 0.0, 0.0))
    victim = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))[1]
    os.remove(os.path.join(root, victim, victim + "_t2.nii.gz"))
    code, _, err = _run(["-mn", "tiny", "-r", root, "-sp", str(tmp_path / "ckpt"),
                         "--cache-dir", str(tmp_path / "cache")], capsys)
    assert code == 2 and "missing t2 file for case %s" % victim in err


def test_summary_prints_dense24_parameter_count():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "train_keras.py"), "--model", "dense24", "--summary"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "Total params: 793406" in out.stdout.replace(",", "")


def test_demo_keeps_options_given_on_the_command_line():
    from densenet3d_keras.cli.train import given_options
    from densenet3d_keras.training.demo import DEMO, apply_demo_defaults

    argv = ["--demo", "--num-epochs", "7", "--padding=same", "-mn", "tiny"]
    given = given_options(argv)
    assert {"num_epochs", "padding", "model_name", "demo"} <= given and "n_pos" not in given
    config = apply_demo_defaults(resolve(build_parser().parse_args(argv)), given)
    assert config.num_epochs == 7 and config.padding == "same"
    assert config.n_pos == DEMO["n_pos"] and config.n_neg == DEMO["n_neg"]


def _incomplete_dataset(root):
    from generators.synthetic import write_dataset

    write_dataset(root, n_cases=2, shape=(40, 40, 40), seed=1, splits=(1.0, 0.0, 0.0))
    os.remove(os.path.join(root, "train.txt"))  # discover every folder
    victim = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))[1]
    os.rename(os.path.join(root, victim, victim + "_flair.nii.gz"),
              os.path.join(root, victim, victim + "_FLAIR.nii.gz"))
    return victim


def test_incomplete_case_folder_stops_training_unless_skipped(tmp_path, capsys):
    from densenet3d_keras.training.data import select_cases

    root = str(tmp_path / "data")
    victim = _incomplete_dataset(root)
    save = tmp_path / "ckpt"
    code, _, err = _run(["-mn", "tiny", "-r", root, "-sp", str(save), "-e", "1", "--n-pos", "2",
                         "--n-neg", "2", "--cache-dir", str(tmp_path / "cache")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: case folder %s has no flair file (expected %s_flair.nii.gz or "
                          "%s-t2f.nii.gz); found %s_FLAIR.nii.gz"
                          % (os.path.join(root, victim), victim, victim, victim))
    assert not save.exists()
    config = resolve(build_parser().parse_args(["-mn", "tiny", "-r", root, "--skip-incomplete"]))
    cases = select_cases(config)
    assert victim not in [case.case_id for case in cases] and len(cases) == 1
    assert capsys.readouterr().err.startswith(
        "skipped incomplete case folder: case folder %s has no flair file" % os.path.join(root, victim))


def test_every_flag_defaults_to_the_configurations_default():
    from densenet3d_keras.training.config import DEFAULTS, FIELDS
    from generators.augment import parse_augment

    checked = set()
    for action in build_parser()._actions:
        field = {"hsize": "patch_size", "wsize": "patch_size", "csize": "patch_size"}.get(action.dest, action.dest)
        if field in FIELDS:
            default = parse_augment(action.default) if field == "augment" else action.default
            assert default == getattr(DEFAULTS, field), field
            checked.add(field)
    derived = {"architecture", "output_size", "graph_mode", "summary", "demo", "skip_incomplete", "scale_lr"}
    assert set(FIELDS) - checked <= derived, sorted(set(FIELDS) - checked)
    assert DEFAULTS.precision_mode == "allow_fp32_to_fp16" and DEFAULTS.model_name == "dense24"


def test_the_gpu_choice_is_applied_once_before_the_thread_choice(monkeypatch):
    from densenet3d_keras.runtime import devices, threads

    calls = []
    monkeypatch.setattr(devices, "apply_gpu_choice", lambda gpu: calls.append(("gpu", gpu)))
    monkeypatch.setattr(threads, "apply_thread_counts", lambda *counts: calls.append(("threads",)) or (1, 2))
    monkeypatch.setattr("densenet3d_keras.models.builder.build_model", lambda *a, **k: _Summary())
    assert train_keras.main(["-mn", "tiny", "--summary", "-gpu", "3"]) == 0
    assert calls == [("gpu", "3"), ("threads",)]


class _Summary(object):
    def summary(self, line_length=None):
        pass
