"""The brain mask: any modality nonzero, enclosed holes filled."""
import numpy as np
import pytest

from densenet3d_keras.core.brain import brain_mask, fill_holes, foreground_mask


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


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_foreground_mask_is_any_channel_different_for_every_channel_count(channels):
    random = np.random.RandomState(channels)
    background = random.standard_normal(channels).astype(np.float32)
    image = np.repeat(background[None, None, None], 6 * 7 * 5, axis=0).reshape(6, 7, 5, channels)
    changed = random.rand(6, 7, 5, channels) < 0.1
    image[changed] += 1.0
    image = image[:, ::-1]  # not contiguous, as a flipped test-time pass is
    assert np.array_equal(foreground_mask(image, background), changed[:, ::-1].any(axis=-1))


@pytest.mark.parametrize("seed", range(6))
def test_fill_holes_equals_scipy(seed):
    from scipy import ndimage

    random = np.random.RandomState(seed)
    shape = tuple(random.randint(3, 14, size=3))
    mask = random.rand(*shape) < random.uniform(0.3, 0.8)  # many enclosed and open regions
    assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert np.array_equal(fill_holes(np.ones(shape, bool)), np.ones(shape, bool))
