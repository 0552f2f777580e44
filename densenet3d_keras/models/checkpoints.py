"""Checkpoint files: the Keras HDF5 format with the project's tags, names, the newest pointer.

Each checkpoint is a Keras HDF5 file with the model, its weights and the optimizer state,
named ``<model>_epoch_<NNN>.h5`` (the best by validation, ``<model>_best.h5``, a copy of an
epoch's file). Its attributes record the epoch, the model name, the padding and, written in the
same file so that a kill can never separate them, the epoch's row of ``history.csv`` (JSON)
and its validation score (the monitored value, when the epoch was validated). It is
serialised in memory, written to a hidden temporary name, flushed to disk and renamed into
place; ``checkpoint.json`` in the folder points to the newest (``latest``, ``epoch``) and, in a
run with validation, to the best (``best``, ``best_epoch``, ``best_dice_mean``). The pointer
is a convenience written after the files: where it lags behind them (a process killed in
between), the files win (:func:`find_checkpoint`, :func:`read_best`). The callback that writes
them every epoch is :class:`callbacks.checkpoint.EpochCheckpoint`.
"""
import glob
import io
import json
import os
import re
import warnings
from typing import Optional  # noqa: F401 (type comments)

from densenet3d_keras.core.fileio import write_bytes_atomic

POINTER = "checkpoint.json"
#: The resolved training configuration a run saves beside its checkpoints.
RUN_CONFIG = "config.json"
ATTR_EPOCH = "densenet3d_epoch"
ATTR_MODEL = "densenet3d_model"
ATTR_PADDING = "densenet3d_padding"
ATTR_HISTORY = "densenet3d_history"
ATTR_SCORE = "densenet3d_score"
_NAME = re.compile(r"^(?P<model>.+)_epoch_(?P<epoch>\d+)\.h5$")
_BEST = re.compile(r"^(?P<model>.+)_best\.h5$")

def save_checkpoint(model, path, epoch, model_name, padding="same", history=None, score=None):
    """Save ``model`` with optimizer state to ``path`` atomically and tag it.

    The HDF5 file is built in memory and then written with plain file I/O, so a full disk is
    one ``OSError`` from ``write``/``fsync`` (the HDF5 library never sees it, and never leaves
    its own half-written file behind).

    Args:
        model: compiled Keras model.
        path: destination ``.h5`` file.
        epoch: number of completed epochs.
        model_name: name passed to ``build_model``.
        padding: padding the model was built with.
        history: the epoch's ``history.csv`` row (dict of numbers), or ``None``.
        score: the epoch's validation score (higher is better), or ``None``.

    Raises:
        OSError: the file could not be written (``"cannot write checkpoint <path>: <reason>"``);
            no temporary file is left and an earlier file at ``path`` is unchanged.
    """
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        with warnings.catch_warnings():
            # HDF5 is deliberate: TF 1.15 and TF 2.x both read and write it.
            warnings.simplefilter("ignore", UserWarning)
            model.save(handle, include_optimizer=True)
        handle.attrs[ATTR_EPOCH] = int(epoch)
        handle.attrs[ATTR_MODEL] = str(model_name)
        handle.attrs[ATTR_PADDING] = str(padding)
        if history is not None:
            handle.attrs[ATTR_HISTORY] = json.dumps(history, sort_keys=True)
        if score is not None:
            handle.attrs[ATTR_SCORE] = float(score)
    write_bytes_atomic(path, buffer.getvalue(), suffix=".h5", what="checkpoint")


def deployable_copy(source, destination):
    """Write a copy of a checkpoint without its optimizer state (a third of the size), for
    prediction and export only: the model, its weights and the project's attributes.

    Args:
        source: a checkpoint file.
        destination: the ``.h5`` file to write (atomically; not ``source``).

    Returns:
        ``destination``.

    Raises:
        FileNotFoundError, ValueError: ``source`` is not a readable checkpoint, or equals
            ``destination``.
        OSError: the copy cannot be written.
    """
    import h5py

    read_checkpoint_info(source)
    if os.path.realpath(source) == os.path.realpath(destination):
        raise ValueError("refusing to overwrite the checkpoint %s with its copy" % source)
    buffer = io.BytesIO()
    with h5py.File(source, "r") as original, h5py.File(buffer, "w") as copy:
        original.copy(original["model_weights"], copy, name="model_weights")
        for key, value in original.attrs.items():
            if key != "training_config":
                copy.attrs[key] = value
    write_bytes_atomic(destination, buffer.getvalue(), suffix=".h5", what="checkpoint")
    return destination


