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
    mask = np.zeros(image.shape[:3], dtype=bool)
    for channel in range(image.shape[3]):
        mask |= image[..., channel] != background[channel]
    return mask


def brain_mask(image, background):
    # type: (np.ndarray, Sequence[float]) -> np.ndarray
    """:func:`foreground_mask` with the holes it encloses filled (per 3-D connected region).

    Args:
        image: ``(X, Y, Z, C)`` normalised image.
        background: ``(C,)`` value of a raw 0 in each channel.

    Returns:
        bool ``(X, Y, Z)``.
    """
    from scipy import ndimage

    mask = foreground_mask(image, background)
    if not mask.any():
        return mask
    return ndimage.binary_fill_holes(mask)
