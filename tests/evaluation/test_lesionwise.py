"""Tests for densenet3d_keras.evaluation.lesionwise: BraTS 2023 lesion-wise Dice, HD95 and counts.

Volumes are 40^3 at 1 mm unless a case says otherwise; lesions are boxes whose sizes make the
expected values easy to work out by hand (in the comments).
"""
import numpy as np
import pytest
from scipy import ndimage

from densenet3d_keras.evaluation import lesionwise
from densenet3d_keras.evaluation.metrics import hd95

SHAPE = (40, 40, 40)
ONE_MM = (1.0, 1.0, 1.0)


def box(lower, upper, shape=SHAPE):
    """Boolean volume with ones in the half-open box ``[lower, upper)``."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lower, upper))] = True
    return mask


def union(*masks):
    return np.logical_or.reduce(masks)


A = box((2, 2, 2), (7, 7, 7))            # 5^3 = 125 voxels
B = box((20, 2, 2), (25, 7, 7))          # 125 voxels, far from A
FAR = box((30, 30, 30), (34, 34, 34))    # 4^3 = 64 voxels, far from A and B
EMPTY = np.zeros(SHAPE, bool)


def score(pred, gt, spacing=ONE_MM):
    return lesionwise.lesionwise_region(pred, gt, spacing)


def test_matched_missed_and_false_positive():
    # GT lesions A and B; the prediction is A exactly plus a component far from both.
    # A: Dice 1, HD95 0. B: missed, Dice 0, HD95 374. FAR: false positive, Dice 0, HD95 374.
    # Dice (1 + 0 + 0) / (2 lesions + 1 FP) = 1/3; HD95 (0 + 374 + 374) / 3 = 249.33.
    result = score(union(A, FAR), union(A, B))
    assert result["dice"] == pytest.approx(1.0 / 3.0)
    assert result["hd95"] == pytest.approx(748.0 / 3.0)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 1)


def test_both_empty_and_only_false_positives():
    # Nothing to find and nothing found: Dice 1, HD95 0.
    assert score(EMPTY, EMPTY) == {"dice": 1.0, "hd95": 0.0, "tp": 0, "fp": 0, "fn": 0}
    # No ground truth, two predicted components: two FPs, (0 + 0) / 2 and (374 + 374) / 2.
    assert score(union(A, FAR), EMPTY) == {"dice": 0.0, "hd95": 374.0, "tp": 0, "fp": 2, "fn": 0}
    # Ground truth and an empty prediction: one FN, 0 / 1 and 374 / 1.
    assert score(EMPTY, A) == {"dice": 0.0, "hd95": 374.0, "tp": 0, "fp": 0, "fn": 1}


SMALL_50 = box((20, 20, 20), (25, 25, 22))                 # 5 x 5 x 2 = 50 voxels
SMALL_51 = union(SMALL_50, box((20, 20, 22), (21, 21, 23)))  # 50 + 1 = 51 voxels


@pytest.mark.parametrize("small, spacing, expected_dice, expected_fn", [
    # 50 voxels = 50 mm^3 <= 50: left out, so only A counts: Dice 1 / 1, no FN.
    (SMALL_50, ONE_MM, 1.0, 0),
    # 51 mm^3 > 50: kept and missed: (1 + 0) / 2, one FN.
    (SMALL_51, ONE_MM, 0.5, 1),
    # The threshold is a volume: 25 voxels of 2 mm^3 = 50 mm^3 are left out ...
    (box((20, 20, 20), (25, 25, 21)), (1.0, 1.0, 2.0), 1.0, 0),
    # ... 26 voxels of 2 mm^3 = 52 mm^3 are kept (and missed).
    (union(box((20, 20, 20), (25, 25, 21)), box((20, 20, 21), (21, 21, 22))), (1.0, 1.0, 2.0),
     0.5, 1),
])
def test_small_lesions_are_left_out(small, spacing, expected_dice, expected_fn):
    result = score(A, union(A, small), spacing)
    assert result["dice"] == pytest.approx(expected_dice)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, expected_fn)


def test_prediction_of_a_left_out_lesion_is_no_false_positive():
    # Predicting the 50-voxel lesion too: the component matches that lesion, so it is no FP,
    # and the lesion is no TP either (it is left out). Dice 1 / (1 lesion + 0 FP).
    result = score(union(A, SMALL_50), union(A, SMALL_50))
    assert result["dice"] == 1.0 and result["hd95"] == 0.0
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, 0)


@pytest.mark.parametrize("gap, expected_dice, expected_fn", [
    # A ends at x = 9; the other cube starts at 10 + gap. Dilating 3 times reaches x = 12 from
    # A and 10 + gap - 3 from the other; the dilations are one component while
    # 10 + gap - 3 <= 13, i.e. gap <= 6.
    # gap 6: one lesion of 250 voxels, the prediction (A, 125) inside it:
    # Dice 2 * 125 / (125 + 250) = 2/3, one TP, no FN.
    (6, 2.0 / 3.0, 0),
    # gap 7: two lesions, A found (Dice 1), the other missed (0): (1 + 0) / 2, one FN.
    (7, 0.5, 1),
])
def test_ground_truth_components_within_the_dilation_are_one_lesion(gap, expected_dice,
                                                                    expected_fn):
    first = box((5, 5, 5), (10, 10, 10))
    second = box((10 + gap, 5, 5), (15 + gap, 10, 10))
    result = score(first, union(first, second))
    assert result["dice"] == pytest.approx(expected_dice)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, expected_fn)
    lesions = lesionwise.ground_truth_lesions(union(first, second), ONE_MM)
    assert lesions.count == 2 - (gap <= 6)


@pytest.mark.parametrize("start, matched", [
    # GT cube x 5..9: its footprint reaches x = 12. A prediction starting at x = 11 does not
    # overlap the lesion but touches the footprint: matched (TP, no FP) with Dice 0 ...
    (11, True),
    # ... one starting at x = 13 misses the footprint: a FP, and the lesion is a FN.
    (13, False),
])
def test_a_prediction_matches_when_it_touches_the_footprint(start, matched):
    gt = box((5, 5, 5), (10, 10, 10))
    pred = box((start, 5, 5), (start + 3, 10, 10))
    result = score(pred, gt)
    assert result["dice"] == 0.0
    if matched:
        assert (result["tp"], result["fp"], result["fn"]) == (1, 0, 0)
        assert result["hd95"] == pytest.approx(hd95(pred, gt, ONE_MM))
    else:
        assert (result["tp"], result["fp"], result["fn"]) == (0, 1, 1)
        assert result["hd95"] == 374.0  # (374 + 374) / 2


def test_one_component_over_two_lesions_counts_for_both():
    # A bar x 2..24 (23 x 5 x 5 = 575 voxels) covers A and B: matched to both.
    # Each lesion: Dice 2 * 125 / (125 + 575) = 5/14; the case: (5/14 + 5/14) / 2.
    bar = box((2, 2, 2), (25, 7, 7))
    result = score(bar, union(A, B))
    assert result["dice"] == pytest.approx(5.0 / 14.0)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 0, 0)


def test_several_components_on_one_lesion_are_scored_together():
    # Two halves of A predicted as separate components (a one-voxel gap at x = 4):
    # 50 + 50 voxels, all inside A: Dice 2 * 100 / (100 + 125) = 8/9, no FP.
    halves = union(box((2, 2, 2), (4, 7, 7)), box((5, 2, 2), (7, 7, 7)))
    result = score(halves, A)
    assert result["dice"] == pytest.approx(8.0 / 9.0)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, 0)
    assert result["hd95"] == pytest.approx(hd95(halves, A, ONE_MM))


def test_26_connected_components():
    # Two cubes touching only at a corner are one predicted component (26-connectivity):
    # both inside the footprint of A, so no FP even though the second does not overlap A.
    corner = box((7, 7, 7), (9, 9, 9))
    result = score(union(A, corner), A)
    assert result["fp"] == 0 and result["dice"] == pytest.approx(2 * 125.0 / (125 + 133))
    labels, count = lesionwise.connected_components(union(A, corner))
    assert count == 1 and labels.dtype == np.int32


def test_evaluate_lesionwise_columns_per_region():
    # GT: edema around a core of necrosis with an enhancing cube; the prediction has the
    # whole tumour and the core right but no enhancing tumour.
    gt = np.zeros(SHAPE, np.uint8)
    gt[box((5, 5, 5), (25, 25, 25))] = 2
    gt[box((10, 10, 10), (20, 20, 20))] = 1
    gt[box((12, 12, 12), (18, 18, 18))] = 4
    pred = gt.copy()
    pred[pred == 4] = 1
    row = lesionwise.evaluate_lesionwise(pred, gt, ONE_MM)
    assert list(row) == list(lesionwise.LESION_NAMES)
    assert list(row)[:3] == ["lesion_dice_wt", "lesion_dice_tc", "lesion_dice_et"]
    assert (row["lesion_dice_wt"], row["lesion_dice_tc"], row["lesion_dice_et"]) == (1.0, 1.0, 0.0)
    assert (row["lesion_hd95_wt"], row["lesion_hd95_et"]) == (0.0, 374.0)
    assert (row["lesion_tp_et"], row["lesion_fn_et"], row["lesion_fp_et"]) == (0, 1, 0)
    assert isinstance(row["lesion_tp_wt"], int)
    with pytest.raises(ValueError, match="outside the internal labels"):
        lesionwise.evaluate_lesionwise(np.full(SHAPE, 3, np.uint8), gt, ONE_MM)


# --------------------------------------------------------- against a plain transcription

def reference_lesionwise(pred, gt, spacing):
    """The official algorithm written the slow, plain way: one full-volume pass per lesion."""
    structure = ndimage.generate_binary_structure(3, 2)
    ones = np.ones((3, 3, 3), bool)
    pred_cc, _ = ndimage.label(pred, ones)
    gt_cc, _ = ndimage.label(gt, ones)
    dilated_cc, n_dilated = ndimage.label(ndimage.binary_dilation(gt, structure, 3), ones)
    grouped = np.zeros_like(gt_cc)
    for k in range(1, n_dilated + 1):
        grouped[(dilated_cc == k) & (gt_cc > 0)] = k
    matched_all, dice_sum, hd_sum, kept, tp = set(), 0.0, 0.0, 0, 0
    for k in range(1, n_dilated + 1):
        lesion = grouped == k
        around = ndimage.binary_dilation(lesion, structure, 3)
        ids = set(np.unique(pred_cc[around]).tolist()) - {0}
        matched_all |= ids
        if lesion.sum() * np.prod(spacing) <= 50:
            continue
        kept += 1
        tp += bool(ids)
        matched = np.isin(pred_cc, sorted(ids))
        dice_sum += 2.0 * (matched & lesion).sum() / (matched.sum() + lesion.sum())
        hd_sum += hd95(matched, lesion, spacing) if ids else 374.0
    fp = len(set(np.unique(pred_cc).tolist()) - {0} - matched_all)
    if kept + fp == 0:
        return 1.0, 0.0, 0, 0, 0
    return dice_sum / (kept + fp), (hd_sum + 374.0 * fp) / (kept + fp), tp, fp, kept - tp


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_the_plain_algorithm_on_random_blobs(seed):
    # Smooth-noise blobs: 4-14 lesions (some grouped, some <= 50 mm^3), a shifted copy as the
    # prediction plus small spurious blobs (FPs), with a slab cut away for seeds > 0 (FNs).
    rng = np.random.RandomState(seed)
    shape = (48, 44, 40)
    spacing = (1.0, 1.0, 1.0) if seed % 2 else (1.0, 1.2, 2.0)
    field = ndimage.gaussian_filter(rng.rand(*shape), 2.5)
    gt = field > np.percentile(field, 96)
    noise = ndimage.gaussian_filter(rng.rand(*shape), 1.0)
    pred = np.roll(gt, seed % 3 - 1, axis=seed % 3) | (noise > np.percentile(noise, 99.9))
    pred[:, :, :6 * seed] = False
    result = score(pred, gt, spacing)
    expected = reference_lesionwise(pred, gt, spacing)
    assert expected[2] >= 1 and expected[3] >= 1  # true and false positives in every case
    assert result["dice"] == pytest.approx(expected[0], abs=1e-12)
    assert result["hd95"] == pytest.approx(expected[1], abs=1e-9)
    assert (result["tp"], result["fp"], result["fn"]) == expected[2:]


# --- BraTS 2024 post-treatment rules ---------------------------------------------------------

def test_2024_groups_are_numbered_in_c_order():
    # The official script's cc3d numbers scipy's (C-ordered) dilation in C order: the group
    # lowest on the first axis first, even when it is higher on the last one.
    mask = union(box((2, 2, 30), (5, 5, 33)), box((20, 2, 2), (23, 5, 5)))
    groups, footprint, count = lesionwise.dilation_groups(mask, 3)
    assert count == 2 and groups[3, 3, 31] == 1 and groups[21, 3, 3] == 2
    assert footprint[3, 3, 27] == 1 and not groups[3, 3, 27]         # dilated only


def test_2024_small_predicted_groups_are_deleted_by_voxel_count():
    groups, _, _ = lesionwise.dilation_groups(union(box((2, 2, 2), (12, 4, 3)),      # 20
                                                    box((20, 2, 2), (27, 5, 3))), 3)  # 21
    kept = lesionwise.drop_small_groups(groups, 20)
    assert not kept[2:12, 2:4, 2].any() and (kept[20:27, 2:5, 2] == 2).all()


def test_2024_lesions_touch_through_faces_and_edges_not_corners():
    first = box((5, 5, 5), (8, 8, 8)).astype(np.int32)
    for corner, touches in (((8, 5, 5), True), ((8, 8, 5), True), ((8, 8, 8), False)):
        second = box(corner, tuple(c + 2 for c in corner)).astype(np.int32) * 3
        assert lesionwise.touching_pairs(first, second) == ({(1, 3)} if touches else set())


def test_2024_merging_joins_the_first_numbered_lesion_touched():
    # Own groups 1 and 2 both touch other lesion 2; group 1 also touches other lesion 1, so it
    # joins lesion 1's group and stays apart from group 2 (the official, non-transitive rule).
    own = np.zeros(SHAPE, np.int32)
    own[box((10, 2, 2), (14, 6, 6))] = 1
    own[box((30, 2, 2), (34, 6, 6))] = 2
    other = np.zeros(SHAPE, np.int32)
    other[box((6, 2, 2), (10, 6, 6))] = 1
    other[box((14, 2, 2), (30, 6, 6))] = 2
    merged = lesionwise.merge_through(own, other)
    assert merged[11, 3, 3] != merged[31, 3, 3]
    swapped = np.where(other > 0, 3 - other, 0)       # now the bar is lesion 1
    merged = lesionwise.merge_through(own, swapped)
    assert merged[11, 3, 3] == merged[31, 3, 3] and merged[11, 3, 3] > 2


def test_2024_merged_lesion_is_scored_as_one():
    # Two NETC blocks joined by an ET bar are one NETC lesion: finding one block is a match.
    from densenet3d_keras.evaluation.challenges import lesion_settings

    gt = np.zeros(SHAPE, np.uint8)
    gt[box((4, 4, 4), (9, 9, 9))] = 1
    gt[box((25, 4, 4), (30, 9, 9))] = 1
    gt[box((9, 5, 5), (25, 8, 8))] = 4
    pred = np.where(box((25, 4, 4), (30, 9, 9)), 0, gt).astype(np.uint8)
    settings = lesion_settings("GLI", "brats2024")
    row = lesionwise.evaluate_lesionwise(pred, gt, ONE_MM, settings)
    assert (row["lesion_tp_netc"], row["lesion_fn_netc"]) == (1, 0)
    assert row["lesion_dice_netc"] == pytest.approx(2 * 125 / (250 + 125))
    unmerged = lesionwise.prepare_brats2024(pred, gt, ONE_MM, settings, merge=False)
    assert unmerged["netc"].lesions.count == 2


def test_2024_merging_numbers_as_the_official_script():
    # The official relabelling: new ids above the largest in the order the other lesions first
    # appear among the sorted (own, other) pairs, so own group 1 (touching other lesion 2)
    # gets the first one; and one touching pair alone renumbers nothing. The official legacy
    # metrics depend on these ids (lesion 1 is the one sensitivity counts).
    own = np.zeros(SHAPE, np.int32)
    own[box((10, 2, 2), (14, 6, 6))] = 1
    own[box((30, 2, 2), (34, 6, 6))] = 2
    other = np.zeros(SHAPE, np.int32)
    other[box((14, 2, 2), (18, 6, 6))] = 2      # touches own 1
    other[box((26, 2, 2), (30, 6, 6))] = 1      # touches own 2
    merged = lesionwise.merge_through(own, other)
    assert (merged[11, 3, 3], merged[31, 3, 3]) == (3, 4)
    alone = np.where(other == 2, 2, 0).astype(np.int32)
    assert lesionwise.merge_through(own, alone) is own


def test_2024_label_maps_keep_the_official_ids():
    # WT keeps its dilation groups' ids, with the gap of a deleted predicted speck; NETC is
    # renumbered 1..n. The ground truth's maps are its lesions.
    from densenet3d_keras.evaluation.challenges import lesion_settings

    gt = np.zeros(SHAPE, np.uint8)
    gt[box((20, 4, 4), (25, 9, 9))] = 1
    pred = gt.copy()
    pred[box((2, 2, 2), (4, 4, 4))] = 2            # 8 voxels, group 1 of WT, deleted
    prepared = lesionwise.prepare_brats2024(pred, gt, ONE_MM, lesion_settings("GLI", "brats2024"))
    pred_ids, gt_ids = prepared["wt"].label_maps
    assert set(np.unique(pred_ids).tolist()) == {0, 2} and prepared["wt"].pred_count == 1
    assert set(np.unique(prepared["wt"].pred_units).tolist()) == {0, 1}
    assert np.array_equal(gt_ids, prepared["wt"].lesions.lesions)
    assert set(np.unique(prepared["netc"].label_maps[0]).tolist()) == {0, 1}
