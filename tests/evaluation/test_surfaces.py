"""Tests for densenet3d_keras.evaluation.surfaces: surface areas by hand, distances by brute force."""
import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from densenet3d_keras.evaluation import surfaces


@pytest.mark.parametrize("spacing", [(1, 1, 1), (1.2, 0.8, 2.0), (0.9375, 0.9375, 3.0)])
def test_single_voxel_surface_is_an_octahedron(spacing):
    # Marching cubes around one voxel: the octahedron on its 6 face centres, of area
    # sqrt((s1 s2)^2 + (s0 s2)^2 + (s0 s1)^2) (sqrt(3) at 1 mm); 8 corners, one triangle each.
    s0, s1, s2 = spacing
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    codes = surfaces.neighbour_codes(mask)
    areas = surfaces.surfel_areas(spacing)[codes]
    assert np.count_nonzero(areas) == 8
    expected = math.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2)
    assert areas.sum() == pytest.approx(expected)


def test_neighbour_codes_bits():
    # Bit 7 - (4 di + 2 dj + dk) is the voxel at offset (di, dj, dk) from the lower neighbour.
    codes = surfaces.neighbour_codes(np.ones((1, 1, 1), bool))
    assert codes.shape == (2, 2, 2)
    assert codes[0, 0, 0] == 1 and codes[1, 1, 1] == 128
    # Corner (1, 0, 0) sees the voxel at offset (0, 1, 1): bit 7 - 3 = 4.
    assert (codes[1, 0, 0], codes[0, 1, 0], codes[0, 0, 1]) == (16, 4, 2)
    assert sorted(codes.ravel().tolist()) == [1, 2, 4, 8, 16, 32, 64, 128]


@pytest.mark.parametrize("spacing", [(1, 1, 1), (2, 0.5, 3)])
def test_face_codes_and_complements(spacing):
    s0, s1, s2 = spacing
    areas = surfaces.surfel_areas(spacing)
    # Four voxels on one side of a plane across axis 0, 1 or 2: one voxel face of area.
    assert areas[0b00001111] == pytest.approx(s1 * s2) and areas[0b11110000] == pytest.approx(s1 * s2)
    assert areas[0b00110011] == pytest.approx(s0 * s2)
    assert areas[0b01010101] == pytest.approx(s0 * s1)
    assert areas[0] == 0 and areas[255] == 0
    assert np.allclose(areas, areas[::-1])  # a code and its complement: the same surface


def _brute_force(gt, pred, spacing, percent):
    """Corner surfaces with explicit loops, all pairwise distances, weighted percentiles."""
    def surface(mask):
        padded = np.pad(mask, 1)
        points, codes = [], []
        for corner in np.ndindex(*(n + 1 for n in mask.shape)):
            code = 0
            for di, dj, dk in np.ndindex(2, 2, 2):
                if padded[corner[0] + di, corner[1] + dj, corner[2] + dk]:
                    code |= 1 << (7 - (4 * di + 2 * dj + dk))
            if code not in (0, 255):
                points.append(np.multiply(corner, spacing))
                codes.append(code)
        return np.array(points), surfaces.surfel_areas(spacing)[codes]

    (gt_points, gt_areas), (pred_points, pred_areas) = surface(gt), surface(pred)
    distances = cdist(gt_points, pred_points)

    def directed(values, weights):
        order = np.lexsort((weights, values))
        cumulative = np.cumsum(weights[order]) / weights.sum()
        return values[order][min(np.searchsorted(cumulative, percent / 100.0), values.size - 1)]

    return max(directed(distances.min(axis=1), gt_areas), directed(distances.min(axis=0), pred_areas))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 3.0), (0.7, 1.3, 2.5)])
@pytest.mark.parametrize("percent", [95, 50, 100])
def test_robust_hausdorff_matches_brute_force(spacing, percent):
    rng = np.random.RandomState(1)
    shape = (9, 8, 7)
    gt = np.zeros(shape, bool)
    gt[2:6, 2:6, 1:5] = True
    pred = (rng.rand(*shape) > 0.6) & ~np.pad(np.ones((7, 6, 5), bool), 1)  # edge voxels only
    pred[3:5, 3:6, 2:4] = True
    distances = surfaces.surface_distances(gt, pred, spacing)
    assert surfaces.robust_hausdorff(distances, percent) == pytest.approx(
        _brute_force(gt, pred, spacing, percent))


def test_empty_masks():
    empty = np.zeros((4, 4, 4), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    both = surfaces.surface_distances(empty, empty, (1, 1, 1))
    assert all(array.size == 0 for array in both)
    half = surfaces.surface_distances(one, empty, (1, 1, 1))
    assert np.isinf(half.gt_to_pred).all() and half.pred_to_gt.size == 0
    assert surfaces.robust_hausdorff(half, 95) == math.inf


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(4, 4, 4\).*\(4, 4, 5\)"):
        surfaces.surface_distances(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), (1, 1, 1))


# ------------------------------------------------- label maps (official BraTS 2024 legacy metrics)

def test_wrapped_codes_of_a_mask_are_the_neighbour_codes():
    rng = np.random.RandomState(0)
    mask = rng.rand(6, 7, 5) > 0.6
    assert np.array_equal(surfaces.wrapped_neighbour_codes(mask), surfaces.neighbour_codes(mask))


def test_wrapped_codes_sum_the_ids_in_eight_bits():
    # Inside a lesion numbered k the eight voxels give 255 k mod 256: 254 for 2, 253 for 3, so
    # the inside counts as surface; an id of 256 is stored as 0 and vanishes.
    for value, inside in ((1, 255), (2, 254), (3, 253), (257, 255)):
        codes = surfaces.wrapped_neighbour_codes(np.full((3, 3, 3), value, np.int64))
        assert codes[1, 1, 1] == inside
    assert not surfaces.wrapped_neighbour_codes(np.full((2, 2, 2), 256, np.int64)).any()
    # Corner (0, 0, 0) sees only voxel (0, 0, 0), bit 1: 2 * 1 = 2.
    assert surfaces.wrapped_neighbour_codes(np.full((2, 2, 2), 2, np.int64))[0, 0, 0] == 2


def test_label_map_distances_of_masks_are_the_mask_distances():
    rng = np.random.RandomState(1)
    gt, pred = rng.rand(8, 6, 7) > 0.7, rng.rand(8, 6, 7) > 0.7
    ours = surfaces.label_map_surface_distances(gt.astype(np.int32), pred.astype(np.int32),
                                                (1.2, 0.8, 2.0))
    plain = surfaces.surface_distances(gt, pred, (1.2, 0.8, 2.0))
    for first, second in zip(ours, plain):
        assert np.array_equal(first, second)
    with pytest.raises(ValueError, match="negative"):
        surfaces.label_map_surface_distances(-gt.astype(np.int32), pred, (1, 1, 1))
