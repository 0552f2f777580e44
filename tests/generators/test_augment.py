"""Training augmentation: mirroring keeps patch and label block together, intensity jitter
leaves the background value alone."""
import numpy as np
import pytest

from generators.augment import INTENSITY_SCALE, INTENSITY_SHIFT, augment_batch, parse_augment


@pytest.mark.parametrize("text, expected", [
    (None, ()), ("none", ()), ("", ()), ("flip", ("flip",)),
    ("flip,intensity", ("flip", "intensity")), ("intensity, flip,flip", ("intensity", "flip")),
    (["flip"], ("flip",)),
])
def test_parse_augment(text, expected):
    assert parse_augment(text) == expected


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="unknown augmentation 'rotate' \\(choose from flip, intensity, or none\\)"):
        parse_augment("flip,rotate")


def test_flip_mirrors_patch_and_centred_label_block_alike():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 10, 10, 10, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=(8, 4, 4, 4)).astype(np.uint8)
    original_x, original_y = x.copy(), y.copy()
    x, y = augment_batch(x, y, [0.0, 0.0], ("flip",), np.random.default_rng(1))
    flipped = 0
    for index in range(8):
        for axes in ([], [0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]):
            if np.array_equal(x[index], np.flip(original_x[index], axis=axes) if axes else original_x[index]):
                break
        else:
            raise AssertionError("patch %d is not a mirror image of the original" % index)
        expected = np.flip(original_y[index], axis=axes) if axes else original_y[index]
        np.testing.assert_array_equal(y[index], expected)
        flipped += bool(axes)
    assert flipped >= 4


def test_intensity_jitter_scales_and_shifts_the_brain_only():
    background = np.array([-3.0, -1.5], np.float32)
    x = np.empty((3, 6, 6, 6, 2), np.float32)
    x[...] = background
    x[:, 1:5, 1:5, 1:5, :] = np.linspace(-1, 2, 64 * 3 * 2).reshape(3, 4, 4, 4, 2)
    y = np.zeros((3, 2, 2, 2), np.uint8)
    original = x.copy()
    x, _ = augment_batch(x, y, background, ("intensity",), np.random.default_rng(4))
    outside = original == background
    np.testing.assert_array_equal(x[outside], original[outside])
    for index in range(3):
        for channel in range(2):
            inside = ~outside[index, ..., channel]
            before, after = original[index, ..., channel][inside], x[index, ..., channel][inside]
            scale, shift = np.polyfit(before, after, 1)
            assert abs(scale - 1) <= INTENSITY_SCALE + 1e-5 and abs(shift) <= INTENSITY_SHIFT + 1e-5
            assert not np.allclose(before, after)
