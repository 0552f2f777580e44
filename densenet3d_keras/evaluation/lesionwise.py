"""BraTS 2023 and 2024 lesion-wise Dice and HD95, with lesion counts (true / false positives,
misses).

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
:data:`~densenet3d_keras.core.labels.REGIONS_2024` (WT, TC, NETC, SNFH, ET, RC) as the official
BraTS 2024 script does (https://github.com/rachitsaluja/BraTS-2024-Metrics, ``metrics_GLI.py``,
latest version stored, commit 9e8879a; settings in
:mod:`densenet3d_keras.evaluation.challenges`). Where it differs from the steps above:

a. Dilation per region: 5 iterations for NETC and RC, 3 for WT, TC, SNFH, ET. The same number
   groups the ground truth (step 2) and matches predictions (step 3).
b. The prediction is grouped by the same dilation, and predicted groups of at most 20 voxels
   (10 for ET; a voxel count, not a volume) are deleted before any metric, the full-volume
   Dice, HD95, sensitivity and specificity included. The remaining groups, not the 26-connected
   components, are the predicted lesions.
c. Merging (ground truth and prediction alike, each from its own groups): a NETC group that
   touches ET groups is merged with the other NETC groups touching the same one, then the
   result likewise through RC groups; ET merges through NETC then RC, RC through ET then NETC,
   SNFH through ET, RC then NETC. "Touching" means 18-neighbouring voxels (faces and edges, not
   corners). A group touching several groups of the other sub-region follows only the
   first-numbered of them, numbered as ``cc3d`` numbers the other sub-region's dilated mask
   (first voxel in C order); the merging is therefore not transitive and depends on that
   order, which :func:`dilation_groups` reproduces. The other sub-region's groups are always
   its own unmerged ones. A merged lesion's footprint is the union of its groups' footprints.
d. Ground-truth lesions of at most 10 mm^3 (ET) or 20 mm^3 (every other region) are left out.
e. A missed lesion, a false positive (and, for the full-volume HD95, one empty mask) costs
   337 mm instead of 374.

Every lesion-wise value and the full-volume Dice equal the official script's on the cases of
``tests/evaluation/official`` (``cases_2024.py``). The official script computes its
full-volume HD95, sensitivity and specificity on the lesion label maps (ids 1, 2, ...), not on
0/1 masks, which makes them meaningless where a map holds two lesions or more; this project
scores the 0/1 masks by default, and those three equal the official values wherever both maps
hold at most one lesion. :func:`prepare_brats2024` also keeps the lesion maps with the official
ids (:attr:`Brats2024Region.label_maps`: the merging renumbers as the official
``relabel_nifti_image`` does, NETC, SNFH, ET and RC are then numbered 1..n, WT and TC keep
their groups' ids), on which :func:`~densenet3d_keras.evaluation.metrics.evaluate_case`
computes the official values when asked (``evaluate_keras.py --brats2024-legacy-metrics
official``); those equal the official script's on every case there.
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
    lesions, footprint, count = dilation_groups(gt, iterations)
    return _lesions_with_sizes(lesions, footprint, count, check_spacing(spacing), min_volume,
                               bounding_box(gt, margin=iterations))


def _lesions_with_sizes(lesions, footprint, count, spacing, min_volume, box):
    """:class:`GroundTruthLesions` of lesions numbered 1..count inside ``box``, with their
    sizes and which are kept (volume above ``min_volume`` mm^3)."""
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


def _score_region(pred_units, pred_count, lesions, spacing, missed_hd95):
    """Lesion-wise Dice, HD95 and counts of one region from its predicted units (components,
    or the 2024 merged lesions) and ground-truth lesions (module docstring, steps 3-7)."""
    table = component_table(pred_units, pred_count, lesions)
    dice, matched, false_positives = lesion_dice(table)
    boxes = (ndimage.find_objects(lesions.footprint), ndimage.find_objects(pred_units))
    distances = []
    for index in np.flatnonzero(lesions.kept):
        matched_ids = (np.flatnonzero(table.touch[:, index]) + 1).tolist()
        distances.append(_lesion_hd95(pred_units, lesions, index + 1, matched_ids, boxes,
                                      spacing) if matched_ids else missed_hd95)
    kept = int(np.count_nonzero(lesions.kept))
    denominator = kept + false_positives
    result = OrderedDict()
    result["dice"] = float(dice[lesions.kept].sum() / denominator) if denominator else 1.0
    result["hd95"] = (float((sum(distances) + missed_hd95 * false_positives) / denominator)
                      if denominator else 0.0)
    result["tp"] = int(np.count_nonzero(matched & lesions.kept))
    result["fp"] = false_positives
    result["fn"] = kept - result["tp"]
    return result


def lesionwise_region(pred_mask, gt_mask, spacing, iterations=DILATION_ITERATIONS,
                      min_volume=MIN_LESION_VOLUME):
    """Lesion-wise Dice, HD95 and counts of one region (BraTS 2023 rules).

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
    return _score_region(pred_components, pred_count, lesions, spacing, MISSED_HD95)


