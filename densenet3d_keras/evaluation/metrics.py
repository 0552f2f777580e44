"""BraTS segmentation metrics: Dice, HD95, sensitivity and specificity per tumour region.

Pure numpy/scipy (no TensorFlow), so scoring runs anywhere nibabel does.

Regions are taken from internal label maps (enhancing tumour = 4, see
:data:`densenet3d_keras.core.labels.REGIONS`): whole tumour WT = {1, 2, 4}, tumour core
TC = {1, 4}, enhancing tumour ET = {4}; BraTS 2024 post-treatment label maps add NETC, SNFH and
the resection cavity RC (:data:`~densenet3d_keras.core.labels.REGIONS_2024`).

The definitions are those of the official BraTS 2023 evaluation, ``eval.py`` of
https://github.com/rachitsaluja/BraTS-2023-Metrics (``Legacy_Dice``, ``Legacy_HD95``,
``Sensitivity``, ``Specificity``), and every value equals that script's on the cases of
``tests/evaluation/official`` (1e-3 for ratios, 0.5 mm for distances). Per region, "empty"
meaning the region has no voxel:

* Dice ``2|P & G| / (|P| + |G|)``; both empty -> 1, exactly one empty -> 0.
* HD95, the robust Hausdorff distance at 95 % of DeepMind's ``surface-distance``
  (:mod:`densenet3d_keras.evaluation.surfaces`): surface points on the voxel corners weighted by
  their surface area, per direction the area-weighted 95th percentile of the distances to the
  other surface, then the larger of the two directions. Both empty -> 0 mm; exactly one empty
  -> :data:`HD95_PENALTY` = 374 mm whatever the grid (the official script replaces the
  infinite distance by 374).
* Sensitivity ``TP / (TP + FN)``; both empty -> 1, an empty ground truth with a non-empty
  prediction -> 0 (as the official script's ``TP / (TP + FN + tiny)``).
* Specificity ``TN / (TN + FP)``; 0 when the ground truth covers the whole volume (no
  background to keep: the official ``TN / (TN + FP + tiny)``).

BraTS 2024 post-treatment label maps are scored as the official 2024 script does
(:mod:`densenet3d_keras.evaluation.lesionwise`): :func:`evaluate_case` then gets the
prediction's masks without its deleted small lesions (``pred_masks``) and the 2024 HD95 of one
empty mask, 337 mm (``hd95_penalty``). The official 2024 script computes HD95, sensitivity and
specificity not on 0/1 masks but on its lesion label maps (ids 1, 2, ...);
:func:`label_map_hd95`, :func:`label_map_sensitivity` and :func:`label_map_specificity`
reproduce that, and :func:`evaluate_case` uses them when given the maps (``label_maps``, the
``--brats2024-legacy-metrics official`` of ``evaluate_keras.py``). On maps holding at most one
lesion each they equal the mask metrics; with two or more they lose their meaning:

* HD95: DeepMind's surface code is handed the maps as they are. It stores them in 8 bits and
  computes each corner's neighbour code as the sum of the 2 x 2 x 2 values times their bit
  weights, kept in 8 bits (:func:`~densenet3d_keras.evaluation.surfaces.wrapped_neighbour_codes`):
  the inside of lesion 2, 3, ... gets codes 254, 253, ..., which count as surface, with those
  codes' areas. Both maps empty -> 0; an infinite distance (one map empty) -> the penalty, 337.
* Sensitivity and specificity, GaNDLF's formulas on the ids: predicted and reference "counts"
  are the sums of the ids, true positives the voxels labelled 1 in both maps, FP = predicted
  sum - TP, FN = reference sum - TP, TN the voxels labelled 1 in neither; sensitivity
  ``TP / (TP + FN)`` (0 when the reference sum is 0, 1 when both sums are 0), specificity
  ``TN / (TN + FP)`` (0 when that is 0/0).

Not official BraTS metrics, kept as named extras:

* NSD, the normalised surface distance (surface Dice) at a tolerance of :data:`NSD_TOLERANCE`
  = 1 mm (Nikolov et al. 2021, arXiv:1809.04430; MONAI's ``compute_surface_dice`` with
  ``use_subvoxels=False``): the surface of a mask is the mask minus its 6-connected erosion
  (voxels on the edge of the volume count as surface), ``distance_transform_edt`` gives the
  distance in mm from each surface voxel to the other mask's surface, and NSD is the fraction of
  the surface voxels of both masks within the tolerance,
  ``(#{d_PG <= tau} + #{d_GP <= tau}) / (|S_P| + |S_G|)``. Both empty -> 1 (MONAI gives NaN),
  exactly one empty -> 0.
* :func:`pooled_hd95`, MedPy's ``hd95``: the distances of both directions between those surface
  voxels pooled into one list and its 95th percentile (``numpy.percentile``, linear
  interpolation). It dilutes a missed or extra lesion (one direction only) and is not what BraTS
  reports; the empty cases are as for HD95.
"""
import math
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from scipy import ndimage

