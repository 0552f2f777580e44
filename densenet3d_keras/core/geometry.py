"""Patch, crop and tile arithmetic as plain functions.

Every 3x3x3 convolution on the deepest path grows the receptive field by one voxel per side;
the network's kept outputs are the input minus that radius on each side (13 voxels for the
paper's models: 38^3 patches give 12^3 outputs).
"""
from typing import List, Sequence, Tuple

#: Reference training geometry (docs/spec.md).
PATCH_SIZE = 38
MARGIN = 13
OUTPUT_SIZE = PATCH_SIZE - 2 * MARGIN


def output_size(input_size, margin=MARGIN):
    # type: (int, int) -> int
    """Kept output size along one axis for an input of ``input_size`` voxels.

    Raises:
        ValueError: the input is too small to keep any voxel.
    """
    size = int(input_size) - 2 * int(margin)
    if size < 1:
        raise ValueError("input size %d is too small: it must exceed 2 x margin = %d"
                         % (input_size, 2 * margin))
    return size


def patch_start(centre, dim, patch=PATCH_SIZE):
    # type: (int, int, int) -> int
    """First index of a ``patch``-voxel window centred on ``centre``, clamped inside ``dim``.

    ``clamp(centre - patch // 2, 0, dim - patch)`` as in the reference sampler.

    Raises:
        ValueError: ``dim`` is smaller than the patch.
    """
    if dim < patch:
        raise ValueError("axis of %d voxels is smaller than the %d-voxel patch" % (dim, patch))
    return int(min(max(int(centre) - patch // 2, 0), dim - patch))


def patch_starts(centre, shape, patch=PATCH_SIZE):
    # type: (Sequence[int], Sequence[int], int) -> Tuple[int, ...]
    """:func:`patch_start` along every axis."""
    return tuple(patch_start(c, d, patch) for c, d in zip(centre, shape))


def window_starts(dim, window, step):
    # type: (int, int, int) -> List[int]
    """Starts of windows every ``step`` voxels covering ``[0, dim)``, the last one ending at ``dim``.

    Raises:
        ValueError: non-positive ``step`` or ``dim`` smaller than ``window``.
    """
    if step < 1:
        raise ValueError("step must be positive, got %d" % step)
    if dim < window:
        raise ValueError("axis of %d voxels is smaller than the %d-voxel window" % (dim, window))
    starts = list(range(0, dim - window + 1, step))
    if starts[-1] != dim - window:
        starts.append(dim - window)
    return starts


def centre_crop_slices(size, crop):
    # type: (Sequence[int], int) -> Tuple[slice, ...]
    """Slices that remove ``crop`` voxels from each side of every axis of ``size``."""
    return tuple(slice(crop, s - crop) for s in size)


def conv_output_size(input_size, num_convs, padding, kernel_size=3):
    # type: (int, int, str, int) -> int
    """Spatial size after ``num_convs`` stride-1 convolutions with ``padding``."""
    if padding == "same":
        return int(input_size)
    if padding == "valid":
        return int(input_size) - num_convs * (kernel_size - 1)
    raise ValueError("padding must be 'same' or 'valid', got %r" % (padding,))
