"""Patch, crop and window arithmetic."""
import pytest

from densenet3d_keras.core import geometry


@pytest.mark.parametrize("centre, dim, expected", [
    (0, 240, 0),          # clamped at the start
    (19, 240, 0),
    (20, 240, 1),
    (100, 240, 81),
    (239, 240, 202),      # clamped at the end: dim - 38
    (77, 155, 58),
    (10, 38, 0),          # axis exactly one patch long
])
def test_patch_start_matches_reference_clamp(centre, dim, expected):
    assert geometry.patch_start(centre, dim) == expected
    assert expected == min(max(centre - 19, 0), dim - 38)


def test_patch_start_rejects_axis_smaller_than_patch():
    with pytest.raises(ValueError, match="smaller than the 38-voxel patch"):
        geometry.patch_start(5, 30)


@pytest.mark.parametrize("size, margin, expected", [(38, 13, 12), (27, 13, 1), (240, 13, 214), (20, 5, 10)])
def test_output_size(size, margin, expected):
    assert geometry.output_size(size, margin) == expected


def test_output_size_rejects_small_input():
    with pytest.raises(ValueError, match="too small"):
        geometry.output_size(26, 13)


@pytest.mark.parametrize("dim, window, step, expected", [
    (38, 38, 12, [0]),
    (50, 38, 12, [0, 12]),
    (51, 38, 12, [0, 12, 13]),
    (62, 38, 12, [0, 12, 24]),
])
def test_window_starts_cover_axis_and_end_at_edge(dim, window, step, expected):
    starts = geometry.window_starts(dim, window, step)
    assert starts == expected
    assert starts[-1] + window == dim


def test_conv_output_size():
    assert geometry.conv_output_size(38, 13, "same") == 38
    assert geometry.conv_output_size(38, 13, "valid") == 12
    with pytest.raises(ValueError, match="padding"):
        geometry.conv_output_size(38, 1, "full")


def test_centre_crop_slices():
    assert geometry.centre_crop_slices((38, 40, 42), 13) == (slice(13, 25), slice(13, 27), slice(13, 29))