from densenet3d_keras.core.labels import LABELS_2024_INTERNAL, REGIONS, region_mask
from densenet3d_keras.evaluation.surfaces import (label_map_surface_distances, robust_hausdorff,
                                                  surface_distances as surfel_distances)

#: Metric families and regions, in the column order of ``metrics.csv``.
METRIC_FAMILIES = ("dice", "hd95", "sensitivity", "specificity")
METRIC_NAMES = tuple("%s_%s" % (family, region) for family in METRIC_FAMILIES for region in REGIONS)

#: Label values allowed in the internal convention.
INTERNAL_LABELS = (0, 1, 2, 4)

#: Label values allowed in a BraTS 2024 scoring (internal labels and the resection cavity 3).
INTERNAL_LABELS_2024 = LABELS_2024_INTERNAL

#: Percentile of the surface distances reported as "HD95".
HD_PERCENTILE = 95.0
#: HD95 (mm) when exactly one of the two masks is empty: the official BraTS value.
HD95_PENALTY = 374.0

#: How ``evaluate_keras.py --brats2024-legacy-metrics`` computes HD95, sensitivity and
#: specificity of BraTS 2024 cases: on the 0/1 masks (default) or as the official 2024 script
#: does, on its lesion label maps.
LEGACY_2024_CHOICES = ("masks", "official")
DEFAULT_LEGACY_2024 = "masks"
#: The families ``official`` computes on the lesion label maps (Dice is the same either way).
LABEL_MAP_FAMILIES = ("hd95", "sensitivity", "specificity")

#: Tolerance (mm) of the normalised surface distance.
NSD_TOLERANCE = 1.0
#: NSD columns, one per region.
NSD_NAMES = tuple("nsd_%s" % region for region in REGIONS)

_SURFACE_STRUCTURE = ndimage.generate_binary_structure(3, 1)


def _as_mask(mask, name):
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise ValueError("%s must be a 3-D mask, got shape %s" % (name, mask.shape))
    return mask


