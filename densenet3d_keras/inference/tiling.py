"""Tile and window geometry of whole-volume inference, as pure functions.

A network with a receptive-field radius ``margin`` (13) gives, for an input block of ``T``
voxels per axis, the logits of the ``T - 2 margin`` voxels at its centre. :func:`tile_plan`
covers a region with such blocks (neighbouring inputs overlap by ``2 margin``);
:func:`window_plan` places the reference's 38^3 windows every 12 voxels. Arrays follow the
NIfTI voxel order ``(X, Y, Z[, C])``.
"""
import itertools
from collections import namedtuple
from typing import List, Optional, Sequence, Tuple

import numpy as np

from densenet3d_keras.core.geometry import MARGIN, OUTPUT_SIZE, PATCH_SIZE, output_size, window_starts

#: Default largest tile edge (input voxels) of fully convolutional inference: at most 62^3
#: outputs per tile, chosen so that one dense24 tile keeps a case under 4 GB of memory
#: (docs/performance.md).
DEFAULT_TILE_SIZE = 88
#: Spacing of the reference's sliding windows: the output block size.
PATCH_STEP = OUTPUT_SIZE

#: One tile of :func:`tile_plan`, in voxel coordinates of the volume (``(3,)`` tuples).
#: ``start``/``stop``: the tile's output block; its input is that block grown by the margin.
#: ``write_start``/``write_stop``: the part of the output block this tile writes; the written
#: parts of a plan partition the predicted region.
Tile = namedtuple("Tile", ["start", "stop", "write_start", "write_stop"])
#: One axis of a tile plan, in coordinates relative to the region's start.
AxisTile = namedtuple("AxisTile", ["start", "stop", "write_start", "write_stop"])

def _as_shape(shape, name="shape"):
    values = tuple(int(s) for s in shape)
    if len(values) != 3 or min(values) < 1:
        raise ValueError("%s must be 3 positive integers, got %r" % (name, tuple(shape)))
    return values


