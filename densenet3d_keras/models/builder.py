"""The model factory: one generic builder for every architecture of :mod:`~densenet3d_keras.models.presets`.

``build_model("dense24")`` returns a Keras model with one input ``(batch, S, S, S, 4)``
(channels flair, t2, t1, t1ce) and two outputs, ``wt`` (2 whole-tumour logits) and
``labels`` (5 label logits), each ``S - 26`` voxels per side.
"""
from densenet3d_keras.core import geometry
from densenet3d_keras.core.compat import keras
from densenet3d_keras.models.architecture import block_name, init_name, tap_name
from densenet3d_keras.models.presets import (NUM_CHANNELS, NUM_LABEL_CLASSES, NUM_WT_CLASSES, PATHWAYS,
                                             architecture_of)
from densenet3d_keras.nn.layers import (ChannelSlice, DenseBlock3D, HierarchicalHead, PlainBlock3D,
                                        TransitionDown)


def _block(block, name, padding):
    """The Keras layer of a block of the description."""
    if block.dense:
        return DenseBlock3D(block.units, block.growth_rate, padding=padding, name=name)
    return PlainBlock3D(block.filters, padding=padding, name=name)


def _tap(x, block, name, crop):
    """A block's scale tap: its transition, or its features cropped by ``crop`` per side."""
    if block.tap_filters is not None:
        return TransitionDown(block.tap_filters, crop=crop, name=name)(x)
    return keras.layers.Cropping3D(crop, name=name + "_crop")(x) if crop else x


def _pathway(inputs, architecture, prefix, padding):
    """Build one pathway; return its scale taps, shallowest first."""
    x = inputs
    if architecture.init_filters:
        x = keras.layers.Conv3D(architecture.init_filters, 3, padding=padding, use_bias=True,
                                name=init_name(prefix))(x)
    taps = []
    for index, (block, radius) in enumerate(zip(architecture.blocks, architecture.tap_radii), 1):
        x = _block(block, block_name(prefix, index), padding)(x)
        # Valid padding: a shallower tap is larger than the kept region by the difference of radii.
        crop = architecture.margin - radius if padding == "valid" else 0
        taps.append(_tap(x, block, tap_name(prefix, radius), crop))
    return taps


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
        architecture: an :class:`~densenet3d_keras.models.architecture.Architecture`
            overriding the table row for ``name``.

    Returns:
        ``keras.Model`` with input ``image`` ``(batch, S, S, S, 4)`` and outputs ``wt``
        ``(batch, S-2m, S-2m, S-2m, 2)`` and ``labels`` ``(..., 5)``, m the margin (13).

    Raises:
        ValueError: unknown name or padding, or an input too small for the margin.
    """
    named = architecture_of(name)
    if padding not in ("same", "valid"):
        raise ValueError("padding must be 'same' or 'valid', got %r" % (padding,))
    architecture = architecture or named
    margin = architecture.margin
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
