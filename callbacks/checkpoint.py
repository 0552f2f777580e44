"""The epoch checkpoint callback: a checkpoint at the end of every epoch, never a corrupt one.

Only the newest ``keep`` checkpoints *of the run* are kept (the reference kept 15): files of
other runs or models in the folder are never touched. With validation, the checkpoint of the
best validated epoch is also kept as ``<model>_best.h5`` (never pruned) and recorded in
``checkpoint.json``. The file format is in :mod:`densenet3d_keras.models.checkpoints`.

At an epoch's end the files are written in this order, each atomically: the epoch's
checkpoint (holding its ``history.csv`` row and validation score), the best copy, then
``checkpoint.json``; ``history.csv`` follows (:mod:`callbacks.history`). A process killed
between any two leaves files that a resumed run puts right: the newest checkpoint is found
by its name (:func:`~densenet3d_keras.models.checkpoints.find_checkpoint`), the best score is
read from the best copy itself, a better epoch that was never copied is copied, the pointer is
rewritten (:meth:`EpochCheckpoint.on_train_begin`), and a missing history row comes back from
its checkpoint (:func:`callbacks.history.reconcile_history`).
"""
import io
import math
import os

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.fileio import write_bytes_atomic, write_json_atomic
from densenet3d_keras.models.checkpoints import (POINTER, best_checkpoint_name, checkpoint_epoch,
                                                 checkpoint_name, read_best, read_checkpoint_record,
                                                 save_checkpoint)

#: ``checkpoint.json`` keys of the best checkpoint.
BEST_KEYS = ("best", "best_epoch", "best_dice_mean")


class EpochCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch and keep the run's newest ``keep``.

    Pruning only ever removes files of this run: those this callback saved, and the
    ``previous`` ones it is given (the earlier checkpoints of a run resumed in this folder,
    see :mod:`densenet3d_keras.training.run_folder`). Other files in the folder are never touched.

    Args:
        save_dir: folder for checkpoints (created).
        model_name: model name recorded in the checkpoint and used in file names.
        padding: recorded in the checkpoint.
        keep: how many checkpoints of the run to keep.
        log: callable taking a line (e.g. ``TrainingLog.write``) or ``None``.
        previous: paths of the run's earlier checkpoints that count towards ``keep``.
        monitor: key of the epoch logs that ranks checkpoints (higher is better), e.g. the
            validation mean Dice; ``None``, or a missing or NaN value, keeps no best checkpoint.
    A resumed run's best checkpoint so far is read from ``<model>_best.h5`` when training
    begins (see the module docstring).
    """

    def __init__(self, save_dir, model_name, padding="same", keep=15, log=None, previous=(),
                 monitor=None):
        super(EpochCheckpoint, self).__init__()
        if keep < 1:
            raise ValueError("keep must be >= 1, got %r" % (keep,))
        self.save_dir = save_dir
        self.model_name = model_name
        self.padding = padding
        self.keep = int(keep)
        self.log = log
        self.saved = []
        self._owned = list(previous)
        self.monitor = monitor
        self.best = None

    def on_train_begin(self, logs=None):
        """Take up a resumed run's best checkpoint and put right what a killed process left."""
        if not self._owned:
            return
        self.best = read_best(self.save_dir, self.model_name)
        for path in self._owned:  # an epoch better than the best copy, killed before copying
            score = read_checkpoint_record(path)["score"] if self.monitor else None
            self._keep_if_best(path, checkpoint_epoch(path), score)
        self._write_pointer(os.path.basename(self._owned[-1]), checkpoint_epoch(self._owned[-1]))

    def _write_pointer(self, name, epoch):
        pointer = {"latest": name, "epoch": epoch}
        pointer.update(self.best or {})
        write_json_atomic(os.path.join(self.save_dir, POINTER), pointer)

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.save_dir, exist_ok=True)
        name = checkpoint_name(self.model_name, epoch + 1)
        path = os.path.join(self.save_dir, name)
        score = (logs or {}).get(self.monitor) if self.monitor else None
        if score is not None and not math.isfinite(float(score)):
            score = None
        save_checkpoint(self.model, path, epoch + 1, self.model_name, self.padding,
                        history=history_row(epoch, logs), score=score)
        self._keep_if_best(path, epoch + 1, score)
        self._write_pointer(name, epoch + 1)
        self.saved.append(path)
        self._owned = [old for old in self._owned if old != path] + [path]
        self._owned.sort(key=lambda old: (checkpoint_epoch(old) or 0, old))
        while len(self._owned) > self.keep:
            old = self._owned.pop(0)
            if os.path.exists(old):
                os.remove(old)
        if self.log is not None:
            self.log("model saved: %s" % path)

    def _keep_if_best(self, path, epoch, value):
        # type: (str, int, object) -> None
        """Copy the epoch's checkpoint to ``<model>_best.h5`` if ``value`` beats the best."""
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is not None and float(value) <= self.best["best_dice_mean"]:
            return
        name = best_checkpoint_name(self.model_name)
        with io.open(path, "rb") as handle:
            write_bytes_atomic(os.path.join(self.save_dir, name), handle.read(), suffix=".h5",
                               what="checkpoint")
        self.best = {"best": name, "best_epoch": int(epoch), "best_dice_mean": float(value)}
        if self.log is not None:
            self.log("best checkpoint: %s (epoch %d, %s %.4f)"
                     % (os.path.join(self.save_dir, name), epoch, self.monitor, float(value)))


def history_row(epoch, logs):
    """The ``history.csv`` row of an epoch (0-based ``epoch``): its numeric logs and
    ``epoch`` counted from 1."""
    row = {}
    for key, value in (logs or {}).items():
        try:
            row[key] = float(value)
        except (TypeError, ValueError):
            continue
    row["epoch"] = epoch + 1
    return row