def bounding_box(mask):
    # type: (np.ndarray) -> Optional[Tuple[Tuple[int, int, int], Tuple[int, int, int]]]
    """Smallest box holding every ``True`` voxel of a 3-D mask.

    Args:
        mask: boolean ``(X, Y, Z)`` array.

    Returns:
        ``(start, stop)``, two ``(3,)`` tuples with ``stop`` exclusive, or ``None`` for an
        empty mask.

    Raises:
        ValueError: the mask is not 3-D.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError("mask must be 3-D, got shape %s" % (mask.shape,))
    start, stop = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        start.append(int(hits[0]))
        stop.append(int(hits[-1]) + 1)
    return tuple(start), tuple(stop)


def axis_tiles(length, max_output):
    # type: (int, int) -> List[AxisTile]
    """Split ``[0, length)`` into equal output blocks of at most ``max_output`` voxels.

    The number of blocks is the fewest that fit, ``n = ceil(length / max_output)``; each
    block is ``ceil(length / n)`` voxels (so tiles are as small as the count allows and all of
    one size, which lets them share one traced model and be batched). Blocks start every
    block size; the last one is clamped to end at ``length`` and only writes the voxels its
    predecessor did not.

    Args:
        length: voxels to cover, >= 1.
        max_output: largest block, >= 1.

    Returns:
        list of :class:`AxisTile`; the ``[write_start, write_stop)`` intervals partition
        ``[0, length)``.

    Raises:
        ValueError: ``length`` or ``max_output`` below 1.
    """
    if length < 1 or max_output < 1:
        raise ValueError("need length >= 1 and max_output >= 1, got %r and %r"
                         % (length, max_output))
    count = -(-int(length) // int(max_output))
    size = -(-int(length) // count)
    tiles = []
    written = 0
    for start in window_starts(int(length), size, size):
        tiles.append(AxisTile(start, start + size, written, start + size))
        written = start + size
    return tiles


def tile_plan(region_start, region_stop, tile_size=DEFAULT_TILE_SIZE, margin=MARGIN):
    # type: (Sequence[int], Sequence[int], int, int) -> List[Tile]
    """Tiles whose outputs cover the box ``[region_start, region_stop)``.

    Along each axis the box is split by :func:`axis_tiles` into output blocks of at most
    ``tile_size - 2 * margin`` voxels; every tile of the plan has the same shape. A tile's
    input is its output block grown by ``margin`` on each side (it may reach outside the
    volume; see :func:`extract_block`).

    Args:
        region_start: ``(3,)`` first voxel of the box.
        region_stop: ``(3,)`` one past the last voxel.
        tile_size: largest tile input edge, > 2 x margin.
        margin: the network's receptive-field radius (13).

    Returns:
        list of :class:`Tile` in C order (last axis fastest).

    Raises:
        ValueError: an empty box or a tile size that keeps no output voxel.
    """
    region_start = tuple(int(s) for s in region_start)
    region_stop = tuple(int(s) for s in region_stop)
    lengths = [b - a for a, b in zip(region_start, region_stop)]
    if len(lengths) != 3 or min(lengths) < 1:
        raise ValueError("empty region %s..%s" % (region_start, region_stop))
    max_output = output_size(tile_size, margin)
    per_axis = [axis_tiles(length, max_output) for length in lengths]
    plan = []
    for combination in itertools.product(*per_axis):
        plan.append(Tile(
            tuple(o + t.start for o, t in zip(region_start, combination)),
            tuple(o + t.stop for o, t in zip(region_start, combination)),
            tuple(o + t.write_start for o, t in zip(region_start, combination)),
            tuple(o + t.write_stop for o, t in zip(region_start, combination))))
    return plan


def tile_input_shape(tile, margin=MARGIN):
    # type: (Tile, int) -> Tuple[int, int, int]
    """Spatial input shape of a tile: its output block plus ``margin`` on each side."""
    return tuple(b - a + 2 * margin for a, b in zip(tile.start, tile.stop))


def tiles_per_batch(input_shape, tile_size=DEFAULT_TILE_SIZE):
    # type: (Sequence[int], int) -> int
    """How many tiles of ``input_shape`` fit the voxel budget of one ``tile_size``^3 tile.

    Memory grows with the voxels of a model call, so small tiles are batched up to the
    budget and large ones run one at a time.
    """
    voxels = int(np.prod([int(s) for s in input_shape]))
    return max(1, int(tile_size) ** 3 // voxels)


def window_plan(shape, patch=PATCH_SIZE, step=PATCH_STEP):
    # type: (Sequence[int], int, int) -> List[Tuple[int, int, int]]
    """Starts of the reference's sliding windows over a volume.

    Windows of ``patch`` voxels every ``step`` voxels along each axis, the last clamped to
    end at the edge (:func:`densenet3d_keras.core.geometry.window_starts`), all combinations.

    Args:
        shape: ``(3,)`` volume shape, every axis >= ``patch``.
        patch: window edge (38).
        step: spacing (12, the output block size, so blocks tile the interior).

    Returns:
        list of ``(3,)`` window starts in C order.

    Raises:
        ValueError: an axis shorter than the window.
    """
    shape = _as_shape(shape)
    return list(itertools.product(*[window_starts(d, patch, step) for d in shape]))


def window_block(start, patch=PATCH_SIZE, margin=MARGIN):
    # type: (Sequence[int], int, int) -> Tuple[slice, slice, slice]
    """Slices of the output block at the centre of the window starting at ``start``."""
    size = output_size(patch, margin)
    return tuple(slice(s + margin, s + margin + size) for s in start)


def extract_block(image, start, stop, fill):
    # type: (np.ndarray, Sequence[int], Sequence[int], Sequence[float]) -> np.ndarray
    """Copy the box ``[start, stop)`` of an image, filling what lies outside it with ``fill``.

    The box may extend beyond the volume on any side (negative starts, stops past the end):
    this is the volume padded by each channel's background value, without padding it all.

    Args:
        image: ``(X, Y, Z, C)`` array.
        start: ``(3,)`` first voxel (may be negative).
        stop: ``(3,)`` one past the last voxel (may exceed the shape).
        fill: ``(C,)`` value per channel outside the volume.

    Returns:
        ``(stop - start) + (C,)`` array of the image's dtype.

    Raises:
        ValueError: an empty box.
    """
    start = tuple(int(s) for s in start)
    stop = tuple(int(s) for s in stop)
    size = tuple(b - a for a, b in zip(start, stop))
    if len(size) != 3 or min(size) < 1:
        raise ValueError("empty box %s..%s" % (start, stop))
    fill = np.asarray(fill, dtype=image.dtype)
    inner_lo = [max(0, a) for a in start]
    inner_hi = [min(d, b) for d, b in zip(image.shape[:3], stop)]
    source = tuple(slice(lo, hi) for lo, hi in zip(inner_lo, inner_hi))
    target = tuple(slice(lo - a, hi - a) for lo, hi, a in zip(inner_lo, inner_hi, start))
    inside = all(lo == a and hi == b for lo, hi, a, b in zip(inner_lo, inner_hi, start, stop))
    if inside:
        return np.array(image[source], copy=True)
    block = np.empty(size + image.shape[3:], dtype=image.dtype)
    block[...] = fill
    if all(hi > lo for lo, hi in zip(inner_lo, inner_hi)):
        block[target] = image[source]
    return block


def pad_to_patch(image, background, patch=PATCH_SIZE):
    # type: (np.ndarray, Sequence[float], int) -> Tuple[np.ndarray, Tuple[int, int, int]]
    """Pad every axis shorter than ``patch`` symmetrically with the background values.

    Args:
        image: ``(X, Y, Z, C)`` array.
        background: ``(C,)`` fill per channel.
        patch: smallest axis size wanted.

    Returns:
        (padded image, ``(3,)`` index of the original voxel (0, 0, 0) in it). The image is
        returned as is when no axis is short.
    """
    shape = image.shape[:3]
    before = tuple(max(0, (patch - d + 1) // 2) for d in shape)
    after = tuple(max(0, patch - d - b) for d, b in zip(shape, before))
    if not any(before) and not any(after):
        return image, (0, 0, 0)
    start = tuple(-b for b in before)
    stop = tuple(d + a for d, a in zip(shape, after))
    return extract_block(image, start, stop, background), before


def crop_back(array, offset, shape):
    # type: (np.ndarray, Sequence[int], Sequence[int]) -> np.ndarray
    """Undo :func:`pad_to_patch`: the ``shape`` block at ``offset`` (leading three axes)."""
    return array[tuple(slice(o, o + s) for o, s in zip(offset, shape))]


def box_slices(start, stop):
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
