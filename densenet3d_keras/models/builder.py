"""The model factory: one generic builder for every architecture of :mod:`~densenet3d_keras.models.presets`.

``build_model("dense24")`` returns a Keras model with one input ``(batch, S, S, S, 4)``
(channels flair, t2, t1, t1ce) and two outputs, ``wt`` (2 whole-tumour logits) and
``labels`` (5 label logits), each ``S - 26`` voxels per side.
"""
from densenet3d_keras.core import geometry
from densenet3d_keras.core.compat import keras
from densenet3d_keras.models.presets import (ARCHITECTURES, NUM_CHANNELS, NUM_LABEL_CLASSES, NUM_WT_CLASSES,
                                             PATHWAYS, margins, resolve_model_name)
from densenet3d_keras.nn.layers import (ChannelSlice, DenseBlock3D, HierarchicalHead, PlainBlock3D,
                                        TransitionDown)


def _pathway(inputs, architecture, prefix, padding):
    """Build one pathway; return its two scale taps."""
    radius_15, radius_27 = margins(architecture)
    # Valid padding: the 15-voxel tap is larger than the kept region by the difference of radii.
    crop_15 = radius_27 - radius_15 if padding == "valid" else 0
    if architecture.kind == "dense":
        x = keras.layers.Conv3D(architecture.init_filters, 3, padding=padding, use_bias=True,
                                name=prefix + "_init_conv")(inputs)
        x = DenseBlock3D(architecture.units[0], architecture.growth_rates[0], padding=padding,
                         name=prefix + "_block1")(x)
        tap_15 = TransitionDown(architecture.tap_filters[0], crop=crop_15, name=prefix + "_tap15")(x)
        x = DenseBlock3D(architecture.units[1], architecture.growth_rates[1], padding=padding,
                         name=prefix + "_block2")(x)
        tap_27 = TransitionDown(architecture.tap_filters[1], name=prefix + "_tap27")(x)
        return tap_15, tap_27
    first, second = architecture.plain_filters
    x = PlainBlock3D(first, padding=padding, name=prefix + "_block1")(inputs)
    tap_15 = keras.layers.Cropping3D(crop_15, name=prefix + "_tap15_crop")(x) if crop_15 else x
    tap_27 = PlainBlock3D(second, padding=padding, name=prefix + "_block2")(x)
    return tap_15, tap_27


def build_model(name="dense24", input_size=geometry.PATCH_SIZE, padding="same", architecture=None):
    """Build the hierarchical two-pathway network.

    Args:
        name: a key of :data:`MODEL_NAMES` (``dense24``, ``dense48``, ``no_dense`` /
            ``no-dense``, ``dense24_nocorrection``, ``tiny``); also the model's name.
        input_size: cubic input size (38 for training patches), or ``None`` for a fully
            convolutional model that takes any size larger than 2 x margin.
        padding: ``"same"`` (the reference: every layer over the whole patch) or ``"valid"``
            (unpadded convolutions computing only what reaches the kept outputs; the same
            weights and, in inference mode, the same logits).
        architecture: an :class:`Architecture` overriding the table row for ``name``.

    Returns:
        ``keras.Model`` with input ``image`` ``(batch, S, S, S, 4)`` and outputs ``wt``
        ``(batch, S-2m, S-2m, S-2m, 2)`` and ``labels`` ``(..., 5)``, m the margin (13).

    Raises:
        ValueError: unknown name or padding, or an input too small for the margin.
    """
    arch_name, _ = resolve_model_name(name)
    if padding not in ("same", "valid"):
        raise ValueError("padding must be 'same' or 'valid', got %r" % (padding,))
    architecture = architecture or ARCHITECTURES[arch_name]
    _, margin = margins(architecture)
    if input_size is not None:
        geometry.output_size(input_size, margin)
    shape = (input_size, input_size, input_size, NUM_CHANNELS)
    inputs = keras.layers.Input(shape=shape, name="image")
    taps = {}
    for prefix, start, stop in PATHWAYS:
        channels = ChannelSlice(start, stop, name=prefix + "_channels")(inputs)
        taps[prefix] = _pathway(channels, architecture, prefix, padding)
    flair_15, flair_27 = taps["flair_t2"]
    t1_15, t1_27 = taps["t1_t1ce"]
    head_crop = margin if padding == "same" else 0
    wt, labels = HierarchicalHead(NUM_WT_CLASSES, NUM_LABEL_CLASSES, crop=head_crop, name="head")(
        [flair_15, flair_27, t1_15, t1_27])
    # float32 outputs even under a mixed-precision policy: softmax and loss stay in float32.
    wt = keras.layers.Activation("linear", dtype="float32", name="wt")(wt)
    labels = keras.layers.Activation("linear", dtype="float32", name="labels")(labels)
    return keras.Model(inputs, [wt, labels], name=name.replace("-", "_"))
