"""BraTS 2023 lesion-wise Dice and HD95, with lesion counts (true / false positives, misses).

Pure numpy/scipy. The definition is that of the official BraTS 2023 evaluation code,
https://github.com/rachitsaluja/BraTS-2023-Metrics (``get_LesionWiseScores`` /
``get_LesionWiseResults`` in ``eval.py``, ``brats_2023_metrics/surface_distance/brats_metrics.py``),
by default with the glioma (``BraTS-GLI``) parameters; the other challenges' dilation and
volume threshold are in :mod:`densenet3d_keras.evaluation.challenges`. Per region (WT, TC, ET;
internal labels, enhancing tumour = 4):

1. Connected components of the prediction and of the ground truth, 26-connected
   (``scipy.ndimage.label`` with a 3x3x3 structure of ones). Predicted components are never
   filtered by size.
2. The ground truth is dilated :data:`DILATION_ITERATIONS` = 3 times with the 18-connected
   structure ``scipy.ndimage.generate_binary_structure(3, 2)``. Ground-truth components that
   fall into the same connected component of the dilated mask form one *lesion*: the lesion is
   the ground-truth voxels of that dilated component, and the dilated component is its
   *footprint* (the dilation of the lesion itself, as the official code computes it: dilation
   distributes over the union of the lesion's parts).
3. A predicted component *matches* a lesion when it overlaps the lesion's footprint; one
   component can match several lesions and then counts for each.
4. Per lesion: Dice and HD95 between the lesion and the union of its matched components (whole
   components, also their parts outside the footprint). A lesion with no match is a false
   negative: Dice 0, HD95 :data:`MISSED_HD95` = 374 mm.
5. Lesions of volume <= :data:`MIN_LESION_VOLUME` = 50 mm^3 (voxel count times the three voxel
   sizes, in that order as the official code multiplies them; 50 voxels on BraTS' 1 mm grid)
   are left out: not scored, not counted as true positive or
   false negative. Predicted components that match only such a lesion are not false
   positives either (the official code counts every component matched to any lesion as
   matched, before the small lesions are dropped).
6. Every predicted component that matches no lesion is a false positive: Dice 0, HD95 374.
7. Case score: the sum of the kept lesions' scores plus the false positives' (0 for Dice,
   374 each for HD95), divided by (number of kept lesions + number of false positives). No
   kept lesion and no false positive (e.g. both masks empty) -> Dice 1, HD95 0.

Counts per region: ``lesion_tp`` = kept lesions with at least one match, ``lesion_fn`` = kept
lesions with none, ``lesion_fp`` = unmatched predicted components (``Num_TP``, ``Num_FN``,
``Num_FP`` of the official code).

The per-lesion HD95 is :func:`~densenet3d_keras.evaluation.metrics.hd95`, the official one
(``compute_robust_hausdorff`` of DeepMind's ``surface-distance``: surface elements weighted by
area, the larger of the two directed 95th percentiles). Every value equals the official
script's on the cases of ``tests/evaluation/official``.

BraTS 2024 post-treatment labels are scored per region of
:data:`~densenet3d_keras.core.labels.REGIONS_2024` in the same way, with the 2024 GLI dilation and
thresholds. Not reproduced: the 2024 script also merges NETC, SNFH, ET and RC lesions that touch
lesions of the other three sub-regions (``combine_lesions_tissues``); here each sub-region's
lesions are grouped by its own dilation only, as for WT and TC.
"""
from collections import OrderedDict

import numpy as np
from scipy import ndimage

from densenet3d_keras.core.labels import REGIONS, region_mask
from densenet3d_keras.evaluation.challenges import lesion_settings, settings_regions
from densenet3d_keras.evaluation.metrics import labels_of_regions, check_label_pair, check_spacing, hd95

#: 26-connectivity of the connected-component analysis.
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
#: 18-connected structure and number of iterations of the ground-truth dilation (BraTS-GLI).
DILATION_STRUCTURE = ndimage.generate_binary_structure(3, 2)
DILATION_ITERATIONS = 3
#: Lesions of this volume (mm^3) or less are left out (BraTS-GLI).
MIN_LESION_VOLUME = 50.0
#: HD95 (mm) of a missed lesion or a false-positive component.
MISSED_HD95 = 374.0

