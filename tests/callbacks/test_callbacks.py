"""Log line format (parsed as the ModelZoo scripts parse it) and checkpoint files."""
import json
import os
import subprocess

import pytest

from callbacks.checkpoint import (EpochCheckpoint, find_checkpoint, read_checkpoint_info,
                                  save_checkpoint)
from callbacks.training_log import format_batch_line, format_patient_line, log_path_for_device
from generators.sequence import BatchInfo


def _awk(text, program):
    out = subprocess.run(["awk", program], input=text, stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return out.strip()


def test_batch_line_fields_as_modelzoo_parses_them():
    line = format_batch_line(BatchInfo(3, 7, "X", 12, 200, 0.5), 1.23456, 97.5, 88.25, 0.1234)
    assert line == ("epoch-patient: 3, 7, iter: 12-200, p%: 0.5000, loss: 1.2346, "
                    "acc_flair_t2: 97.50%, acc_t1_t1ce: 88.25%, time cust: 0.1234")
    assert _awk(line, "{print $16}") == "0.1234"
    assert _awk(line, "{print $9}") == "1.2346,"
    assert len(line.split(" ")) == 16


def test_patient_line_fields():
    line = format_patient_line(1.23449, 92.875)
    assert line == "patient loss: 1.2345, patient acc: 92.8750"
    assert _awk(line, "{print $3}") == "1.2345,"
    assert _awk(line, "{print $6}") == "92.8750"


def test_log_path_uses_ascend_device_id(monkeypatch):
    monkeypatch.delenv("ASCEND_DEVICE_ID", raising=False)
    assert log_path_for_device("out") == os.path.join("out", "train_0.log")
    monkeypatch.setenv("ASCEND_DEVICE_ID", "5")
    assert log_path_for_device("out") == os.path.join("out", "train_5.log")


def test_checkpoints_atomic_tagged_and_pruned(keras_session, tmp_path):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    model = compile_model(build_model("tiny"))
    callback = EpochCheckpoint(str(tmp_path), "tiny", padding="same", keep=2)
    callback.set_model(model)
    for epoch in range(3):
        callback.on_epoch_end(epoch)
    files = sorted(os.listdir(str(tmp_path)))
    assert files == ["checkpoint.json", "tiny_epoch_002.h5", "tiny_epoch_003.h5"]
    with open(str(tmp_path / "checkpoint.json")) as handle:
        assert json.load(handle) == {"latest": "tiny_epoch_003.h5", "epoch": 3}
    assert find_checkpoint(str(tmp_path)).endswith("tiny_epoch_003.h5")
    assert read_checkpoint_info(str(tmp_path / "tiny_epoch_002.h5")) == {
        "epoch": 2, "model": "tiny", "padding": "same"}


def test_failed_save_keeps_previous_checkpoint(keras_session, tmp_path, monkeypatch):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    model = compile_model(build_model("tiny"))
    path = str(tmp_path / "tiny_epoch_001.h5")
    save_checkpoint(model, path, 1, "tiny")
    original = open(path, "rb").read()

    def crash(*args, **kwargs):
        with open(args[0], "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path, 2, "tiny")
    assert open(path, "rb").read() == original
    assert os.listdir(str(tmp_path)) == ["tiny_epoch_001.h5"]


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        find_checkpoint(str(tmp_path / "none.h5"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        find_checkpoint(str(tmp_path))
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        read_checkpoint_info(str(bad))