def read_checkpoint_info(path):
    """``{"epoch", "model", "padding"}`` recorded in a checkpoint file (see
    :func:`read_checkpoint_record` for the history row and score).

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


def read_checkpoint_record(path):
    """``{"epoch", "history", "score"}`` of a checkpoint: its epoch, its epoch's
    ``history.csv`` row (dict, or ``None`` for files that do not record one) and its
    validation score (``None`` if the epoch was not validated).

    Raises:
        FileNotFoundError, ValueError: as :func:`read_checkpoint_info`.
    """
    import h5py

    epoch = read_checkpoint_info(path)["epoch"]
    with h5py.File(path, "r") as handle:
        history = handle.attrs.get(ATTR_HISTORY)
        score = handle.attrs.get(ATTR_SCORE)
    if history is not None:
        history = json.loads(history.decode("utf-8") if isinstance(history, bytes) else str(history))
    return {"epoch": epoch, "history": history, "score": None if score is None else float(score)}


def read_best(folder, model_name):
    """The best checkpoint of a run as recorded in ``<model>_best.h5`` itself:
    ``{"best": name, "best_epoch": n, "best_dice_mean": score}``, or ``None`` when there is
    no such file. A file of an older version without a recorded score takes the score from
    ``checkpoint.json`` (``None`` if that does not name it either).

    Raises:
        ValueError: the file is not a readable checkpoint.
    """
    name = best_checkpoint_name(model_name)
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    record = read_checkpoint_record(path)
    score = record["score"]
    if score is None:
        pointer = read_pointer(folder)
        if pointer.get("best") != name or not isinstance(pointer.get("best_dice_mean"), (int, float)):
            return None
        score = float(pointer["best_dice_mean"])
    return {"best": name, "best_epoch": record["epoch"], "best_dice_mean": score}


def read_run_config(checkpoint):
    """The training configuration saved beside a checkpoint: :data:`RUN_CONFIG` in the
    checkpoint file's folder (or in the folder given), as a dict; ``{}`` when there is none or
    it cannot be read.

    Args:
        checkpoint: a checkpoint file or a run folder.
    """
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    try:
        with io.open(os.path.join(folder or ".", RUN_CONFIG), encoding="utf-8") as handle:
            payload = json.load(handle)
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def read_optimizer_config(path):
    """The optimizer's Keras configuration saved in a checkpoint (its ``training_config``
    attribute), ``{}`` when the file records none.

    Raises:
        OSError: the file cannot be read as HDF5.
    """
    import h5py

    with h5py.File(path, "r") as handle:
        text = handle.attrs.get("training_config")
    if text is None:
        return {}
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    return json.loads(text).get("optimizer_config", {}).get("config", {})


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


def find_checkpoint(path, log=None):
    """Resolve a checkpoint argument: a file, or a folder (its newest checkpoint).

    A folder's newest checkpoint is the one ``checkpoint.json`` names, or a later checkpoint
    of the same model in the folder (the pointer is rewritten after each checkpoint, so a
    process killed in between leaves it one epoch behind; ``log`` is told). Without a usable
    pointer (none, malformed, or naming a missing file) the folder is scanned, but only when
    that is unambiguous: all its ``*_epoch_NNN.h5`` files belong to one model.

    Args:
        path: a checkpoint file or a folder.
        log: callable taking a line, told when a broken pointer is passed over (or ``None``).

    Raises:
        FileNotFoundError: nothing usable at ``path``.
        ValueError: a broken ``checkpoint.json`` or a folder with checkpoints of several
            models, and no pointer to choose among them; the message names the file.
    """
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError("checkpoint not found: %s" % path)
    pointer = os.path.join(path, POINTER)
    problem = None
    if os.path.lexists(pointer):
        latest, problem = _read_pointer(pointer)
        if latest is not None:
            return _newest_of_model(path, latest, log)
    by_model = {}
    for epoch, candidate in _checkpoints(path):
        by_model.setdefault(checkpoint_prefix(candidate), []).append((epoch, candidate))
    if len(by_model) == 1:
        newest = sorted(list(by_model.values())[0])[-1][1]
        if problem is not None and log is not None:
            log("%s %s; using the newest checkpoint in the folder, %s" % (pointer, problem, newest))
        return newest
    if problem is not None:
        detail = ("and %s holds checkpoints of %d models (%s)" % (path, len(by_model), ", ".join(sorted(by_model)))
                  if by_model else "and %s holds no *_epoch_NNN.h5" % path)
        raise ValueError("%s %s, %s; give the checkpoint file with -lp" % (pointer, problem, detail))
    if by_model:
        raise ValueError("%s holds checkpoints of %d models (%s) and no %s; give the checkpoint "
                         "file with -lp" % (path, len(by_model), ", ".join(sorted(by_model)), POINTER))
    raise FileNotFoundError("no checkpoint (*_epoch_NNN.h5) in %s" % path)


def _newest_of_model(folder, named, log=None):
    """``named`` or the newest later checkpoint of its model in ``folder``."""
    prefix = checkpoint_prefix(named)
    later = sorted((epoch, candidate) for epoch, candidate in _checkpoints(folder)
                   if checkpoint_prefix(candidate) == prefix and epoch > checkpoint_epoch(named))
    if not later:
        return named
    newest = later[-1][1]
    if log is not None:
        log("%s names %s, but the folder holds the later %s (the pointer was not updated after "
            "it was written); using it" % (os.path.join(folder, POINTER), os.path.basename(named),
                                          os.path.basename(newest)))
    return newest


def _load_pointer(pointer):
    """``(contents of a checkpoint.json, None)``, or ``(None, what is wrong)``."""
    try:
        with io.open(pointer, encoding="utf-8") as handle:
            return json.load(handle), None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        return None, "is not valid JSON (%s)" % error
    except OSError as error:
        return None, "cannot be read (%s)" % (error.strerror or error)


def _read_pointer(pointer):
    """``(path of the newest checkpoint, None)``, or ``(None, what is wrong)``."""
    payload, problem = _load_pointer(pointer)
    if problem is not None:
        return None, problem
    if not isinstance(payload, dict) or "latest" not in payload:
        return None, "has no \"latest\" entry"
    latest = payload["latest"]
    if not isinstance(latest, str) or not _NAME.match(latest) or os.path.basename(latest) != latest:
        return None, "names no checkpoint file (\"latest\": %s)" % json.dumps(latest)
    target = os.path.join(os.path.dirname(pointer), latest)
    if not os.path.isfile(target):
        return None, "names %s, which is missing" % latest
    return target, None


def checkpoint_prefix(path):
    """The model part of a checkpoint file name (``dense24`` of ``dense24_epoch_017.h5``), or
    ``None`` for another name."""
    match = _NAME.match(os.path.basename(path))
    return match.group("model") if match else None


def checkpoint_epoch(path):
    """The epoch number of a checkpoint file name, or ``None`` for another name."""
    match = _NAME.match(os.path.basename(path))
    return int(match.group("epoch")) if match else None


def checkpoint_name(model_name, epoch):
    """File name of a checkpoint: ``<model>_epoch_<NNN>.h5`` (``-`` in the model name as ``_``)."""
    return "%s_epoch_%03d.h5" % (model_name.replace("-", "_"), epoch)


def best_checkpoint_name(model_name):
    """File name of a run's best checkpoint by validation: ``<model>_best.h5``."""
    return "%s_best.h5" % model_name.replace("-", "_")