def _same_shape(pred, gt):
    """``pred`` and ``gt`` as arrays; ValueError naming both shapes if they differ."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError("prediction shape %s differs from ground-truth shape %s"
                         % (pred.shape, gt.shape))
    return pred, gt


def _check_pair(pred, gt):
    """Boolean 3-D versions of ``pred`` and ``gt``; ValueError naming both shapes if they differ."""
    pred, gt = _same_shape(pred, gt)
    return _as_mask(pred, "prediction"), _as_mask(gt, "ground truth")


def check_spacing(spacing):
    """The voxel size as 3 floats.

    Raises:
        ValueError: not 3 positive finite numbers.
    """
    try:
        values = tuple(float(s) for s in spacing)
    except TypeError:
        raise ValueError("spacing must be a sequence of 3 numbers (mm), got %r" % (spacing,))
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError("spacing must be 3 positive finite voxel sizes in mm, got %r" % (spacing,))
    return values


def dice(pred_mask, gt_mask):
    """Dice overlap of two binary masks.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.

    Returns:
        float in [0, 1]; 1.0 when both masks are empty, 0.0 when exactly one is.

    Raises:
        ValueError: the shapes differ (the message names both) or a mask is not 3-D.
    """
    pred, gt = _check_pair(pred_mask, gt_mask)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def surface(mask):
    """Surface voxels of a binary mask: the mask minus its 6-connected erosion.

    Args:
        mask: 3-D array, nonzero = inside.

    Returns:
        Boolean array of the same shape; voxels on the volume edge are surface.
    """
    mask = _as_mask(mask, "mask")
    return np.logical_and(mask, np.logical_not(ndimage.binary_erosion(mask, _SURFACE_STRUCTURE)))


def _crop_box(pred, gt):
    """Slices of the bounding box of ``pred | gt`` widened by one voxel (within the volume).

    Cropping to it changes no surface and no distance: every surface voxel is inside, and the
    one-voxel margin (or the volume edge, where the box touches it) keeps the erosion exact.
    """
    union = np.logical_or(pred, gt)
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(present[0] - 1, 0), min(present[-1] + 2, union.shape[axis])))
    return tuple(box)


def surface_distances(from_mask, to_mask, spacing):
    """Distances in mm from each surface voxel of ``from_mask`` to the surface of ``to_mask``.

    Args:
        from_mask: 3-D array with at least one nonzero voxel.
        to_mask: 3-D array of the same shape with at least one nonzero voxel.
        spacing: voxel size in mm per axis.

    Returns:
        1-D float array, one distance per surface voxel of ``from_mask``.

    Raises:
        ValueError: the shapes differ, the spacing is invalid or a mask is empty.
    """
    source, target = _check_pair(from_mask, to_mask)
    spacing = check_spacing(spacing)
    if not source.any() or not target.any():
        raise ValueError("surface distances need two non-empty masks")
    box = _crop_box(source, target)
    source_surface = surface(source[box])
    target_surface = surface(target[box])
    distance = ndimage.distance_transform_edt(np.logical_not(target_surface), sampling=spacing)
    return distance[source_surface]


def _empty_pair(pred, gt, penalty=HD95_PENALTY):
    """The HD95 of masks of which at least one is empty, else ``None``."""
    has_pred = bool(pred.any())
    has_gt = bool(gt.any())
    if not has_pred and not has_gt:
        return 0.0
    if has_pred != has_gt:
        return penalty
    return None


def hd95(pred_mask, gt_mask, spacing, penalty=HD95_PENALTY):
    """HD95 in mm as the official BraTS evaluation computes it.

    The larger of the two directed, surface-area-weighted 95th percentiles of the surface
    distances (module docstring; :mod:`densenet3d_keras.evaluation.surfaces`).

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.
        spacing: voxel size in mm per axis, e.g. the NIfTI header zooms.
        penalty: the value when exactly one mask is empty (BraTS 2024: 337).

    Returns:
        float mm; 0.0 when both masks are empty, ``penalty`` (:data:`HD95_PENALTY`, 374) when
        exactly one is.

    Raises:
        ValueError: the shapes differ (the message names both), a mask is not 3-D or the
            spacing is not 3 positive numbers.
    """
    pred, gt = _check_pair(pred_mask, gt_mask)
    spacing = check_spacing(spacing)
    empty = _empty_pair(pred, gt, penalty)
    if empty is not None:
        return empty
    return robust_hausdorff(surfel_distances(gt, pred, spacing), HD_PERCENTILE)


def pooled_hd95(pred_mask, gt_mask, spacing):
    """MedPy's HD95 in mm: the 95th percentile of the pooled surface-voxel distances.

    Not the BraTS definition (see the module docstring); empty masks as :func:`hd95`.

    Raises:
        ValueError: as :func:`hd95`.
    """
    pred, gt = _check_pair(pred_mask, gt_mask)
    spacing = check_spacing(spacing)
    empty = _empty_pair(pred, gt)
    if empty is not None:
        return empty
    pooled = np.concatenate([surface_distances(pred, gt, spacing),
                             surface_distances(gt, pred, spacing)])
    return float(np.percentile(pooled, HD_PERCENTILE))


def nsd(pred_mask, gt_mask, spacing, tolerance=NSD_TOLERANCE):
    """Normalised surface distance (surface Dice) of two masks at a tolerance in mm.

    See the module docstring for the exact definition.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.
        spacing: voxel size in mm per axis.
        tolerance: largest surface distance in mm that counts as agreement (>= 0).

    Returns:
        float in [0, 1]; 1.0 when both masks are empty, 0.0 when exactly one is.

    Raises:
        ValueError: the shapes differ, a mask is not 3-D, the spacing is invalid or the
            tolerance is negative or not finite.
    """
    pred, gt = _check_pair(pred_mask, gt_mask)
    spacing = check_spacing(spacing)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError("NSD tolerance must be a finite number of mm >= 0, got %r" % (tolerance,))
    has_pred = bool(pred.any())
    has_gt = bool(gt.any())
    if not has_pred or not has_gt:
        return 1.0 if has_pred == has_gt else 0.0
    pooled = np.concatenate([surface_distances(pred, gt, spacing),
                             surface_distances(gt, pred, spacing)])
    return int(np.count_nonzero(pooled <= tolerance)) / float(pooled.size)


def surface_scores(pred_mask, gt_mask, spacing, tolerance=NSD_TOLERANCE):
    """HD95 and NSD of two masks.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.
        spacing: voxel size in mm per axis.
        tolerance: NSD tolerance in mm (>= 0).

    Returns:
        (hd95 in mm, nsd): as :func:`hd95` and :func:`nsd`.

    Raises:
        ValueError: as :func:`nsd`.
    """
    return hd95(pred_mask, gt_mask, spacing), nsd(pred_mask, gt_mask, spacing, tolerance)


def nsd_case(pred_label, gt_label, spacing, tolerance=NSD_TOLERANCE, regions=REGIONS):
    """NSD of every region of one case.

    Args:
        pred_label: 3-D internal label map (values 0, 1, 2, 4) of the prediction.
        gt_label: 3-D internal label map of the ground truth, same shape.
        spacing: voxel size in mm per axis.
        tolerance: NSD tolerance in mm.
        regions: the regions (``REGIONS`` or ``REGIONS_2024`` of
            :mod:`densenet3d_keras.core.labels`).

    Returns:
        OrderedDict ``nsd_<region>`` per region (:data:`NSD_NAMES` for the default regions).

    Raises:
        ValueError: the shapes differ, a label value is not internal or the spacing is invalid.
    """
    pred_label, gt_label = check_label_pair(pred_label, gt_label, labels_of_regions(regions))
    return OrderedDict(("nsd_%s" % region, nsd(region_mask(pred_label, region),
                                               region_mask(gt_label, region), spacing, tolerance))
                       for region in regions)


def _confusion(pred_mask, gt_mask):
    pred, gt = _check_pair(pred_mask, gt_mask)
    true_positive = int(np.logical_and(pred, gt).sum())
    positives = int(gt.sum())
    predicted = int(pred.sum())
    false_positive = predicted - true_positive
    false_negative = positives - true_positive
    true_negative = gt.size - positives - false_positive
    return true_positive, false_positive, false_negative, true_negative


def sensitivity(pred_mask, gt_mask):
    """True-positive rate ``TP / (TP + FN)``.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.

    Returns:
        float in [0, 1]; with an empty ground truth 1.0 if the prediction is empty too, else
        0.0 (the official BraTS value).

    Raises:
        ValueError: the shapes differ (the message names both) or a mask is not 3-D.
    """
    tp, fp, fn, _ = _confusion(pred_mask, gt_mask)
    if tp + fn == 0:
        return 1.0 if fp == 0 else 0.0
    return tp / float(tp + fn)


def specificity(pred_mask, gt_mask):
    """True-negative rate ``TN / (TN + FP)``.

    Args:
        pred_mask: 3-D array, nonzero = inside.
        gt_mask: 3-D array of the same shape.

    Returns:
        float in [0, 1]; 0.0 when the ground truth has no background voxel (the official
        BraTS value).

    Raises:
        ValueError: the shapes differ (the message names both) or a mask is not 3-D.
    """
    _, fp, _, tn = _confusion(pred_mask, gt_mask)
    if tn + fp == 0:
        return 0.0
    return tn / float(tn + fp)


def _lesion_maps(pred_map, gt_map):
    """Both lesion label maps as int64 arrays of one 3-D shape."""
    pred, gt = _same_shape(pred_map, gt_map)
    if pred.ndim != 3:
        raise ValueError("lesion label maps must be 3-D, got shape %s" % (pred.shape,))
    return pred.astype(np.int64), gt.astype(np.int64)


def label_map_hd95(pred_map, gt_map, spacing, penalty=HD95_PENALTY):
    """HD95 in mm of two lesion label maps (ids 1, 2, ...) as the official BraTS 2024 script
    computes its full-volume HD95 (module docstring); :func:`hd95` for 0/1 masks.

    Args:
        pred_map: 3-D array of non-negative integers, 0 = background.
        gt_map: 3-D array of the same shape.
        spacing: voxel size in mm per axis.
        penalty: the value of an infinite distance (one map empty; BraTS 2024: 337).

    Returns:
        float mm; 0.0 when both maps are empty.

    Raises:
        ValueError: the shapes differ, a map is not 3-D or holds negative values, or the
            spacing is invalid.
    """
    pred, gt = _lesion_maps(pred_map, gt_map)
    spacing = check_spacing(spacing)
    if not pred.any() and not gt.any():
        return 0.0
    distance = robust_hausdorff(label_map_surface_distances(gt, pred, spacing), HD_PERCENTILE)
    return float(penalty) if math.isinf(distance) else float(distance)


def _label_map_confusion(pred_map, gt_map):
    """(TP, FP, FN, TN, predicted sum, reference sum) of GaNDLF's formulas on label maps."""
    pred, gt = _lesion_maps(pred_map, gt_map)
    predicted, reference = int(pred.sum()), int(gt.sum())
    pred_one, gt_one = pred == 1, gt == 1
    true_positive = int(np.count_nonzero(pred_one & gt_one))
    true_negative = int(np.count_nonzero(~pred_one & ~gt_one))
    return (true_positive, predicted - true_positive, reference - true_positive, true_negative,
            predicted, reference)