#: Per-region lesion-wise results, in the column order of ``metrics.csv``.
LESION_FAMILIES = ("lesion_dice", "lesion_hd95", "lesion_tp", "lesion_fp", "lesion_fn")
LESION_NAMES = tuple("%s_%s" % (family, region) for family in LESION_FAMILIES
                     for region in REGIONS)


def lesion_names(regions=REGIONS):
    """The lesion-wise columns for ``regions`` (:data:`LESION_NAMES` for the default ones)."""
    return tuple("%s_%s" % (family, region) for family in LESION_FAMILIES for region in regions)
#: Families holding counts (written as integers).
COUNT_FAMILIES = ("lesion_tp", "lesion_fp", "lesion_fn")


def connected_components(mask):
    """26-connected components of a binary mask.

    Args:
        mask: 3-D array, nonzero = inside.

    Returns:
        (int32 label array of the same shape, 0 outside, 1..n inside; n).
    """
    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY)
    return labels.astype(np.int32, copy=False), int(count)


def bounding_box(mask, margin=0):
    """Slices of the bounding box of a mask's nonzero voxels, widened by ``margin`` (clipped).

    Returns:
        tuple of slices; empty slices when the mask is empty.
    """
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=other))
        if present.size == 0:
            return tuple(slice(0, 0) for _ in range(mask.ndim))
        box.append(slice(max(int(present[0]) - margin, 0),
                         min(int(present[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)


def _widen(box, shape, margin=1):
    return tuple(slice(max(b.start - margin, 0), min(b.stop + margin, n)) for b, n in zip(box, shape))


def _union_box(boxes):
    return tuple(slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes))
                 for axis in range(len(boxes[0])))


class GroundTruthLesions(object):
    """The lesions of one ground-truth region, grouped by dilation.

    Attributes:
        lesions: int32 label map, lesion id (1..count) at ground-truth voxels, 0 elsewhere.
        footprint: int32 label map of the dilated ground truth: lesion id on each footprint.
        count: number of lesions (small ones included).
        sizes: int64 ``(count,)`` voxels per lesion (index = id - 1).
        kept: bool ``(count,)``, lesions larger than :data:`MIN_LESION_VOLUME`.
        box: slices holding every footprint (empty when there is no lesion).
    """

    def __init__(self, lesions, footprint, count, sizes, kept, box):
        self.lesions = lesions
        self.footprint = footprint
        self.count = count
        self.sizes = sizes
        self.kept = kept
        self.box = box


def ground_truth_lesions(gt_mask, spacing, iterations=DILATION_ITERATIONS,
                         min_volume=MIN_LESION_VOLUME):
    """Group a ground-truth region into lesions (see the module docstring, step 2 and 5).

    Args:
        gt_mask: 3-D array, nonzero = inside.
        spacing: voxel size in mm per axis.
        iterations: dilation iterations.
        min_volume: lesions of at most this volume in mm^3 are not kept.

    Returns:
        :class:`GroundTruthLesions`.
    """
    gt = np.asarray(gt_mask, dtype=bool)
    spacing = check_spacing(spacing)
    lesions = np.zeros(gt.shape, np.int32)
    footprint = np.zeros(gt.shape, np.int32)
    # The dilation reaches ``iterations`` voxels: computing it in that box is exact and fast.
    box = bounding_box(gt, margin=iterations)
    if not gt.any():
        return GroundTruthLesions(lesions, footprint, 0, np.zeros(0, np.int64),
                                  np.zeros(0, bool), box)
    dilated = ndimage.binary_dilation(gt[box], structure=DILATION_STRUCTURE, iterations=iterations)
    footprint[box], count = connected_components(dilated)
    lesions[box] = np.where(gt[box], footprint[box], 0)
    sizes = np.bincount(lesions[box].ravel(), minlength=count + 1)[1:].astype(np.int64)
    kept = lesion_volumes(sizes, spacing) > min_volume
    return GroundTruthLesions(lesions, footprint, count, sizes, kept, box)


def lesion_volumes(sizes, spacing):
    """Volumes in mm^3 of lesions of ``sizes`` voxels: ``((size * s0) * s1) * s2``, the official
    code's order of products (which decides lesions of exactly the threshold volume)."""
    volumes = np.asarray(sizes, dtype=np.float64)
    for size in spacing:
        volumes = volumes * float(size)
    return volumes


class ComponentTable(object):
    """How the predicted components of one region meet the ground-truth lesions.

    Enough to score the region with any subset of its predicted components removed
    (:func:`score_dice`), which postprocessing choices use.

    Attributes:
        sizes: int64 ``(n_pred,)`` voxels per predicted component (index = id - 1).
        touch: bool ``(n_pred, n_lesions)``, component overlaps the lesion's footprint.
        overlap: int64 ``(n_pred, n_lesions)``, voxels of the component inside the lesion.
        lesion_sizes, lesion_kept: as :class:`GroundTruthLesions` ``sizes`` and ``kept``.
    """

    def __init__(self, sizes, touch, overlap, lesion_sizes, lesion_kept):
        self.sizes = sizes
        self.touch = touch
        self.overlap = overlap
        self.lesion_sizes = lesion_sizes
        self.lesion_kept = lesion_kept

    @property
    def gt_overlap(self):
        """Voxels of each predicted component inside the ground truth, ``(n_pred,)``."""
        return self.overlap.sum(axis=1)


def _pair_counts(first, first_count, second, second_count):
    """Voxel counts of every (first label, second label) pair, ``(n1 + 1, n2 + 1)``."""
    key = first.astype(np.int64) * (second_count + 1) + second
    counts = np.bincount(key.ravel(), minlength=(first_count + 1) * (second_count + 1))
    return counts.reshape(first_count + 1, second_count + 1)


def component_table(pred_components, pred_count, lesions):
    """Sizes, matches and overlaps of predicted components with ground-truth lesions.

    Args:
        pred_components: int label map of :func:`connected_components` of the prediction.
        pred_count: its number of components.
        lesions: :class:`GroundTruthLesions` of the same region.

    Returns:
        :class:`ComponentTable`.
    """
    sizes = np.bincount(pred_components.ravel(), minlength=pred_count + 1)[1:].astype(np.int64)
    inside = pred_components[lesions.box]
    touch = _pair_counts(inside, pred_count, lesions.footprint[lesions.box], lesions.count)
    overlap = _pair_counts(inside, pred_count, lesions.lesions[lesions.box], lesions.count)
    return ComponentTable(sizes, touch[1:, 1:] > 0, overlap[1:, 1:].astype(np.int64),
                          lesions.sizes, lesions.kept)


def lesion_dice(table, keep=None):
    """Per-lesion Dice, matched lesions and false positives, for the kept components.

    Args:
        table: :class:`ComponentTable`.
        keep: bool ``(n_pred,)``, the predicted components present (default all).

    Returns:
        (float ``(n_lesions,)`` Dice of every lesion, bool ``(n_lesions,)`` matched,
        number of false-positive components).
    """
    if keep is None:
        keep = np.ones(table.sizes.shape, dtype=bool)
    touch = table.touch[keep]
    matched_size = (touch * table.sizes[keep][:, None]).sum(axis=0)
    dice = 2.0 * table.overlap[keep].sum(axis=0) / (table.lesion_sizes + matched_size)
    false_positives = int(np.count_nonzero(~touch.any(axis=1)))
    return dice, touch.any(axis=0), false_positives


def score_dice(table, keep=None):
    """The case's lesion-wise Dice of a region (module docstring, step 7).

    Args:
        table: :class:`ComponentTable`.
        keep: bool ``(n_pred,)``, the predicted components present (default all).

    Returns:
        float in [0, 1].
    """
    dice, _, false_positives = lesion_dice(table, keep)
    kept = dice[table.lesion_kept]
    denominator = kept.size + false_positives
    return float(kept.sum() / denominator) if denominator else 1.0


def _lesion_hd95(pred_components, lesions, lesion_id, matched_ids, boxes, spacing):
    """HD95 between one lesion and the union of its matched components.

    ``boxes`` are ``(footprint boxes, predicted component boxes)`` of ``find_objects``; the
    distances are computed in the box holding all of them, one voxel wider.
    """
    footprint_boxes, pred_boxes = boxes
    box = _widen(_union_box([footprint_boxes[lesion_id - 1]] + [pred_boxes[i - 1]
                                                                for i in matched_ids]),
                 pred_components.shape)
    pred = np.isin(pred_components[box], matched_ids)
    return hd95(pred, lesions.lesions[box] == lesion_id, spacing)


def lesionwise_region(pred_mask, gt_mask, spacing, iterations=DILATION_ITERATIONS,
                      min_volume=MIN_LESION_VOLUME):
    """Lesion-wise Dice, HD95 and counts of one region.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.
        spacing: voxel size in mm per axis.
        iterations: ground-truth dilation iterations.
        min_volume: lesions of at most this volume in mm^3 are not scored.

    Returns:
        OrderedDict with ``dice``, ``hd95`` (mm), ``tp``, ``fp``, ``fn`` (ints).
    """
    spacing = check_spacing(spacing)
    lesions = ground_truth_lesions(gt_mask, spacing, iterations, min_volume)
    pred_components, pred_count = connected_components(pred_mask)
    table = component_table(pred_components, pred_count, lesions)
    dice, matched, false_positives = lesion_dice(table)
    boxes = (ndimage.find_objects(lesions.footprint), ndimage.find_objects(pred_components))
    distances = []
    for index in np.flatnonzero(lesions.kept):
        matched_ids = (np.flatnonzero(table.touch[:, index]) + 1).tolist()
        distances.append(_lesion_hd95(pred_components, lesions, index + 1, matched_ids, boxes,
                                      spacing) if matched_ids else MISSED_HD95)
    kept = int(np.count_nonzero(lesions.kept))
    denominator = kept + false_positives
    result = OrderedDict()
    result["dice"] = float(dice[lesions.kept].sum() / denominator) if denominator else 1.0
    result["hd95"] = (float((sum(distances) + MISSED_HD95 * false_positives) / denominator)
                      if denominator else 0.0)
    result["tp"] = int(np.count_nonzero(matched & lesions.kept))
    result["fp"] = false_positives
    result["fn"] = kept - result["tp"]
    return result


def evaluate_lesionwise(pred_label, gt_label, spacing, settings=None):
    """Lesion-wise results of every region of one case.

    Args:
        pred_label: 3-D internal label map (values 0, 1, 2, 4; 3 = resection cavity with
            BraTS 2024 settings) of the prediction.
        gt_label: 3-D internal label map of the ground truth, same shape.
        spacing: voxel size in mm per axis (the ground truth's header zooms).
        settings: :class:`~densenet3d_keras.evaluation.challenges.LesionSettings`; default
            BraTS 2023 GLI. Its regions are the ones scored.

    Returns:
        OrderedDict with the keys of :func:`lesion_names` (:data:`LESION_NAMES` for WT, TC,
        ET): ``lesion_dice_wt`` ... ``lesion_fn_et``; counts are ints.

    Raises:
        ValueError: the shapes differ, a label value is not internal or the spacing is invalid.
    """
    settings = settings or lesion_settings()
    regions = settings_regions(settings)
    pred_label, gt_label = check_label_pair(pred_label, gt_label, labels_of_regions(regions))
    spacing = check_spacing(spacing)
    per_region = OrderedDict(
        (region, lesionwise_region(region_mask(pred_label, region), region_mask(gt_label, region),
                                   spacing, settings.dilation, settings.min_volume[region]))
        for region in regions)
    row = OrderedDict()
    for family in LESION_FAMILIES:
        key = family[len("lesion_"):]
        for region in regions:
            row["%s_%s" % (family, region)] = per_region[region][key]
    return row