def is_checkpoint_name(name):
    """Whether a file name is a checkpoint's: ``<model>_epoch_<NNN>.h5`` or ``<model>_best.h5``."""
    return bool(_NAME.match(name) or _BEST.match(name))


def list_best_checkpoints(folder):
    """Paths of the ``<model>_best.h5`` files in ``folder``, any model, sorted."""
    return sorted(path for path in glob.glob(os.path.join(glob.escape(folder), "*_best.h5"))
                  if _BEST.match(os.path.basename(path)))


def read_pointer(folder):
    """The contents of ``<folder>/checkpoint.json`` as a dict (``{}`` if missing or unreadable)."""
    payload, _ = _load_pointer(os.path.join(folder, POINTER))
    return payload if isinstance(payload, dict) else {}


def list_checkpoints(folder):
    """``(epoch, path)`` of every ``<model>_epoch_<NNN>.h5`` file in ``folder``, any model."""
    return _checkpoints(folder)


def _checkpoints(folder):
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), "*_epoch_*.h5")):
        match = _NAME.match(os.path.basename(path))
        if match:
            found.append((int(match.group("epoch")), path))
    return found


def weight_mismatch(model, path):
    # type: (object, str) -> Optional[str]
    """Compare a model's weights with those stored in a Keras HDF5 file, layer by layer.

    Args:
        model: a built Keras model.
        path: a checkpoint written by ``model.save`` or ``model.save_weights`` (HDF5).

    Returns:
        ``None`` when every layer with weights is in the file with the same weight shapes,
        else a short description of the first difference (for an error message).

    Raises:
        ValueError: the file is not a readable Keras HDF5 weight file.
    """
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            if "layer_names" not in group.attrs:
                raise ValueError("no Keras weights in %s" % path)
            stored = {}
            for layer_name in group.attrs["layer_names"]:
                layer_group = group[_text(layer_name)]
                stored[_text(layer_name)] = [
                    tuple(layer_group[_text(w)].shape) for w in layer_group.attrs["weight_names"]]
    except (OSError, IOError, KeyError) as error:
        raise ValueError("cannot read the weights in %s: %s" % (path, error))
    for layer in model.layers:
        shapes = [tuple(int(d) for d in w.shape) for w in layer.weights]
        if not shapes:
            continue
        if layer.name not in stored:
            return "layer %s is not in the file" % layer.name
        if stored[layer.name] != shapes:
            for index, (have, want) in enumerate(zip(stored[layer.name], shapes)):
                if have != want:
                    return ("layer %s weight %s has shape %s in the file, %s in the model"
                            % (layer.name, layer.weights[index].name, have, want))
            return ("layer %s has %d weights in the file, %d in the model"
                    % (layer.name, len(stored[layer.name]), len(shapes)))
    return None


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
