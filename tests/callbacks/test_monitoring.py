"""Validation, plateau, early stopping, best checkpoint, history.csv and learning curves,
driven epoch by epoch with known validation scores."""
import json
import math
import os

import numpy as np
import pytest

from callbacks.checkpoint import EpochCheckpoint
from callbacks.history import reconcile_history, HistoryCSV, LearningCurves, read_history
from callbacks.monitors import (EpochLearningRate, PlateauLearningRate, PolyLearningRate,
                               ValidationEarlyStopping)
from callbacks.validation import VAL_KEYS, Validation, format_validation_line, is_validated

NAN = float("nan")


@pytest.fixture
def model(keras_session):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    return compile_model(build_model("tiny"), learning_rate=1e-3)


def _learning_rate(model):
    from densenet3d_keras.core import compat

    return compat.get_learning_rate(model.optimizer)


def test_validation_runs_every_n_epochs_and_after_the_last():
    scores = iter([[{"wt": 0.9, "tc": 0.6, "et": 0.3}, {"wt": 0.7, "tc": 0.4, "et": 0.5}],
                   [{"wt": 1.0, "tc": 1.0, "et": 1.0}, {"wt": 0.0, "tc": 0.0, "et": 1.0}]])
    seen, lines = [], []

    def score(model):
        seen.append(model)
        return next(scores)

    callback = Validation(score, every=2, num_epochs=3, log=lines.append)
    callback.set_model("the model")
    all_logs = []
    for epoch in range(3):
        logs = {"loss": 1.0}
        callback.on_epoch_end(epoch, logs)
        all_logs.append(logs)
    assert seen == ["the model", "the model"]  # after epochs 2 and 3 (the last)
    assert all(math.isnan(all_logs[0][key]) for key in VAL_KEYS) and not is_validated(all_logs[0])
    assert all_logs[1]["val_dice_wt"] == pytest.approx(0.8)
    assert all_logs[1]["val_dice_tc"] == pytest.approx(0.5)
    assert all_logs[1]["val_dice_et"] == pytest.approx(0.4)
    assert all_logs[1]["val_dice_mean"] == pytest.approx((0.8 + 0.5 + 0.4) / 3)
    assert all_logs[2]["val_dice_mean"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert lines[0].startswith("validation epoch 2: dice wt 0.8000, tc 0.5000, et 0.4000, mean 0.5667 (2 cases, ")
    assert lines[1].startswith("validation epoch 3: ")
    assert [entry[0] for entry in callback.history] == [2, 3]


def test_validation_line_format():
    line = format_validation_line(7, {"wt": 0.91234, "tc": 0.5, "et": 0.25}, 0.55411, 1, 3.04)
    assert line == "validation epoch 7: dice wt 0.9123, tc 0.5000, et 0.2500, mean 0.5541 (1 case, 3.0 s)"
    with pytest.raises(ValueError, match="every must be >= 1"):
        Validation(lambda model: [], every=0)


def test_plateau_halves_the_rate_after_patience_validations_without_improvement(model):
    lines = []
    callback = PlateauLearningRate(factor=0.5, patience=2, log=lines.append)
    callback.set_model(model)
    callback.on_train_begin()
    rates = []
    # Epochs without validation (NaN) do not count towards the patience.
    for epoch, value in enumerate([0.5, NAN, 0.6, 0.6, NAN, 0.55, 0.58, 0.59, 0.7]):
        callback.on_epoch_end(epoch, {"val_dice_mean": value})
        rates.append(_learning_rate(model))
    assert rates == pytest.approx([1e-3] * 5 + [5e-4, 5e-4, 2.5e-4, 2.5e-4])
    assert len(lines) == 2 and lines[0].startswith("learning rate 0.001 -> 0.0005 after epoch 6: ")
    with pytest.raises(ValueError, match="factor must be in"):
        PlateauLearningRate(factor=1.5)


def test_early_stopping_counts_validations_only(model):
    lines = []
    callback = ValidationEarlyStopping(patience=2, log=lines.append)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    stopped_after = None
    for epoch, value in enumerate([0.3, 0.5, NAN, 0.4, NAN, NAN, 0.45, 0.9]):
        callback.on_epoch_end(epoch, {"val_dice_mean": value})
        if model.stop_training:
            stopped_after = epoch + 1
            break
    assert stopped_after == 7
    assert lines == ["early stopping after epoch 7: validation mean Dice has not improved for 2 "
                     "validations (best 0.5000 after epoch 2)"]


def test_epoch_learning_rate_is_logged(model):
    logs = {}
    callback = EpochLearningRate()
    callback.set_model(model)
    callback.on_epoch_end(0, logs)
    assert logs["lr"] == pytest.approx(1e-3)


def test_best_checkpoint_kept_recorded_and_never_pruned(model, tmp_path):
    from densenet3d_keras.models.checkpoints import read_checkpoint_info

    lines = []
    callback = EpochCheckpoint(str(tmp_path), "tiny", keep=1, log=lines.append, monitor="val_dice_mean")
    callback.set_model(model)
    for epoch, value in enumerate([0.4, 0.7, NAN, 0.6]):
        callback.on_epoch_end(epoch, {"val_dice_mean": value})
    assert sorted(os.listdir(str(tmp_path))) == ["checkpoint.json", "tiny_best.h5", "tiny_epoch_004.h5"]
    with open(str(tmp_path / "checkpoint.json")) as handle:
        pointer = json.load(handle)
    assert pointer == {"latest": "tiny_epoch_004.h5", "epoch": 4, "best": "tiny_best.h5",
                       "best_epoch": 2, "best_dice_mean": 0.7}
    assert read_checkpoint_info(str(tmp_path / "tiny_best.h5"))["epoch"] == 2
    assert [line for line in lines if line.startswith("best")] == [
        "best checkpoint: %s (epoch %d, val_dice_mean %.4f)" % (tmp_path / "tiny_best.h5", e, v)
        for e, v in ((1, 0.4), (2, 0.7))]

    # A resumed run starts from the best recorded in the best copy itself, even where
    # checkpoint.json lags behind it (a process killed before rewriting it): a worse score
    # does not replace it.
    stale = dict(pointer, best_epoch=1, best_dice_mean=0.4)
    (tmp_path / "checkpoint.json").write_text(json.dumps(stale))
    resumed = EpochCheckpoint(str(tmp_path), "tiny", keep=1, monitor="val_dice_mean",
                              previous=[str(tmp_path / "tiny_epoch_004.h5")])
    resumed.set_model(model)
    resumed.on_train_begin()
    with open(str(tmp_path / "checkpoint.json")) as handle:
        assert json.load(handle) == pointer
    resumed.on_epoch_end(4, {"val_dice_mean": 0.65})
    assert read_checkpoint_info(str(tmp_path / "tiny_best.h5"))["epoch"] == 2
    resumed.on_epoch_end(5, {"val_dice_mean": 0.75})
    assert read_checkpoint_info(str(tmp_path / "tiny_best.h5"))["epoch"] == 6
    with open(str(tmp_path / "checkpoint.json")) as handle:
        assert json.load(handle)["best_dice_mean"] == 0.75


def test_a_better_epoch_killed_before_its_best_copy_becomes_the_best_on_resume(model, tmp_path):
    from densenet3d_keras.models.checkpoints import read_best, read_checkpoint_record

    callback = EpochCheckpoint(str(tmp_path), "tiny", keep=3, monitor="val_dice_mean")
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_dice_mean": 0.5, "loss": 1.5})
    callback._keep_if_best = lambda *args: None  # the process dies before the copy
    callback.on_epoch_end(1, {"val_dice_mean": 0.8, "loss": 1.25})
    assert read_best(str(tmp_path), "tiny")["best_epoch"] == 1
    assert read_checkpoint_record(str(tmp_path / "tiny_epoch_002.h5")) == {
        "epoch": 2, "score": 0.8, "history": {"epoch": 2, "val_dice_mean": 0.8, "loss": 1.25}}

    resumed = EpochCheckpoint(str(tmp_path), "tiny", keep=3, monitor="val_dice_mean",
                              previous=[str(tmp_path / name) for name in ("tiny_epoch_001.h5", "tiny_epoch_002.h5")])
    resumed.set_model(model)
    resumed.on_train_begin()
    assert read_best(str(tmp_path), "tiny") == {"best": "tiny_best.h5", "best_epoch": 2, "best_dice_mean": 0.8}
    with open(str(tmp_path / "checkpoint.json")) as handle:
        assert json.load(handle) == {"latest": "tiny_epoch_002.h5", "epoch": 2, "best": "tiny_best.h5",
                                     "best_epoch": 2, "best_dice_mean": 0.8}


def _epochs(callback, start, rows):
    callback.on_train_begin()
    for epoch, logs in enumerate(rows, start):
        callback.on_epoch_end(epoch, logs)
    callback.on_train_end()


def test_history_is_appended_in_the_columns_of_its_header(tmp_path):
    path = str(tmp_path / "history.csv")
    _epochs(HistoryCSV(path), 0, [{"loss": 2.0, "val_dice_mean": NAN}, {"loss": 1.5, "val_dice_mean": 0.5}])
    # The resumed run has a new key and lacks one: the header's columns are kept.
    _epochs(HistoryCSV(path, append=True), 2, [{"loss": 1.0, "lr": 1e-3}])
    with open(path) as handle:
        assert handle.readline().strip() == "epoch,loss,val_dice_mean"
    rows = read_history(path)
    assert [row["epoch"] for row in rows] == [1, 2, 3], "epochs count from 1, as in the log"
    assert [row["loss"] for row in rows] == [2.0, 1.5, 1.0]
    assert math.isnan(rows[0]["val_dice_mean"]) and rows[1]["val_dice_mean"] == 0.5
    assert math.isnan(rows[2]["val_dice_mean"]) and "lr" not in rows[2]
    # A fresh run replaces the file.
    _epochs(HistoryCSV(path), 0, [{"loss": 3.0}])
    assert [row["loss"] for row in read_history(path)] == [3.0]


def test_reconcile_history_drops_later_rows_restores_missing_ones_and_counts_from_1(tmp_path):
    path = tmp_path / "history.csv"
    # An earlier version's file (epochs from 0) of a run killed after epoch 4's row but before
    # its checkpoint, which also lost epoch 3's row (killed before writing it once).
    path.write_text("epoch,loss,val_dice_mean\n0,2.0,nan\n1,1.5,0.5\n3,0.9,0.7\n")
    recorded = {2: {"epoch": 2, "loss": 1.5, "val_dice_mean": 0.5},
                3: {"epoch": 3, "loss": 1.25, "val_dice_mean": 0.6, "lr": 1e-3}}
    assert reconcile_history(str(path), recorded, resumed_epoch=3) == [3]
    rows = read_history(str(path))
    assert [(row["epoch"], row["loss"]) for row in rows] == [(1, 2.0), (2, 1.5), (3, 1.25)]
    assert rows[2]["val_dice_mean"] == 0.6 and "lr" not in rows[2]
    before = path.read_text()
    assert reconcile_history(str(path), recorded, resumed_epoch=3) == [] and path.read_text() == before


def test_learning_curves_png_is_drawn_from_the_history(tmp_path):
    history = str(tmp_path / "history.csv")
    png = str(tmp_path / "learning_curves.png")
    callbacks = [HistoryCSV(history), LearningCurves(history, png, "tiny")]
    for callback in callbacks:
        callback.on_train_begin()
    for epoch in range(3):
        logs = {"loss": 1.0 / (epoch + 1), "lr": 1e-3, "val_dice_mean": 0.2 * epoch}
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(str(tmp_path))) == ["history.csv", "learning_curves.png"]  # no temporary


