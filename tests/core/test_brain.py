"""The brain mask: any modality nonzero, enclosed holes filled."""
import numpy as np
import pytest

from densenet3d_keras.core.brain import brain_mask, foreground_mask


def test_foreground_mask_marks_voxels_where_any_channel_is_not_background():
    image = np.zeros((3, 3, 3, 2), np.float32)
    image[..., 0] = -1.25
    image[..., 1] = -0.5
    image[0, 1, 2, 0] = 3.0
    image[2, 2, 2, 1] = 0.0
    mask = foreground_mask(image, (-1.25, -0.5))
    assert mask.sum() == 2 and mask[0, 1, 2] and mask[2, 2, 2]


def test_brain_mask_fills_enclosed_holes_but_not_the_outside():
    background = np.array([-2.0, -1.0], np.float32)
    image = np.empty((9, 9, 9, 2), np.float32)
    image[...] = background
    image[2:7, 2:7, 2:7, 1] = 0.5          # a cube of brain in one channel only
    image[4, 4, 4] = background            # a hole inside it, zero in every channel
    mask = brain_mask(image, background)
    assert mask[4, 4, 4] and not foreground_mask(image, background)[4, 4, 4]
    assert mask.sum() == 125 and not mask[0].any() and not mask[:, :, 8].any()


def test_brain_mask_of_an_empty_image_is_empty():
    image = np.zeros((4, 4, 4, 1), np.float32)
    assert not brain_mask(image, [0.0]).any()


def test_a_background_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="one value per channel"):
        foreground_mask(np.zeros((2, 2, 2, 4), np.float32), [0.0, 0.0])
