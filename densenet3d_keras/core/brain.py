"""The brain of a skull-stripped case: the voxels where any modality is nonzero, holes filled.

BraTS volumes are skull-stripped: outside the brain every modality is exactly 0, which the
per-modality normalisation turns into each channel's background value ``-mean / std``. The
brain is the region where any channel differs from its background value, with enclosed holes
filled (the "nonzero mask" of nnU-Net's preprocessing and of the BraTS pipelines). Training
draws its background samples from it (``--sampling balanced``) and every inference method
labels nothing outside it.
"""
from typing import Sequence

import numpy as np


def foreground_mask(image, background):
    # type: (np.ndarray, Sequence[float]) -> np.ndarray
    """Voxels where any channel differs from its background value (a raw nonzero voxel).

    Args:
        image: ``(X, Y, Z, C)`` normalised image.
        background: ``(C,)`` value of a raw 0 in each channel.

    Returns:
        bool ``(X, Y, Z)``.
    """
    background = np.asarray(background, dtype=image.dtype).reshape(-1)
    if background.shape != (image.shape[-1],):
        raise ValueError("background must hold one value per channel (%d), got shape %s"
                         % (image.shape[-1], background.shape))
    differs = np.empty(image.shape, dtype=bool)
    np.not_equal(image, background, out=differs)
    whole = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(image.shape[-1])
    if whole is None:
        return differs.any(axis=-1)
    # A voxel's channel flags are adjacent bytes: any flag set is one nonzero word (3x faster).
    return differs.view(whole)[..., 0] != 0


def brain_mask(image, background):
    # type: (np.ndarray, Sequence[float]) -> np.ndarray
    """:func:`foreground_mask` with the holes it encloses filled (per 3-D connected region).

    Args:
        image: ``(X, Y, Z, C)`` normalised image.
        background: ``(C,)`` value of a raw 0 in each channel.

    Returns:
        bool ``(X, Y, Z)``.
    """
    mask = foreground_mask(image, background)
    if not mask.any():
        return mask
    return fill_holes(mask)


def fill_holes(mask):
    # type: (np.ndarray) -> np.ndarray
    """``scipy.ndimage.binary_fill_holes(mask)``: the background regions (6-connected) that
    do not reach the volume's border become foreground.

    Labelling the background once and keeping the labels seen on the border gives the same
    mask as SciPy's iterated dilation in about a third of its time (0.09 s against 0.25 s
    for a 240 x 240 x 155 BraTS case).
    """
    from scipy import ndimage

    labels, count = ndimage.label(~mask)
    outside = np.zeros(count + 1, dtype=bool)
    outside[0] = True  # label 0: the foreground itself
    for axis in range(mask.ndim):
        for end in (0, -1):
            outside[labels.take(end, axis=axis)] = True
    return mask | ~outside[labels]
