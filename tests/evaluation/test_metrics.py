"""Tests for densenet3d_keras.evaluation.metrics: hand-computed Dice, HD95, sensitivity and specificity."""
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from densenet3d_keras.evaluation import metrics
from tests import ROOT


def box(shape, lower, upper):
    """Boolean volume with ones in the half-open box ``[lower, upper)``."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lower, upper))] = True
    return mask


def brute_force_hd95(a, b, spacing):
    """Independent HD95: 6-neighbour surfaces by hand, all pairwise distances, pooled."""
    def surface_points(mask):
        padded = np.pad(mask, 1, mode="constant")
        inner = padded[1:-1, 1:-1, 1:-1].copy()
        for axis in range(3):
            for shift in (-1, 1):
                inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
        return np.argwhere(mask & ~inner) * np.asarray(spacing, float)

    pa, pb = surface_points(a), surface_points(b)
    d = cdist(pa, pb)
    return float(np.percentile(np.concatenate([d.min(axis=1), d.min(axis=0)]), 95))


# ----------------------------------------------------------------------------------- Dice

@pytest.mark.parametrize("pred, gt, expected", [
    # Two 4^3 cubes overlapping in a 2x4x4 slab: 2 * 32 / (64 + 64).
    (box((10, 10, 10), (0, 0, 0), (4, 4, 4)), box((10, 10, 10), (2, 0, 0), (6, 4, 4)), 0.5),
    # Cube shifted by one voxel: overlap 3x4x4 = 48 -> 96 / 128.
    (box((10, 10, 10), (0, 0, 0), (4, 4, 4)), box((10, 10, 10), (1, 0, 0), (5, 4, 4)), 0.75),
    # 2^3 inside 4^3: 2 * 8 / (8 + 64).
    (box((10, 10, 10), (1, 1, 1), (3, 3, 3)), box((10, 10, 10), (0, 0, 0), (4, 4, 4)), 16.0 / 72),
    # Disjoint, identical, both empty, one empty.
    (box((6, 6, 6), (0, 0, 0), (2, 2, 2)), box((6, 6, 6), (3, 3, 3), (5, 5, 5)), 0.0),
    (box((6, 6, 6), (1, 1, 1), (4, 4, 4)), box((6, 6, 6), (1, 1, 1), (4, 4, 4)), 1.0),
    (np.zeros((6, 6, 6)), np.zeros((6, 6, 6)), 1.0),
    (np.zeros((6, 6, 6)), box((6, 6, 6), (1, 1, 1), (2, 2, 2)), 0.0),
    (box((6, 6, 6), (1, 1, 1), (2, 2, 2)), np.zeros((6, 6, 6)), 0.0),
])
def test_dice_hand_computed(pred, gt, expected):
    assert metrics.dice(pred, gt) == pytest.approx(expected)


# ----------------------------------------------------------------------------------- HD95

@pytest.mark.parametrize("k", [1, 2, 5])
def test_hd95_single_voxels_anisotropic(k):
    # Two voxels k apart along the 3 mm axis: each is its own surface, distance 3k mm.
    a = box((5, 5, 12), (2, 2, 1), (3, 3, 2))
    b = box((5, 5, 12), (2, 2, 1 + k), (3, 3, 2 + k))
    assert metrics.hd95(a, b, (1, 1, 3)) == pytest.approx(3.0 * k)


@pytest.mark.parametrize("spacing, axis, expected", [
    ((1, 1, 3), 2, 3 * 4.0),
    ((1, 1, 3), 0, 4.0),
    ((0.5, 2, 1), 1, 2 * 4.0),
])
def test_hd95_slabs_offset(spacing, axis, expected):
    # One-voxel-thick planes spanning the volume, 4 voxels apart: every distance is 4 * spacing.
    shape = (8, 9, 10)
    lower, upper = [0, 0, 0], list(shape)
    lower[axis], upper[axis] = 2, 3
    a = box(shape, lower, upper)
    lower[axis], upper[axis] = 6, 7
    b = box(shape, lower, upper)
    assert metrics.hd95(a, b, spacing) == pytest.approx(expected)
    assert metrics.hd95(b, a, spacing) == pytest.approx(expected)


def test_hd95_cube_shifted_by_hand():
    # 4^3 cube vs the same cube one voxel further along axis 0. Each surface has 56 voxels.
    # A -> B: the 16 voxels of A's x=0 face are 1 voxel from B's x=1 face; the 4 inner voxels
    # of A's x=3 face are 1 voxel from B's x=4 face and 1 voxel (along y/z) from B's x=3 ring;
    # the other 36 lie on B's surface (distance 0). B -> A mirrors this.
    a = box((10, 10, 10), (2, 2, 2), (6, 6, 6))
    b = box((10, 10, 10), (3, 2, 2), (7, 6, 6))
    distances = np.sort(np.concatenate([metrics.surface_distances(a, b, (1, 1, 1)),
                                        metrics.surface_distances(b, a, (1, 1, 1))]))
    assert distances.size == 112
    assert np.count_nonzero(distances == 1) == 40 and np.count_nonzero(distances == 0) == 72
    assert metrics.hd95(a, b, (1, 1, 1)) == pytest.approx(1.0)
    # With 3 mm along the shift the 32 face distances become 3 mm but the 8 inner-face voxels
    # stay 1 mm away (the neighbouring ring, across 1 mm): 72 x 0, 8 x 1, 32 x 3 -> 95th = 3.
    distances = np.sort(np.concatenate([metrics.surface_distances(a, b, (3, 1, 1)),
                                        metrics.surface_distances(b, a, (3, 1, 1))]))
    assert np.count_nonzero(distances == 3) == 32 and np.count_nonzero(distances == 1) == 8
    assert metrics.hd95(a, b, (3, 1, 1)) == pytest.approx(3.0)


def test_hd95_is_max_of_directed_not_pooled():
    # A = one voxel; B = that voxel plus one 10 voxels away. On the voxel corners (equal areas)
    # A -> B is 0 everywhere; B -> A is 0 for the 8 corners of the shared voxel, 9 and 10 for 4
    # corners each of the far one: cumulative 0.5, 0.75, 1 -> the 95th is 10 (official).
    # MedPy pools the surface voxels' distances [0] and [0, 10]: 0.9 * 10 = 9.
    a = box((12, 3, 3), (0, 1, 1), (1, 2, 2))
    b = a | box((12, 3, 3), (10, 1, 1), (11, 2, 2))
    assert metrics.hd95(a, b, (1, 1, 1)) == pytest.approx(10.0)
    assert metrics.hd95(b, a, (1, 1, 1)) == pytest.approx(10.0)
    assert metrics.pooled_hd95(a, b, (1, 1, 1)) == pytest.approx(9.0)
    assert metrics.pooled_hd95(b, a, (1, 1, 1)) == pytest.approx(9.0)


@pytest.mark.parametrize("spacing", [(1, 1, 1), (1, 1, 3), (0.7, 1.3, 2.5)])
def test_pooled_hd95_matches_brute_force(spacing):
    rng = np.random.RandomState(0)
    shape = (14, 12, 10)
    a = box(shape, (2, 3, 1), (9, 8, 6)) | box(shape, (10, 1, 7), (13, 4, 10))
    b = box(shape, (3, 2, 2), (11, 9, 5)) & (rng.rand(*shape) > 0.2)
    assert metrics.pooled_hd95(a, b, spacing) == pytest.approx(brute_force_hd95(a, b, spacing))
    # Masks touching the volume edge: edge voxels count as surface.
    c = box(shape, (0, 0, 0), (5, 12, 10))
    assert metrics.pooled_hd95(c, b, spacing) == pytest.approx(brute_force_hd95(c, b, spacing))


def test_hd95_identical_masks_is_zero():
    a = box((9, 9, 9), (2, 2, 2), (7, 6, 5))
    assert metrics.hd95(a, a, (1, 2, 3)) == 0.0


@pytest.mark.parametrize("shape, spacing", [((10, 20, 30), (1.0, 2.0, 3.0)),
                                            ((240, 240, 155), (1.0, 1.0, 1.0))])
@pytest.mark.parametrize("function", [metrics.hd95, metrics.pooled_hd95])
def test_hd95_empty_conventions(shape, spacing, function):
    # The official script's constant 374 mm whatever the grid (not the image diagonal).
    empty = np.zeros(shape, bool)
    one = box(shape, (1, 1, 1), (2, 2, 2))
    assert function(empty, empty, spacing) == 0.0
    assert function(empty, one, spacing) == 374.0
    assert function(one, empty, spacing) == 374.0


# -------------------------------------------------------------------------------------- NSD

CUBE = box((30, 30, 30), (10, 10, 10), (20, 20, 20))  # 10^3, 488 surface voxels (1000 - 8^3)


@pytest.mark.parametrize("shift, spacing, tolerance, expected", [
    # Shifted by one voxel along x at 1 mm: every surface voxel of either cube is within 1 mm
    # of the other surface.
    ((1, 0, 0), (1.0, 1.0, 1.0), 1.0, 1.0),
    # Shifted by two voxels (prediction x 12..21): 2 mm off are, of each cube, the whole far
    # face (100 voxels: the prediction's x = 21 face from the GT's x = 19 face, the GT's x = 10
    # face from the prediction's x = 12 face) and the 6 x 6 middle of the near face (36 voxels
    # at least 2 voxels from every side face; the 8 x 8 ring around it is within 1 mm of the
    # other cube's side faces). Within 1 mm: 488 - 136 = 352 of 488 per cube: 352 / 488.
    ((2, 0, 0), (1.0, 1.0, 1.0), 1.0, 352.0 / 488.0),
    # The same off voxels at a tolerance of 2 mm are within it.
    ((2, 0, 0), (1.0, 1.0, 1.0), 2.0, 1.0),
    # One voxel along z with 2 mm slices is a 2 mm shift: the same 136 voxels per cube are off.
    ((0, 0, 1), (1.0, 1.0, 2.0), 1.0, 352.0 / 488.0),
])
def test_nsd_of_shifted_cubes_by_hand(shift, spacing, tolerance, expected):
    pred = np.roll(CUBE, shift, axis=(0, 1, 2))
    assert metrics.nsd(pred, CUBE, spacing, tolerance) == pytest.approx(expected)
    assert metrics.nsd(CUBE, pred, spacing, tolerance) == pytest.approx(expected)  # symmetric


def test_nsd_empty_conventions_and_bad_tolerance():
    empty = np.zeros((30, 30, 30), bool)
    assert metrics.nsd(empty, empty, (1, 1, 1)) == 1.0
    assert metrics.nsd(CUBE, empty, (1, 1, 1)) == 0.0
    assert metrics.nsd(empty, CUBE, (1, 1, 1)) == 0.0
    assert metrics.nsd(CUBE, CUBE, (1, 1, 1)) == 1.0
    with pytest.raises(ValueError, match="tolerance"):
        metrics.nsd(CUBE, CUBE, (1, 1, 1), tolerance=-1)


def test_nsd_case_per_region():
    gt = np.where(CUBE, 2, 0).astype(np.uint8)
    gt[12:18, 12:18, 12:18] = 4
    pred = np.where(CUBE, 2, 0).astype(np.uint8)  # no core, no enhancing tumour
    row = metrics.nsd_case(pred, gt, (1, 1, 1))
    assert list(row) == list(metrics.NSD_NAMES) == ["nsd_wt", "nsd_tc", "nsd_et"]
    assert (row["nsd_wt"], row["nsd_tc"], row["nsd_et"]) == (1.0, 0.0, 0.0)
    # evaluate_case gives the same NSD from the distances of its HD95.
    shifted = np.roll(gt, 2, axis=0)
    expected = metrics.nsd_case(shifted, gt, (1, 1, 1))
    assert 0 < expected["nsd_wt"] < 1
    full = metrics.evaluate_case(shifted, gt, (1, 1, 1), with_nsd=True)
    assert list(full) == list(metrics.METRIC_NAMES) + list(metrics.NSD_NAMES)
    assert [full[name] for name in metrics.NSD_NAMES] == list(expected.values())


# ------------------------------------------------------------------ sensitivity / specificity

def test_sensitivity_specificity_by_hand():
    # 4^3 = 64 voxels; GT 8 voxels, prediction 6 voxels of which 4 are in the GT.
    gt = np.zeros((4, 4, 4), bool)
    pred = np.zeros((4, 4, 4), bool)
    gt[0, 0, :] = gt[0, 1, :] = True            # 8 voxels
    pred[0, 0, :] = True                        # 4 true positives
    pred[3, 3, :2] = True                       # 2 false positives
    # TP 4, FN 4, FP 2, TN 64 - 10 = 54.
    assert metrics.sensitivity(pred, gt) == pytest.approx(0.5)
    assert metrics.specificity(pred, gt) == pytest.approx(54.0 / 56.0)


def test_sensitivity_specificity_conventions():
    empty = np.zeros((3, 3, 3), bool)
    full = np.ones((3, 3, 3), bool)
    some = box((3, 3, 3), (0, 0, 0), (1, 1, 1))
    assert metrics.sensitivity(empty, empty) == 1.0
    assert metrics.sensitivity(some, empty) == 0.0   # official: TP / (TP + FN + tiny)
    assert metrics.sensitivity(empty, some) == 0.0
    assert metrics.specificity(empty, empty) == 1.0
    assert metrics.specificity(some, full) == 0.0    # official: TN / (TN + FP + tiny)
    assert metrics.specificity(full, some) == 0.0


# ------------------------------------- lesion label maps (official BraTS 2024 legacy metrics)

def test_label_map_metrics_of_masks_are_the_mask_metrics():
    rng = np.random.RandomState(3)
    for _ in range(5):
        gt, pred = rng.rand(9, 8, 7) > 0.8, rng.rand(9, 8, 7) > 0.8
        as_ids = pred.astype(np.int32), gt.astype(np.int32)
        assert metrics.label_map_hd95(*as_ids, spacing=(1.2, 0.8, 2.0)) == metrics.hd95(
            pred, gt, (1.2, 0.8, 2.0))
        assert metrics.label_map_sensitivity(*as_ids) == metrics.sensitivity(pred, gt)
        assert metrics.label_map_specificity(*as_ids) == metrics.specificity(pred, gt)


@pytest.mark.parametrize("spacing, expected", [((1, 1, 1), 1.0), ((1.2, 0.8, 2.0), 0.8)])
def test_label_map_metrics_of_a_lesion_numbered_two(spacing, expected):
    # One 5^3 lesion, numbered 2 in the ground truth and 1 in the prediction (9^3 = 729 voxels).
    # HD95: the inside of lesion 2 is surface (its codes are 254): at 1 mm its 64 corners, one
    # voxel or more from the prediction's surface, hold 9.2 % of the ground truth's surface
    # area, the 8 two voxels deep 1.1 % -> 95th percentile one voxel (the smallest spacing).
    # The official script's code gives 1.0 and 0.8 mm (run once in its environment).
    # Sensitivity: no voxel is 1 in both -> 0. Specificity: TN = 729 - 125 voxels
    # not 1 in either, FP = sum of predicted ids - TP = 125 -> 604 / 729.
    gt = np.zeros((9, 9, 9), np.int32)
    gt[2:7, 2:7, 2:7] = 2
    pred = (gt > 0).astype(np.int32)
    assert metrics.hd95(pred, gt, spacing) == 0.0
    assert metrics.label_map_hd95(pred, gt, spacing) == pytest.approx(expected)
    assert metrics.label_map_sensitivity(pred, gt) == 0.0
    assert metrics.label_map_specificity(pred, gt) == pytest.approx(604.0 / 729.0)


def test_label_map_sensitivity_specificity_sum_the_ids():
    # GT: lesion 1 of 27 voxels, lesion 2 of 125; prediction: 27 voxels numbered 2 on GT lesion
    # 1, 100 numbered 1 inside GT lesion 2 (12 x 10 x 8 = 960 voxels). TP (1 in both) = 0;
    # TN = 960 - 27 - 100 = 833; FP = 2 * 27 + 100 - 0 = 154 -> 833 / 987 (official: the same).
    gt = np.zeros((12, 10, 8), np.int32)
    gt[1:4, 1:4, 1:4] = 1
    gt[6:11, 4:9, 2:7] = 2
    pred = np.zeros_like(gt)
    pred[1:4, 1:4, 1:4] = 2
    pred[7:11, 4:9, 2:7] = 1
    assert metrics.label_map_sensitivity(pred, gt) == 0.0
    assert metrics.label_map_specificity(pred, gt) == pytest.approx(833.0 / 987.0)
    assert metrics.label_map_hd95(pred, gt, (1, 1, 1)) == pytest.approx(1.0)


def test_label_map_conventions():
    empty = np.zeros((4, 4, 4), np.int32)
    some = empty.copy()
    some[1:3, 1:3, 1:3] = 2
    assert metrics.label_map_hd95(empty, empty, (1, 1, 1)) == 0.0
    assert metrics.label_map_hd95(some, empty, (1, 1, 1), penalty=337.0) == 337.0
    assert metrics.label_map_hd95(empty, some, (1, 1, 1), penalty=337.0) == 337.0
    assert metrics.label_map_sensitivity(empty, empty) == 1.0
    assert metrics.label_map_sensitivity(some, empty) == 0.0
    assert metrics.label_map_specificity(empty, empty) == 1.0


def test_evaluate_case_with_label_maps():
    # label_maps replaces HD95, sensitivity and specificity of the regions, not Dice.
    gt = np.zeros((9, 9, 9), np.uint8)
    gt[2:7, 2:7, 2:7] = 2
    ids = np.where(gt > 0, 2, 0).astype(np.int32)
    maps = dict((region, ((gt > 0).astype(np.int32), ids)) for region in ("wt", "tc", "et"))
    plain = metrics.evaluate_case(gt, gt, (1, 1, 1))
    row = metrics.evaluate_case(gt, gt, (1, 1, 1), label_maps=maps)
    assert row["dice_wt"] == plain["dice_wt"] == 1.0
    assert (plain["hd95_wt"], plain["sensitivity_wt"]) == (0.0, 1.0)
    assert (row["hd95_wt"], row["sensitivity_wt"]) == (1.0, 0.0)
    assert row["specificity_wt"] == pytest.approx(604.0 / 729.0)


# ---------------------------------------------------------------------- shapes and regions

@pytest.mark.parametrize("function", [
    metrics.dice, metrics.sensitivity, metrics.specificity,
    lambda a, b: metrics.hd95(a, b, (1, 1, 1)),
    lambda a, b: metrics.evaluate_case(a, b, (1, 1, 1)),
])
def test_shape_mismatch_names_both_shapes(function):
    with pytest.raises(ValueError) as info:
        function(np.zeros((4, 5, 6), np.uint8), np.zeros((4, 5, 7), np.uint8))
    assert "(4, 5, 6)" in str(info.value) and "(4, 5, 7)" in str(info.value)


@pytest.mark.parametrize("spacing", [(1, 1), (1, 0, 1), (1, -2, 1), (1, float("nan"), 1)])
def test_bad_spacing(spacing):
    a = box((4, 4, 4), (1, 1, 1), (2, 2, 2))
    with pytest.raises(ValueError, match="spacing"):
        metrics.hd95(a, a, spacing)


def test_evaluate_case_keys_in_order():
    label = np.zeros((4, 4, 4), np.uint8)
    row = metrics.evaluate_case(label, label, (1, 1, 1))
    assert list(row) == [
        "dice_wt", "dice_tc", "dice_et", "hd95_wt", "hd95_tc", "hd95_et",
        "sensitivity_wt", "sensitivity_tc", "sensitivity_et",
        "specificity_wt", "specificity_tc", "specificity_et"]
    assert list(row) == list(metrics.METRIC_NAMES)
    assert [row[k] for k in ("dice_wt", "hd95_wt", "sensitivity_wt", "specificity_wt")] == [1, 0, 1, 1]


@pytest.mark.parametrize("gt_value, dice_wt, dice_tc, dice_et", [
    (4, 1.0, 1.0, 1.0),   # enhancing counts in WT, TC and ET
    (1, 1.0, 1.0, 0.0),   # necrotic core in WT and TC only (prediction has ET, GT has none)
    (2, 1.0, 0.0, 0.0),   # edema only in WT
])
def test_region_mapping(gt_value, dice_wt, dice_tc, dice_et):
    gt = np.zeros((6, 6, 6), np.uint8)
    gt[1:3, 1:3, 1:3] = gt_value
    pred = np.zeros_like(gt)
    pred[1:3, 1:3, 1:3] = 4
    row = metrics.evaluate_case(pred, gt, (1, 1, 1))
    assert (row["dice_wt"], row["dice_tc"], row["dice_et"]) == (dice_wt, dice_tc, dice_et)


def test_region_mapping_mixed_labels():
    # GT: edema shell (2) around a core of necrosis (1) and enhancing (4); prediction labels
    # everything edema: WT perfect, TC and ET missed entirely.
    gt = np.zeros((8, 8, 8), np.uint8)
    gt[1:7, 1:7, 1:7] = 2
    gt[3:5, 3:5, 3:4] = 1
    gt[3:5, 3:5, 4:5] = 4
    pred = np.where(gt > 0, 2, 0).astype(np.uint8)
    row = metrics.evaluate_case(pred, gt, (1, 1, 1))
    assert row["dice_wt"] == 1.0 and row["dice_tc"] == 0.0 and row["dice_et"] == 0.0
    assert row["sensitivity_tc"] == 0.0 and row["specificity_tc"] == 1.0
    assert row["hd95_tc"] == 374.0   # TC missed entirely: the official penalty


def test_evaluate_case_rejects_non_internal_labels():
    gt = np.zeros((4, 4, 4), np.uint8)
    pred = gt.copy()
    pred[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"\[3\]"):
        metrics.evaluate_case(pred, gt, (1, 1, 1))


# ------------------------------------------------------------------------------ summarise

def test_summarise_ignores_nan_and_text():
    rows = [{"case": "a", "dice_wt": 1.0, "hd95_wt": 2.0},
            {"case": "b", "dice_wt": 0.5, "hd95_wt": float("nan")},
            {"case": "c", "dice_wt": 0.0, "hd95_wt": 4.0}]
    summary = metrics.summarise(rows)
    assert list(summary) == ["dice_wt", "hd95_wt"]
    assert summary["dice_wt"]["mean"] == pytest.approx(0.5)
    assert summary["dice_wt"]["median"] == pytest.approx(0.5)
    assert summary["dice_wt"]["std"] == pytest.approx(math.sqrt(1.0 / 6.0))  # population std
    assert summary["dice_wt"]["count"] == 3
    assert summary["hd95_wt"]["mean"] == pytest.approx(3.0)
    assert summary["hd95_wt"]["std"] == pytest.approx(1.0)
    assert summary["hd95_wt"]["median"] == pytest.approx(3.0)
    assert summary["hd95_wt"]["count"] == 2


def test_summarise_all_nan_and_missing():
    summary = metrics.summarise([{"x": float("nan")}, {"x": float("nan")}])
    assert summary["x"]["count"] == 0 and math.isnan(summary["x"]["mean"])
    with pytest.raises(ValueError, match="dice_tc"):
        metrics.summarise([{"dice_wt": 1.0}], names=["dice_wt", "dice_tc"])


def test_metrics_module_does_not_import_tensorflow():
    code = ("import sys\n"
            "import densenet3d_keras.evaluation.metrics, densenet3d_keras.evaluation.report\n"
            "sys.exit(1 if any(n.split('.')[0] in ('tensorflow', 'keras', 'tf_keras') "
            "for n in sys.modules) else 0)\n")
    assert subprocess.call([sys.executable, "-c", code], cwd=ROOT) == 0
