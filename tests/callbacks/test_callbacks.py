"""Log line format (parsed as the ModelZoo scripts parse it) and checkpoint files."""
import errno
import json
import os
import subprocess

import pytest

from callbacks.checkpoint import EpochCheckpoint
from densenet3d_keras.models.checkpoints import (find_checkpoint,
                                                 read_checkpoint_info,
                                                 save_checkpoint)
from callbacks.training_log import (TrainingLog, format_batch_line, format_patient_line,
                                    log_path_for_device)
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

    def crash(handle, **kwargs):  # the HDF5 file being built (in memory)
        handle.create_dataset("partial", data=[1, 2, 3])
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


def _fake(folder, *names):
    for name in names:
        (folder / name).write_bytes(b"another run's checkpoint")


def test_pruning_never_touches_other_runs_checkpoints(keras_session, tmp_path):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    # Higher-numbered files of an earlier run and of another model: the old pruning (newest
    # `keep` of all *_epoch_*.h5) deleted every new checkpoint right after saving it.
    _fake(tmp_path, "tiny_epoch_009.h5", "dense24_epoch_017.h5")
    callback = EpochCheckpoint(str(tmp_path), "tiny", keep=2)
    callback.set_model(compile_model(build_model("tiny")))
    for epoch in range(3):
        callback.on_epoch_end(epoch)
    assert sorted(os.listdir(str(tmp_path))) == ["checkpoint.json", "dense24_epoch_017.h5",
                                                 "tiny_epoch_002.h5", "tiny_epoch_003.h5",
                                                 "tiny_epoch_009.h5"]
    assert (tmp_path / "dense24_epoch_017.h5").read_bytes() == b"another run's checkpoint"


def test_pruning_counts_the_resumed_runs_earlier_checkpoints(keras_session, tmp_path):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    _fake(tmp_path, "tiny_epoch_001.h5", "tiny_epoch_002.h5", "dense24_epoch_001.h5")
    previous = [str(tmp_path / "tiny_epoch_001.h5"), str(tmp_path / "tiny_epoch_002.h5")]
    callback = EpochCheckpoint(str(tmp_path), "tiny", keep=2, previous=previous)
    callback.set_model(compile_model(build_model("tiny")))
    callback.on_epoch_end(2)
    assert sorted(os.listdir(str(tmp_path))) == ["checkpoint.json", "dense24_epoch_001.h5",
                                                 "tiny_epoch_002.h5", "tiny_epoch_003.h5"]


def _full_disk_fsync(monkeypatch, name_part=""):
    """Make ``os.fsync`` fail with ENOSPC, as a full disk does (for files whose name contains
    ``name_part``), after the data were written to the file."""
    real = os.fsync

    def fsync(descriptor):
        if name_part in os.readlink("/proc/self/fd/%d" % descriptor):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)


def test_disk_full_while_saving_a_checkpoint(keras_session, tmp_path, monkeypatch):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    model = compile_model(build_model("tiny"))
    first = str(tmp_path / "tiny_epoch_001.h5")
    save_checkpoint(model, first, 1, "tiny")
    original = open(first, "rb").read()
    _full_disk_fsync(monkeypatch)
    path = str(tmp_path / "tiny_epoch_002.h5")
    with pytest.raises(OSError) as raised:
        save_checkpoint(model, path, 2, "tiny")
    assert str(raised.value) == "cannot write checkpoint %s: No space left on device" % path
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(str(tmp_path)) == ["tiny_epoch_001.h5"]  # no temporary file left
    assert open(first, "rb").read() == original


def test_training_log_write_errors_name_the_file():
    log = TrainingLog(None, "/dev/full", stream=None)  # every write: No space left on device
    with pytest.raises(OSError) as raised:
        log.on_train_begin()
        log.write("epoch-patient: 1, 1, iter: 1-1")
    assert str(raised.value) == "cannot write the training log /dev/full: No space left on device"
    log.close()
    log.close()


def _two_models(folder):
    _fake(folder, "tiny_epoch_001.h5", "tiny_epoch_002.h5", "dense24_epoch_017.h5")


@pytest.mark.parametrize("pointer, problem", [
    ("{not json", "is not valid JSON"),
    ("[]", 'has no "latest" entry'),
    ('{"epoch": 3}', 'has no "latest" entry'),
    ('{"latest": 5}', 'names no checkpoint file ("latest": 5)'),
    ('{"latest": "../elsewhere/tiny_epoch_009.h5"}', "names no checkpoint file"),
    ('{"latest": "tiny_epoch_003.h5", "epoch": 3}', "names tiny_epoch_003.h5, which is missing"),
])
def test_broken_pointer_with_several_models_names_the_file(tmp_path, pointer, problem):
    _two_models(tmp_path)
    (tmp_path / "checkpoint.json").write_text(pointer)
    with pytest.raises(ValueError) as raised:
        find_checkpoint(str(tmp_path))
    message = str(raised.value)
    assert message.startswith(str(tmp_path / "checkpoint.json") + " " + problem)
    assert "checkpoints of 2 models (dense24, tiny)" in message and "\n" not in message