def label_map_sensitivity(pred_map, gt_map):
    """Sensitivity of two lesion label maps as the official BraTS 2024 script computes it
    (module docstring); :func:`sensitivity` for 0/1 masks.

    Raises:
        ValueError: the shapes differ or a map is not 3-D.
    """
    tp, _, fn, _, predicted, reference = _label_map_confusion(pred_map, gt_map)
    if predicted == 0 and reference == 0:
        return 1.0
    return tp / float(tp + fn) if tp + fn else 0.0


def label_map_specificity(pred_map, gt_map):
    """Specificity of two lesion label maps as the official BraTS 2024 script computes it
    (module docstring); :func:`specificity` for 0/1 masks.

    Raises:
        ValueError: the shapes differ or a map is not 3-D.
    """
    _, fp, _, tn, _, _ = _label_map_confusion(pred_map, gt_map)
    return tn / float(tn + fp) if tn + fp else 0.0


def _check_internal(label, name, labels=INTERNAL_LABELS):
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError("%s label map must be 3-D, got shape %s" % (name, label.shape))
    outside = np.isin(label, labels, invert=True)
    if outside.any():
        bad = sorted(set(np.unique(label[outside]).tolist()))
        raise ValueError("%s label map has values %s outside the internal labels %s "
                         "(map BraTS 2023 files with generators.brats.to_internal_labels)"
                         % (name, bad, list(labels)))
    return label