# --- BraTS 2024 post-treatment glioma ------------------------------------------------------

#: Sub-region -> the sub-regions whose lesions its touching lesions are merged through, in
#: the order the official script applies them (module docstring, BraTS 2024).
MERGED_THROUGH = OrderedDict([("netc", ("et", "rc")), ("et", ("netc", "rc")),
                              ("rc", ("et", "netc")), ("snfh", ("et", "rc", "netc"))])
#: Offsets of the 18-neighbourhood (and the voxel itself) in which lesions touch.
_TOUCH_OFFSETS = tuple(tuple(int(v) - 1 for v in offset)
                       for offset in np.argwhere(ndimage.generate_binary_structure(3, 2)))


def dilation_groups(mask, iterations):
    """Group a mask by dilation, numbered as the official 2024 script's ``cc3d`` numbers them.

    Args:
        mask: 3-D boolean array.
        iterations: dilations with the 18-connected structure.

    Returns:
        (groups, footprint, count): int32 maps of the same shape: the group id (1..count) at
        the mask's voxels and at the voxels of each group's dilated component. Groups are
        numbered in the order of the first voxel of their dilated component in C order (last
        axis fastest): ``cc3d.connected_components`` follows the memory order of its input,
        and the script passes it scipy's dilation, a C-ordered array. The 2024 merging depends
        on that order.
    """
    groups = np.zeros(mask.shape, np.int32)
    footprint = np.zeros(mask.shape, np.int32)
    if not mask.any():
        return groups, footprint, 0
    box = bounding_box(mask, margin=iterations)
    dilated = ndimage.binary_dilation(mask[box], structure=DILATION_STRUCTURE,
                                      iterations=iterations)
    footprint[box], count = connected_components(dilated)
    groups[box] = np.where(mask[box], footprint[box], 0)
    return groups, footprint, int(count)


def drop_small_groups(groups, max_voxels):
    """``groups`` without the groups of at most ``max_voxels`` voxels (ids unchanged)."""
    sizes = np.bincount(groups.ravel())
    small = sizes <= max_voxels
    small[0] = False
    return np.where(small[groups], 0, groups).astype(np.int32)