def test_training_log_puts_epoch_means_into_the_logs(tmp_path):
    from callbacks.training_log import TrainingLog
    from generators.sequence import BatchInfo

    class Sequence(object):
        def epoch_infos(self):
            return [BatchInfo(1, 1, "X", 1, 2, 0.5), BatchInfo(1, 1, "X", 2, 2, 0.5)]

    class Model(object):
        def reset_metrics(self):
            pass

    log = TrainingLog(Sequence(), str(tmp_path / "train_0.log"), stream=None)
    log.set_model(Model())
    log.on_train_begin()
    log.on_epoch_begin(0)
    for batch, (loss, acc) in enumerate([(2.0, 50.0), (1.0, 70.0)]):
        log.on_train_batch_begin(batch)
        log.on_train_batch_end(batch, {"loss": loss, "wt_accuracy_percent": acc,
                                       "labels_accuracy_percent": acc})
    logs = {"loss": 1.0, "wt_accuracy_percent": 70.0}
    log.on_epoch_end(0, logs)
    log.close()
    assert logs["loss"] == pytest.approx(1.5) and logs["wt_accuracy_percent"] == pytest.approx(60.0)
    assert log.epoch_losses == [pytest.approx(1.5)]


def test_poly_learning_rate_decays_over_the_run_and_continues_when_resumed(model):
    callback = PolyLearningRate(1e-3, steps_per_epoch=4, epochs=2)
    callback.set_model(model)
    rates = []
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in range(4):
            callback.on_train_batch_begin(batch)
            rates.append(_learning_rate(model))
    expected = [1e-3 * (1 - step / 8.0) ** 0.9 for step in range(8)]
    assert rates == pytest.approx(expected, rel=1e-5)
    resumed = PolyLearningRate(1e-3, steps_per_epoch=4, epochs=2)
    resumed.set_model(model)
    resumed.on_epoch_begin(1)
    resumed.on_train_batch_begin(2)
    assert _learning_rate(model) == pytest.approx(expected[6], rel=1e-5)
    with pytest.raises(ValueError):
        PolyLearningRate(0.0, 4, 2)