def test_broken_pointer_falls_back_to_the_only_model(tmp_path):
    _fake(tmp_path, "tiny_epoch_001.h5", "tiny_epoch_002.h5")
    (tmp_path / "checkpoint.json").write_text('{"latest": ')
    notes = []
    assert find_checkpoint(str(tmp_path), notes.append) == str(tmp_path / "tiny_epoch_002.h5")
    assert len(notes) == 1 and "checkpoint.json is not valid JSON" in notes[0]
    # Without a pointer the same holds; with several models there is no guessing.
    (tmp_path / "checkpoint.json").unlink()
    assert find_checkpoint(str(tmp_path)) == str(tmp_path / "tiny_epoch_002.h5")
    _fake(tmp_path, "dense24_epoch_017.h5")
    with pytest.raises(ValueError, match="holds checkpoints of 2 models .* and no checkpoint.json"):
        find_checkpoint(str(tmp_path))


def test_patient_lines_average_each_patients_batches_when_shuffled(tmp_path):
    class Sequence(object):
        infos = [BatchInfo(1, patient, "case%d" % patient, iteration, 2, 0.5)
                 for patient, iteration in ((2, 1), (1, 2), (2, 2), (1, 1))]

        def epoch_infos(self):
            return list(self.infos)

    class Model(object):
        def reset_metrics(self):
            pass

    log = TrainingLog(Sequence(), str(tmp_path / "train_0.log"), stream=None)
    log.set_model(Model())
    log.on_train_begin()
    log.on_epoch_begin(0)
    for batch, loss in enumerate([1.0, 2.0, 3.0, 4.0]):
        log.on_train_batch_begin(batch)
        log.on_train_batch_end(batch, {"loss": loss, "wt_accuracy_percent": 90.0,
                                       "labels_accuracy_percent": 80.0})
    log.on_epoch_end(0, {})
    log.close()
    lines = (tmp_path / "train_0.log").read_text().splitlines()
    patients = [line for line in lines if line.startswith("patient loss")]
    # patient 2 ends at the third batch (losses 1 and 3), patient 1 at the fourth (2 and 4)
    assert patients == [format_patient_line(2.0, 85.0), format_patient_line(3.0, 85.0)]
    assert lines.index(patients[0]) == 3 and lines.index(patients[1]) == 5


def test_a_pointer_that_lags_behind_a_later_checkpoint_of_its_model_gives_the_later(tmp_path):
    _fake(tmp_path, "tiny_epoch_001.h5", "tiny_epoch_002.h5", "dense24_epoch_009.h5")
    (tmp_path / "checkpoint.json").write_text('{"latest": "tiny_epoch_001.h5", "epoch": 1}')
    notes = []
    assert find_checkpoint(str(tmp_path), notes.append) == str(tmp_path / "tiny_epoch_002.h5")
    assert notes and "holds the later tiny_epoch_002.h5" in notes[0]


def test_deployable_copy_keeps_model_weights_and_tags_without_the_optimizer(keras_session, tmp_path):
    import h5py
    import numpy as np

    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.checkpoints import deployable_copy, read_checkpoint_record
    from densenet3d_keras.models.loading import load_model
    from densenet3d_keras.models.objectives import compile_model

    model = compile_model(build_model("tiny"))
    model.train_on_batch(np.zeros((1, 38, 38, 38, 4), np.float32),
                         [np.eye(2, dtype=np.float32)[np.zeros((1, 12, 12, 12), int)],
                          np.eye(5, dtype=np.float32)[np.zeros((1, 12, 12, 12), int)]])
    source, copy = str(tmp_path / "tiny_epoch_004.h5"), str(tmp_path / "deploy.h5")
    save_checkpoint(model, source, 4, "tiny", "valid", history={"epoch": 4, "loss": 0.5}, score=0.75)
    assert deployable_copy(source, copy) == copy
    assert os.path.getsize(copy) < 0.6 * os.path.getsize(source)
    with h5py.File(copy, "r") as handle:
        assert "optimizer_weights" not in handle and "training_config" not in handle.attrs
    assert read_checkpoint_info(copy) == {"epoch": 4, "model": "tiny", "padding": "valid"}
    assert read_checkpoint_record(copy) == read_checkpoint_record(source)
    loaded = load_model(copy, "tiny", 38, "same")[0]
    for got, want in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        deployable_copy(source, source)