def touching_pairs(first, second):
    """The pairs (id in ``first``, id in ``second``) of groups with 18-neighbouring voxels.

    Args:
        first, second: int label maps of one shape (0 = background).

    Returns:
        set of (int, int).
    """
    if not first.any() or not second.any():
        return set()
    box = bounding_box(first > 0, margin=1)
    near = np.pad(first[box], 1, mode="constant")
    other = np.pad(second[box], 1, mode="constant")
    core = tuple(slice(1, n - 1) for n in near.shape)
    own = near[core]
    width = int(second.max()) + 1
    keys = []
    for offset in _TOUCH_OFFSETS:
        shifted = other[tuple(slice(1 + d, n - 1 + d) for d, n in zip(offset, other.shape))]
        both = (own > 0) & (shifted > 0)
        keys.append(own[both].astype(np.int64) * width + shifted[both])
    keys = np.unique(np.concatenate(keys))
    return set(zip((keys // width).tolist(), (keys % width).tolist()))


def merge_through(groups, other):
    """Merge the groups of one sub-region that touch the same lesion of another.

    Each group touching lesions of ``other`` takes the lowest-numbered of them as its key, and
    groups with the same key become one (the official ``relabel_nifti_image``: a group touching
    two lesions joins only the first one's, so the merging is not transitive); groups touching
    nothing keep their id.

    The ids are the official script's too, which the ``official`` legacy metrics need (they
    depend on which lesion is numbered 1): with fewer than two touching pairs nothing is
    renumbered; otherwise, going through the pairs (own id, other id) in ascending order, each
    other id met for the first time takes the next id above the current largest (whether or not
    a group ends up keyed to it), and each group touching anything takes its key's.

    Args:
        groups: int label map of the sub-region's current groups.
        other: int label map of the other sub-region's groups (its own dilation groups).

    Returns:
        int32 label map; merged groups get new ids above the current largest.
    """
    pairs = sorted(touching_pairs(groups, other))
    if len(pairs) < 2:
        return groups
    largest = int(groups.max())
    new_ids = OrderedDict()
    for _, theirs in pairs:
        if theirs not in new_ids:
            new_ids[theirs] = largest + 1 + len(new_ids)
    lookup = np.arange(largest + 1 + len(new_ids), dtype=np.int32)
    keyed = set()
    for own, theirs in pairs:  # ascending: a group's first pair holds its lowest other id
        if own not in keyed:
            keyed.add(own)
            lookup[own] = new_ids[theirs]
    return lookup[groups]


def _renumbered(groups, footprint=None):
    """Group ids made 1..n (in order of the old ids), the footprint following; and n."""
    ids = np.unique(groups)
    ids = ids[ids > 0]
    lookup = np.zeros(int(max(groups.max(), footprint.max() if footprint is not None else 0)) + 1,
                      np.int32)
    lookup[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lookup[groups], (lookup[footprint] if footprint is not None else None), int(ids.size)


#: Regions whose final lesion maps the official 2024 script renumbers 1..n after merging
#: (``reorder_labels_nifti``); WT and TC keep the dilation groups' ids, gaps left by deleted
#: predicted lesions included.
RENUMBERED_2024 = ("netc", "snfh", "et", "rc")


class Brats2024Region(object):
    """One region of a case prepared by :func:`prepare_brats2024`.

    Attributes:
        pred_units: int32 label map of the predicted lesions (1..pred_count) after the small
            ones are deleted and touching ones merged.
        pred_count: their number.
        lesions: :class:`GroundTruthLesions` of the merged ground-truth lesions.
        pred_ids: int32 label map of the same predicted lesions with the official script's ids
            (those of ``pred_units`` for the merged sub-regions; for WT and TC the dilation
            groups' own ids, which the deleted lesions leave with gaps); default
            ``pred_units``.
    """

    def __init__(self, pred_units, pred_count, lesions, pred_ids=None):
        self.pred_units = pred_units
        self.pred_count = pred_count
        self.lesions = lesions
        self.pred_ids = pred_units if pred_ids is None else pred_ids

    @property
    def pred_mask(self):
        """The scored prediction: the region's mask without the deleted small lesions."""
        return self.pred_units > 0

    @property
    def gt_ids(self):
        """The ground-truth lesion map with the official script's ids (``lesions.lesions``:
        numbered as the official one, 1..count)."""
        return self.lesions.lesions

    @property
    def label_maps(self):
        """(prediction, ground truth) lesion label maps as the official 2024 script holds them
        when it computes its full-volume HD95, sensitivity and specificity."""
        return self.pred_ids, self.gt_ids


def _merge_all(groups, through=MERGED_THROUGH):
    """Every sub-region's groups merged through the others' own (unmerged) groups."""
    merged = OrderedDict()
    for region, group_map in groups.items():
        for other in through.get(region, ()):
            group_map = merge_through(group_map, groups[other])
        merged[region] = group_map
    return merged


def prepare_brats2024(pred_label, gt_label, spacing, settings, merge=True):
    """Group, filter and merge both label maps as the official BraTS 2024 script does.

    Args:
        pred_label, gt_label: internal label maps (3 = resection cavity).
        spacing: voxel size in mm per axis.
        settings: BraTS 2024 :class:`~densenet3d_keras.evaluation.challenges.LesionSettings`.
        merge: merge touching NETC, SNFH, ET and RC lesions (off only to show what the merging
            changes).

    Returns:
        OrderedDict region -> :class:`Brats2024Region`, regions of ``settings``.

    Raises:
        ValueError: as :func:`evaluate_lesionwise`.
    """
    regions = settings_regions(settings)
    pred_label, gt_label = check_label_pair(pred_label, gt_label, labels_of_regions(regions))
    spacing = check_spacing(spacing)
    gt_groups, footprints, pred_groups = OrderedDict(), OrderedDict(), OrderedDict()
    for region in regions:
        iterations = settings.iterations(region)
        gt_groups[region], footprints[region], _ = dilation_groups(
            region_mask(gt_label, region), iterations)
        groups, _, _ = dilation_groups(region_mask(pred_label, region), iterations)
        pred_groups[region] = drop_small_groups(groups, settings.min_pred_voxels[region])
    through = MERGED_THROUGH if merge else {}
    gt_merged, pred_merged = _merge_all(gt_groups, through), _merge_all(pred_groups, through)
    prepared = OrderedDict()
    for region in regions:
        # Merging maps whole groups, so each footprint follows its group's new id.
        lookup = np.zeros(int(max(gt_groups[region].max(), 0)) + 1, np.int32)
        present = gt_groups[region] > 0
        lookup[gt_groups[region][present]] = gt_merged[region][present]
        lesions, footprint, count = _renumbered(gt_merged[region], lookup[footprints[region]])
        box = bounding_box(gt_groups[region] > 0, margin=settings.iterations(region))
        units, _, unit_count = _renumbered(pred_merged[region])
        prepared[region] = Brats2024Region(
            units, unit_count,
            _lesions_with_sizes(lesions, footprint, count, spacing, settings.min_volume[region], box),
            units if region in RENUMBERED_2024 else pred_merged[region])
    return prepared


def evaluate_lesionwise(pred_label, gt_label, spacing, settings=None, prepared=None):
    """Lesion-wise results of every region of one case.

    Args:
        pred_label: 3-D internal label map (values 0, 1, 2, 4; 3 = resection cavity with
            BraTS 2024 settings) of the prediction.
        gt_label: 3-D internal label map of the ground truth, same shape.
        spacing: voxel size in mm per axis (the ground truth's header zooms).
        settings: :class:`~densenet3d_keras.evaluation.challenges.LesionSettings`; default
            BraTS 2023 GLI. Its regions are the ones scored.
        prepared: with BraTS 2024 settings, the :func:`prepare_brats2024` result of these
            label maps if already computed (the legacy metrics use it too).

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
    if settings.brats2024:
        if prepared is None:
            prepared = prepare_brats2024(pred_label, gt_label, spacing, settings)
        per_region = OrderedDict(
            (region, _score_region(part.pred_units, part.pred_count, part.lesions, spacing,
                                   settings.missed_hd95))
            for region, part in prepared.items())
    else:
        per_region = OrderedDict(
            (region, lesionwise_region(region_mask(pred_label, region),
                                       region_mask(gt_label, region), spacing,
                                       settings.iterations(region), settings.min_volume[region]))
            for region in regions)
    row = OrderedDict()
    for family in LESION_FAMILIES:
        key = family[len("lesion_"):]
        for region in regions:
            row["%s_%s" % (family, region)] = per_region[region][key]
    return row