def labels_of_regions(regions):
    """Internal label values allowed when scoring ``regions``: 3 (the cavity) only with RC."""
    return INTERNAL_LABELS_2024 if "rc" in regions else INTERNAL_LABELS


def check_label_pair(pred_label, gt_label, labels=INTERNAL_LABELS):
    """Both label maps as arrays, checked: 3-D, the same shape, label values in ``labels``.

    Raises:
        ValueError: the shapes differ (the message names both) or a value is not allowed.
    """
    pred_label, gt_label = _same_shape(pred_label, gt_label)
    return (_check_internal(pred_label, "prediction", labels),
            _check_internal(gt_label, "ground-truth", labels))


def metric_names(regions=REGIONS):
    """The legacy metric columns for ``regions``: family-major, ``dice_wt`` ... (as
    :data:`METRIC_NAMES` for the default regions)."""
    return tuple("%s_%s" % (family, region) for family in METRIC_FAMILIES for region in regions)


def evaluate_case(pred_label, gt_label, spacing, with_nsd=False, nsd_tolerance=NSD_TOLERANCE,
                  regions=REGIONS, pred_masks=None, hd95_penalty=HD95_PENALTY, label_maps=None):
    """All metrics of one case, for every region.

    Args:
        pred_label: 3-D internal label map (values 0, 1, 2, 4) of the prediction.
        gt_label: 3-D internal label map of the ground truth, same shape.
        spacing: voxel size in mm per axis (the ground truth's header zooms).
        with_nsd: also the NSD columns.
        nsd_tolerance: NSD tolerance in mm.
        regions: the regions scored (``REGIONS`` or ``REGIONS_2024`` of
            :mod:`densenet3d_keras.core.labels`; internal label 3, the resection cavity, is
            allowed only with the latter).
        pred_masks: optional mapping region -> the prediction's mask to score instead of the
            region of ``pred_label`` (BraTS 2024: without the deleted small lesions).
        hd95_penalty: HD95 when exactly one mask is empty (BraTS 2024: 337).
        label_maps: optional mapping region -> (prediction, ground truth) lesion label maps:
            HD95, sensitivity and specificity (:data:`LABEL_MAP_FAMILIES`) are then computed on
            them as the official BraTS 2024 script does (:func:`label_map_hd95`,
            :func:`label_map_sensitivity`, :func:`label_map_specificity`); Dice and NSD stay on
            the masks.

    Returns:
        OrderedDict ``metric -> float`` with the keys of :func:`metric_names` (:data:`METRIC_NAMES`
        for the default regions): ``dice_wt``, ``dice_tc``, ``dice_et``, ``hd95_wt`` ...
        ``specificity_et``; then, ``with_nsd``, ``nsd_<region>``.

    Raises:
        ValueError: the shapes differ (the message names both), a label value is not internal
            or the spacing is invalid.
    """
    pred_label, gt_label = check_label_pair(pred_label, gt_label, labels_of_regions(regions))
    spacing = check_spacing(spacing)
    masks = OrderedDict((region, (region_mask(pred_label, region) if pred_masks is None
                                  else pred_masks[region], region_mask(gt_label, region)))
                        for region in regions)
    functions = OrderedDict([
        ("dice", dice),
        ("hd95", lambda p, g: hd95(p, g, spacing, hd95_penalty)),
        ("sensitivity", sensitivity),
        ("specificity", specificity),
    ])
    on_maps = OrderedDict([
        ("hd95", lambda p, g: label_map_hd95(p, g, spacing, hd95_penalty)),
        ("sensitivity", label_map_sensitivity),
        ("specificity", label_map_specificity),
    ])
    row = OrderedDict()
    for family in METRIC_FAMILIES:
        for region, (pred, gt) in masks.items():
            if label_maps is not None and family in on_maps:
                value = on_maps[family](*label_maps[region])
            else:
                value = functions[family](pred, gt)
            row["%s_%s" % (family, region)] = float(value)
    if with_nsd:
        for region, (pred, gt) in masks.items():
            row["nsd_" + region] = nsd(pred, gt, spacing, nsd_tolerance)
    return row


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def summarise(rows, names=None):
    # type: (Sequence[Mapping[str, object]], Optional[Sequence[str]]) -> Dict[str, Dict[str, float]]
    """Mean, standard deviation and median of each metric over cases, ignoring NaN.

    Args:
        rows: one mapping per case, e.g. from :func:`evaluate_case`; non-numeric entries
            (such as a ``case`` name) are skipped.
        names: the metrics to summarise; default every numeric key, in first-seen order.

    Returns:
        OrderedDict ``metric -> OrderedDict(mean, std, median, count)``; ``std`` is the
        population standard deviation (ddof 0), ``count`` the number of non-NaN values. A
        metric with no finite value gets NaN statistics and count 0.

    Raises:
        ValueError: a named metric is missing from a row.
    """
    if names is None:
        names = []
        for row in rows:
            for key, value in row.items():
                if key not in names and _is_number(value):
                    names.append(key)
    summary = OrderedDict()
    for name in names:
        values = []
        for index, row in enumerate(rows):
            if name not in row:
                raise ValueError("row %d has no metric %r" % (index, name))
            values.append(float(row[name]))
        values = np.asarray(values, dtype=np.float64)
        count = int(np.count_nonzero(~np.isnan(values)))
        if count:
            stats = (np.nanmean(values), np.nanstd(values), np.nanmedian(values))
        else:
            stats = (float("nan"),) * 3
        summary[name] = OrderedDict([("mean", float(stats[0])), ("std", float(stats[1])),
                                     ("median", float(stats[2])), ("count", count)])
    return summary
