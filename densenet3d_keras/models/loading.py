"""Loading a trained model: a checkpoint's weights into the network its name asks for."""

from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.checkpoints import find_checkpoint, read_checkpoint_info, weight_mismatch
from densenet3d_keras.models.presets import DEFAULT_MODEL_NAME, resolve_model_name


def model_name_of(checkpoint, requested=None):
    """The model name to load a checkpoint as: ``requested`` (``-mn``) if given, else the one
    the checkpoint records, else :data:`~densenet3d_keras.models.presets.DEFAULT_MODEL_NAME`.

    A checkpoint that cannot be found or read here gives the default: loading it reports why.

    Args:
        checkpoint: a checkpoint file, or a folder (its newest checkpoint).
        requested: the name asked for, or ``None``.

    Returns:
        str.
    """
    if requested:
        return requested
    try:
        recorded = read_checkpoint_info(find_checkpoint(checkpoint))["model"]
    except (OSError, ValueError):
        return DEFAULT_MODEL_NAME
    return recorded or DEFAULT_MODEL_NAME


def check_recorded_architecture(path, info, model_name):
    """Refuse a checkpoint whose recorded model name is another architecture than ``model_name``.

    Args:
        path: the checkpoint file (for the message).
        info: its :func:`~densenet3d_keras.models.checkpoints.read_checkpoint_info`.
        model_name: the name asked for (``-mn``).

    Raises:
        ValueError: the checkpoint records another architecture; the message names both.
    """
    architecture, _ = resolve_model_name(model_name)
    if info["model"] is None:
        return
    try:
        recorded, _ = resolve_model_name(info["model"])
    except ValueError:
        recorded = info["model"]
    if recorded != architecture:
        raise ValueError("checkpoint %s holds a %s model, not %s (-mn %s)"
                         % (path, info["model"], architecture, model_name))


def check_weights_fit(model, path, model_name):
    """Refuse a checkpoint whose weights do not have the shapes of ``model``'s (any architecture).

    Raises:
        ValueError: the first layer or weight that differs, named.
    """
    mismatch = weight_mismatch(model, path)
    if mismatch:
        raise ValueError("the weights in %s do not fit a %s model: %s" % (path, model_name, mismatch))


def load_model(checkpoint, model_name, input_size=None, padding="valid"):
    """Build a model and load a checkpoint's weights into it.

    A run folder's newest checkpoint can be pruned by its still-running training (``--keep``)
    while the model is built; then the folder's new newest is loaded instead, with the same
    checks (once: a folder whose checkpoints keep vanishing is an error that says so).

    Args:
        checkpoint: checkpoint file, or a folder (its newest checkpoint,
            :func:`densenet3d_keras.models.checkpoints.find_checkpoint`).
        model_name: a name of :data:`densenet3d_keras.models.presets.MODEL_NAMES`.
        input_size: cubic input size, or ``None`` for a fully convolutional model.
        padding: ``"same"`` or ``"valid"``; checkpoints load into either (same weights).

    Returns:
        (model, checkpoint path, checkpoint info ``{"epoch", "model", "padding"}``).

    Raises:
        FileNotFoundError: no checkpoint at ``checkpoint``, or the folder's newest checkpoint
            was replaced twice while loading.
        ValueError: unknown model name, a checkpoint recording another architecture (the
            message names it), or weights that do not fit the model.
    """
    import os

    path = find_checkpoint(checkpoint)
    try:
        return _load_file(path, model_name, input_size, padding)
    except (OSError, ValueError):
        if not os.path.isdir(checkpoint) or os.path.exists(path):
            raise
    newer = find_checkpoint(checkpoint)  # pruned by the run that writes the folder
    try:
        return _load_file(newer, model_name, input_size, padding)
    except (OSError, ValueError):
        if os.path.exists(newer):
            raise
    raise FileNotFoundError("the newest checkpoint of %s was replaced twice while it was loaded "
                            "(%s, then %s): a training run is pruning the folder; give a checkpoint "
                            "file, or a --keep that keeps it" % (checkpoint, os.path.basename(path),
                                                                 os.path.basename(newer)))


def _load_file(path, model_name, input_size, padding):
    info = read_checkpoint_info(path)
    check_recorded_architecture(path, info, model_name)
    model = build_model(model_name, input_size, padding=padding)
    check_weights_fit(model, path, model_name)
    try:
        model.load_weights(path)
    except Exception as error:  # h5py and Keras raise several types for unfit weights
        detail = str(error).strip().splitlines()
        raise ValueError("the weights in %s do not fit a %s model: %s"
                         % (path, model_name, detail[0] if detail else type(error).__name__))
    return model, path, info
