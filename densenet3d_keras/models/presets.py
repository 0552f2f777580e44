"""The architectures: one table row per network, one line per command-line name.

The numbers are those of Chen et al. (SPIE 2018; docs/spec.md): two pathways of identical
design (flair+t2 and t1+t1ce), each an init convolution, two dense blocks and two taps
(receptive fields 15 and 27 voxels), or for no-dense a plain chain of 13 convolutions
whose 7th and 13th outputs are the taps.
"""
from collections import OrderedDict

from densenet3d_keras.core.labels import NUM_CLASSES
from densenet3d_keras.models.architecture import Architecture, DenseBlock, PlainBlock

#: One row per network (fields: :mod:`densenet3d_keras.models.architecture`). A new preset is a
#: new row here (and a name in :data:`MODEL_NAMES`); the builder, the FLOP count, streaming
#: inference and the tests walk the row.
ARCHITECTURES = OrderedDict([
    ("dense24", Architecture(init_filters=24, blocks=(
        DenseBlock(units=6, growth_rate=12, tap_filters=96),
        DenseBlock(units=6, growth_rate=12, tap_filters=168)))),
    ("dense48", Architecture(init_filters=48, blocks=(
        DenseBlock(units=6, growth_rate=12, tap_filters=192),
        DenseBlock(units=6, growth_rate=24, tap_filters=336)))),
    ("no_dense", Architecture(init_filters=None, blocks=(
        PlainBlock(filters=(24, 36, 48, 60, 72, 84, 96)),
        PlainBlock(filters=(108, 120, 132, 144, 156, 168))))),
    # Same geometry as dense24 with a fraction of its width: smoke tests and CI.
    ("tiny", Architecture(init_filters=8, blocks=(
        DenseBlock(units=6, growth_rate=4, tap_filters=32),
        DenseBlock(units=6, growth_rate=4, tap_filters=56)))),
])
#: Names accepted on the command line -> (architecture, N4 correction default).
MODEL_NAMES = OrderedDict([
    ("dense24", ("dense24", None)),
    ("dense48", ("dense48", None)),
    ("no_dense", ("no_dense", None)),
    ("no-dense", ("no_dense", None)),
    ("dense24_nocorrection", ("dense24", False)),
    ("tiny", ("tiny", None)),
])
#: The model of a run that names none (and of a checkpoint that records none).
DEFAULT_MODEL_NAME = "dense24"
#: ``(layer-name prefix, first input channel, one past the last)`` of each pathway, in the
#: order the head reads them.
PATHWAYS = (("flair_t2", 0, 2), ("t1_t1ce", 2, 4))
NUM_CHANNELS = 4
NUM_WT_CLASSES = 2
#: Classes of the label head (internal labels 0..4).
NUM_LABEL_CLASSES = NUM_CLASSES


def resolve_model_name(name):
    """Map a model name to ``(architecture name, N4 default)``.

    ``N4 default`` is ``False`` for ``dense24_nocorrection`` (the name turns correction off)
    and ``None`` otherwise (the ``-nc`` flag decides).

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    if name not in MODEL_NAMES:
        raise ValueError("unknown model name %r (choose from %s)" % (name, ", ".join(MODEL_NAMES)))
    return MODEL_NAMES[name]


def architecture_of(name_or_architecture):
    """The :class:`~densenet3d_keras.models.architecture.Architecture` of a model name (an
    ``Architecture`` is returned as it is).

    Raises:
        ValueError: an unknown name (the choices are listed), or neither a name nor an
            ``Architecture``.
    """
    if isinstance(name_or_architecture, Architecture):
        return name_or_architecture
    if not isinstance(name_or_architecture, str):
        raise ValueError("expected a model name or an Architecture, got %r" % (name_or_architecture,))
    return ARCHITECTURES[resolve_model_name(name_or_architecture)[0]]


def n4_for_model(model_name, requested):
    """N4 correction for a model name and the ``-nc`` flag.

    Args:
        model_name: a key of :data:`MODEL_NAMES`.
        requested: ``-nc`` as given: ``True``, ``False`` or ``None`` (not given).

    Returns:
        ``False`` when the name fixes it (``dense24_nocorrection``), else ``requested``
        (``None`` stays ``None``: the caller decides the default).

    Raises:
        ValueError: ``-nc true`` with a name that means uncorrected data.
    """
    _, n4_default = resolve_model_name(model_name)
    if n4_default is False:
        if requested:
            raise ValueError("model %s is trained on uncorrected data; drop -nc true" % model_name)
        return False
    return requested
