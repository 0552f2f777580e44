"""Loading a trained model: a checkpoint's weights into the network its name asks for."""
from typing import Optional  # noqa: F401 (type comments)

from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.presets import resolve_model_name
from callbacks.checkpoint import find_checkpoint, read_checkpoint_info


def check_recorded_architecture(path, info, model_name):
    """Refuse a checkpoint whose recorded model name is another architecture than ``model_name``.

    Args:
        path: the checkpoint file (for the message).
        info: its :func:`~callbacks.checkpoint.read_checkpoint_info`.
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

    Args:
        checkpoint: checkpoint file, or a folder (its newest checkpoint,
            :func:`callbacks.checkpoint.find_checkpoint`).
        model_name: a name of :data:`densenet3d_keras.models.presets.MODEL_NAMES`.
        input_size: cubic input size, or ``None`` for a fully convolutional model.
        padding: ``"same"`` or ``"valid"``; checkpoints load into either (same weights).

    Returns:
        (model, checkpoint path, checkpoint info ``{"epoch", "model", "padding"}``).

    Raises:
        FileNotFoundError: no checkpoint at ``checkpoint``.
        ValueError: unknown model name, a checkpoint recording another architecture (the
            message names it), or weights that do not fit the model.
    """
    path = find_checkpoint(checkpoint)
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


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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
