"""The architectures: one table row per network, one line per command-line name.

The numbers are those of Chen et al. (SPIE 2018; docs/spec.md): two pathways of identical
design (flair+t2 and t1+t1ce), each an init convolution, two dense blocks and two taps
(receptive fields 15 and 27 voxels), or for no-dense a plain chain of 13 convolutions.
"""
from collections import OrderedDict, namedtuple

from densenet3d_keras.core.labels import NUM_CLASSES

#: How one pathway is built. ``kind`` is ``"dense"`` (init conv, two dense blocks, two taps)
#: or ``"plain"`` (two chains of conv-BN-ReLU; the chains' outputs are the taps).
Architecture = namedtuple("Architecture", [
    "kind", "init_filters", "growth_rates", "units", "tap_filters", "plain_filters"])


def _dense(init_filters, growth_rates, units, tap_filters):
    return Architecture("dense", init_filters, tuple(growth_rates), tuple(units), tuple(tap_filters), None)


def _plain(first, second):
    return Architecture("plain", None, None, None, None, (tuple(first), tuple(second)))
ARCHITECTURES = OrderedDict([
    ("dense24", _dense(24, (12, 12), (6, 6), (96, 168))),
    ("dense48", _dense(48, (12, 24), (6, 6), (192, 336))),
    ("no_dense", _plain(range(24, 97, 12), range(108, 169, 12))),
    # Same geometry as dense24 with a fraction of its width: smoke tests and CI.
    ("tiny", _dense(8, (4, 4), (6, 6), (32, 56))),
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


def margins(architecture):
    """``(radius of the 15-voxel tap, radius of the 27-voxel tap)`` in voxels.

    Each 3x3x3 convolution on the path adds one voxel per side: 7 and 13 for the paper's models.
    """
    if architecture.kind == "dense":
        return 1 + architecture.units[0], 1 + architecture.units[0] + architecture.units[1]
    first, second = architecture.plain_filters
    return len(first), len(first) + len(second)


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
