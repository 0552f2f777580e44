"""densenet3d_keras.models.pretrained: the shipped checkpoint and ``-m pretrained``."""
import json
import os

import h5py

from densenet3d_keras.cli import predict as predict_keras
from densenet3d_keras.inference.config import resolve
from densenet3d_keras.inference.postprocess import load_settings
from densenet3d_keras.models import pretrained
from densenet3d_keras.models.checkpoints import read_checkpoint_info, read_run_config
from generators import synthetic
from tests.cli.predict_runs import error_line, run_predict


def test_the_shipped_files_are_a_weights_only_dense24_with_its_recipe_and_card():
    info = read_checkpoint_info(pretrained.CHECKPOINT)
    assert (info["model"], info["padding"]) == ("dense24", "valid")
    assert os.path.getsize(pretrained.CHECKPOINT) < 5 * 1024 * 1024, "a few MB in the repository"
    with h5py.File(pretrained.CHECKPOINT, "r") as handle:
        assert "optimizer_weights" not in handle and "training_config" not in handle.attrs
    config = read_run_config(pretrained.CHECKPOINT)
    assert config["recipe"] == "real" and config["n4correction"] is False
    assert config["patch_size"] == 48 and config["num_epochs"] == 16
    assert not any(isinstance(value, str) and value.startswith("/") for value in config.values()), \
        "no paths of the machine that trained it"
    load_settings(pretrained.POSTPROCESSING)
    with open(pretrained.MODEL_CARD) as handle:
        card = handle.read()
    for needed in ("not for clinical use", "ten", "--recipe real", "Dice", "hours"):
        assert needed in card, needed


def test_pretrained_is_a_name_and_other_values_stay_paths():
    assert pretrained.resolve_checkpoint("pretrained") == pretrained.CHECKPOINT
    for value in ("./pretrained", "runs/dense24", "pretrained.h5"):
        assert pretrained.resolve_checkpoint(value) == value


def _config(argv):
    values = dict(vars(predict_keras.build_parser().parse_args(argv)))
    del values["demo"]
    return resolve(values)


def test_predict_takes_architecture_n4_and_postprocessing_from_the_shipped_model(tmp_path):
    base = ["-m", "pretrained", "-r", str(tmp_path / "root"), "-o", str(tmp_path / "out")]
    config = _config(base)
    assert config.checkpoint == pretrained.CHECKPOINT and config.model_name == "dense24"
    assert config.n4correction is False and config.n4correction_from == "checkpoint config.json"
    assert config.postprocess == pretrained.POSTPROCESSING
    assert config.postprocess_settings == load_settings(pretrained.POSTPROCESSING).to_dict()
    assert _config(base + ["--postprocess", "none"]).postprocess is None
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"min_size": {"wt": 10}}))
    assert _config(base + ["--postprocess", str(other)]).postprocess == str(other)


def test_a_missing_shipped_file_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pretrained, "CHECKPOINT", str(tmp_path / "gone.h5"))
    code, _, err = run_predict(["-m", "pretrained", "-r", str(tmp_path / "root"),
                                "-o", str(tmp_path / "out")], capsys)
    assert error_line(code, err) == ("error: the pretrained model is missing from this "
                                     "installation (expected %s)" % (tmp_path / "gone.h5"))


def test_predict_with_the_pretrained_model_needs_no_other_flag(tmp_path, capsys):
    case = synthetic.write_case(str(tmp_path / "cases"), "Brats17_PRE_1", shape=(48, 48, 40), seed=2)
    out = str(tmp_path / "out")
    code, stdout, err = run_predict(["-m", "pretrained", "-i", case, "-o", out, "--evaluate"], capsys)
    assert code == 0, err
    assert "model: the pretrained dense24" in stdout and pretrained.MODEL_CARD in stdout
    assert os.path.isfile(os.path.join(out, "Brats17_PRE_1.nii.gz"))
    assert os.path.isfile(os.path.join(out, "metrics.csv"))
    recorded = json.loads([line for line in stdout.splitlines() if line.startswith("predict: ")][0]
                          [len("predict: "):])
    assert recorded["postprocess"] == pretrained.POSTPROCESSING


def test_export_reads_the_pretrained_name():
    from densenet3d_keras.cli import export as export_keras

    args = export_keras.build_parser().parse_args(["-m", "pretrained", "-o", "x.pb"])
    assert pretrained.resolve_checkpoint(args.checkpoint) == pretrained.CHECKPOINT
