"""The description of one pathway of the network: what the builder, FLOP count and streaming walk.

A pathway is an optional init convolution (3x3x3 with bias) and two blocks, each ending in a
scale tap that the hierarchical head reads. A block is either

* a :class:`DenseBlock`: units of BN -> ReLU -> Conv 3x3x3, each unit's output appended to the
  block's features (``growth_rate`` channels per unit), or
* a :class:`PlainBlock`: units of Conv 3x3x3 -> BN -> ReLU, each unit's output replacing them.

Its tap is a transition (BN -> ReLU -> Conv 1x1x1 -> BN -> ReLU with ``tap_filters``
filters) or, with ``tap_filters=None``, the block's features as they are.

Every 3x3x3 convolution widens the receptive field by one voxel per side, so the radius of a
tap is the number of 3x3x3 convolutions before it (:attr:`Architecture.tap_radii`) and the
network's margin is the radius of the last tap (13 for the paper's models). Layers are named
from the description (:func:`init_name`, :func:`block_name`, :func:`tap_name`), so the
builder's Keras layers and the readers of their weights agree:
``flair_t2_init_conv``, ``flair_t2_block1``, ``flair_t2_tap15`` (a tap is named by its
receptive field, ``2 radius + 1`` voxels).
"""
from collections import namedtuple

#: Side of the pathway convolutions (1x1x1 for taps).
KERNEL = 3
#: Voxels one 3x3x3 convolution adds to the receptive-field radius (and removes per side with
#: valid padding).
STEP = (KERNEL - 1) // 2


class DenseBlock(namedtuple("DenseBlock", ["units", "growth_rate", "tap_filters"])):
    """``units`` x (BN -> ReLU -> Conv 3x3x3 with ``growth_rate`` filters), outputs appended;
    then the tap (``tap_filters``: a transition's filters, ``None``: the features themselves)."""

    __slots__ = ()
    #: A unit's output is appended to its input (and its batch norm comes before its conv).
    dense = True

    @property
    def unit_filters(self):
        """Filters of each unit's convolution, in order."""
        return (int(self.growth_rate),) * int(self.units)


class PlainBlock(namedtuple("PlainBlock", ["filters", "tap_filters"])):
    """Conv 3x3x3 -> BN -> ReLU units with ``filters[i]`` filters each, each replacing its input;
    then the tap (``tap_filters``: a transition's filters, ``None``: the block's output)."""

    __slots__ = ()
    #: A unit's output replaces its input (and its batch norm comes after its conv).
    dense = False

    def __new__(cls, filters, tap_filters=None):
        return super(PlainBlock, cls).__new__(cls, tuple(int(f) for f in filters), tap_filters)

    @property
    def unit_filters(self):
        """Filters of each unit's convolution, in order."""
        return self.filters


class Architecture(namedtuple("Architecture", ["init_filters", "blocks"])):
    """One pathway: an init convolution of ``init_filters`` (``None``: none), then ``blocks``
    (two :class:`DenseBlock` or :class:`PlainBlock`, each ending in a scale tap).

    Raises:
        ValueError: not two blocks, a block without units, or a count that is not a positive
            integer.
    """

    __slots__ = ()

    def __new__(cls, init_filters, blocks):
        blocks = tuple(blocks)
        _check(init_filters, blocks)
        return super(Architecture, cls).__new__(cls, init_filters, blocks)

    @property
    def tap_radii(self):
        """Receptive-field radius of each block's tap: 3x3x3 convolutions before it."""
        radius = STEP if self.init_filters else 0
        radii = []
        for block in self.blocks:
            radius += STEP * len(block.unit_filters)
            radii.append(radius)
        return tuple(radii)

    @property
    def margin(self):
        """The network's receptive-field radius (the last tap's): 13 for the paper's models."""
        return self.tap_radii[-1]


def _positive(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check(init_filters, blocks):
    if init_filters is not None and not _positive(init_filters):
        raise ValueError("init_filters must be a positive integer or None, got %r" % (init_filters,))
    if len(blocks) != 2:
        raise ValueError("the head reads two scales: an architecture has two blocks, got %d" % len(blocks))
    for block in blocks:
        if not isinstance(block, (DenseBlock, PlainBlock)):
            raise ValueError("a block is a DenseBlock or a PlainBlock, got %r" % (block,))
        counts = list(block.unit_filters) + ([] if block.tap_filters is None else [block.tap_filters])
        if not block.unit_filters or not all(_positive(count) for count in counts):
            raise ValueError("block %r needs at least one unit and positive filter counts" % (block,))


def init_name(prefix):
    """Name of a pathway's init convolution layer: ``<prefix>_init_conv``."""
    return prefix + "_init_conv"


def block_name(prefix, index):
    """Name of a pathway's block layer, ``index`` from 1: ``<prefix>_block1``."""
    return "%s_block%d" % (prefix, index)


def tap_name(prefix, radius):
    """Name of a pathway's tap of receptive-field radius ``radius``: ``<prefix>_tap15`` for 7."""
    return "%s_tap%d" % (prefix, 2 * radius + 1)
