"""Checkpoints at the end of every epoch, written so that a crash never corrupts the latest.

Each checkpoint is a Keras HDF5 file with the model, its weights and the optimizer state,
named ``<model>_epoch_<NNN>.h5``; its attributes record the epoch, the model name and the
padding. It is written to a hidden temporary name and renamed into place, then
``checkpoint.json`` (the pointer to the newest) is replaced the same way. Only the newest
``keep`` checkpoints are kept (the reference kept 15).
"""
import glob
import json
import os
import re
import warnings

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.fileio import atomic_output, write_json_atomic

POINTER = "checkpoint.json"
ATTR_EPOCH = "densenet3d_epoch"
ATTR_MODEL = "densenet3d_model"
ATTR_PADDING = "densenet3d_padding"
_NAME = re.compile(r"^(?P<model>.+)_epoch_(?P<epoch>\d+)\.h5$")


def save_checkpoint(model, path, epoch, model_name, padding="same"):
    """Save ``model`` with optimizer state to ``path`` atomically and tag it.

    Args:
        model: compiled Keras model.
        path: destination ``.h5`` file.
        epoch: number of completed epochs.
        model_name: name passed to ``build_model``.
        padding: padding the model was built with.
    """
    import h5py

    with atomic_output(path, suffix=".h5") as temporary:
        with warnings.catch_warnings():
            # HDF5 is deliberate: TF 1.15 and TF 2.x both read and write it.
            warnings.simplefilter("ignore", UserWarning)
            model.save(temporary, include_optimizer=True)
        with h5py.File(temporary, "a") as handle:
            handle.attrs[ATTR_EPOCH] = int(epoch)
            handle.attrs[ATTR_MODEL] = str(model_name)
            handle.attrs[ATTR_PADDING] = str(padding)


def read_checkpoint_info(path):
    """``{"epoch", "model", "padding"}`` recorded in a checkpoint file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a readable HDF5 checkpoint.
    """
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError("checkpoint not found: %s" % path)
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except (OSError, IOError) as error:
        raise ValueError("cannot read checkpoint %s: %s" % (path, error))
    def _text(value):
        return value.decode("utf-8") if isinstance(value, bytes) else (None if value is None else str(value))
    return {"epoch": int(attrs[ATTR_EPOCH]) if ATTR_EPOCH in attrs else None,
            "model": _text(attrs.get(ATTR_MODEL)),
            "padding": _text(attrs.get(ATTR_PADDING)) or "same"}


def read_optimizer_weights(path):
    """The optimizer state saved in a checkpoint file, in saved order (``None`` if none).

    Keras cannot put it back itself when the optimizer changed form (a loss-scale wrapper
    added or removed by another ``--precision``); see ``compat.moved_optimizer``.
    """
    import h5py

    with h5py.File(path, "r") as handle:
        if "optimizer_weights" not in handle:
            return None
        group = handle["optimizer_weights"]
        names = [n.decode("utf-8") if isinstance(n, bytes) else str(n)
                 for n in group.attrs["weight_names"]]
        return [group[name][()] for name in names]


def find_checkpoint(path):
    """Resolve a checkpoint argument: a file, or a folder (its newest checkpoint).

    Raises:
        FileNotFoundError: nothing usable at ``path``.
    """
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        pointer = os.path.join(path, POINTER)
        if os.path.isfile(pointer):
            with open(pointer) as handle:
                latest = os.path.join(path, json.load(handle)["latest"])
            if os.path.isfile(latest):
                return latest
        candidates = sorted(_checkpoints(path))
        if candidates:
            return candidates[-1][1]
        raise FileNotFoundError("no checkpoint (*_epoch_NNN.h5) in %s" % path)
    raise FileNotFoundError("checkpoint not found: %s" % path)


def _checkpoints(folder):
    found = []
    for path in glob.glob(os.path.join(folder, "*_epoch_*.h5")):
        match = _NAME.match(os.path.basename(path))
        if match:
            found.append((int(match.group("epoch")), path))
    return found


class EpochCheckpoint(keras.callbacks.Callback):
    """Save a checkpoint at the end of every epoch and keep the newest ``keep``.

    Args:
        save_dir: folder for checkpoints (created).
        model_name: model name recorded in the checkpoint and used in file names.
        padding: recorded in the checkpoint.
        keep: how many checkpoints to keep.
        log: callable taking a line (e.g. ``TrainingLog.write``) or ``None``.
    """

    def __init__(self, save_dir, model_name, padding="same", keep=15, log=None):
        super(EpochCheckpoint, self).__init__()
        if keep < 1:
            raise ValueError("keep must be >= 1, got %r" % (keep,))
        self.save_dir = save_dir
        self.model_name = model_name
        self.padding = padding
        self.keep = int(keep)
        self.log = log
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.save_dir, exist_ok=True)
        name = "%s_epoch_%03d.h5" % (self.model_name.replace("-", "_"), epoch + 1)
        path = os.path.join(self.save_dir, name)
        save_checkpoint(self.model, path, epoch + 1, self.model_name, self.padding)
        write_json_atomic(os.path.join(self.save_dir, POINTER), {"latest": name, "epoch": epoch + 1})
        self.saved.append(path)
        for _, old in sorted(_checkpoints(self.save_dir))[:-self.keep]:
            os.remove(old)
        if self.log is not None:
            self.log("model saved: %s" % path)
