"""The epoch checkpoint callback: a checkpoint at the end of every epoch, never a corrupt one.

Only the newest ``keep`` checkpoints *of the run* are kept (the reference kept 15): files of
other runs or models in the folder are never touched. The file format is in
:mod:`densenet3d_keras.models.checkpoints`.
"""
import os

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.fileio import write_json_atomic
from densenet3d_keras.models.checkpoints import POINTER, checkpoint_epoch, checkpoint_name, save_checkpoint


class EpochCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch and keep the run's newest ``keep``.

    Pruning only ever removes files of this run: those this callback saved, and the
    ``previous`` ones it is given (the earlier checkpoints of a run resumed in this folder,
    see :mod:`densenet3d_keras.runfolder`). Other files in the folder are never touched.

    Args:
        save_dir: folder for checkpoints (created).
        model_name: model name recorded in the checkpoint and used in file names.
        padding: recorded in the checkpoint.
        keep: how many checkpoints of the run to keep.
        log: callable taking a line (e.g. ``TrainingLog.write``) or ``None``.
        previous: paths of the run's earlier checkpoints that count towards ``keep``.
    """

    def __init__(self, save_dir, model_name, padding="same", keep=15, log=None, previous=()):
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

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.save_dir, exist_ok=True)
        name = checkpoint_name(self.model_name, epoch + 1)
        path = os.path.join(self.save_dir, name)
        save_checkpoint(self.model, path, epoch + 1, self.model_name, self.padding)
        write_json_atomic(os.path.join(self.save_dir, POINTER), {"latest": name, "epoch": epoch + 1})
        self.saved.append(path)
        self._owned = [old for old in self._owned if old != path] + [path]
        self._owned.sort(key=lambda old: (checkpoint_epoch(old) or 0, old))
        while len(self._owned) > self.keep:
            old = self._owned.pop(0)
            if os.path.exists(old):
                os.remove(old)
        if self.log is not None:
            self.log("model saved: %s" % path)
