"""Choosing postprocessing settings on validation cases by their BraTS 2023 lesion-wise Dice.

The steps of :mod:`densenet3d_keras.inference.postprocess` are tried on a small grid
(:data:`GRID`), greedily and one step at a time, as nnU-Net chooses its postprocessing:

1. start from no postprocessing; the objective is the mean over cases of the mean of the
   lesion-wise Dice of WT, TC and ET (:mod:`densenet3d_keras.evaluation.lesionwise`);
2. for ``wt``, ``tc``, ``et`` (minimum component sizes) and then ``et_to_necrosis_below``,
   score every value of the grid with the other settings as chosen so far; keep the best
   value only if it raises the objective (by more than :data:`MIN_GAIN`), else keep the
   step off. Among equal scores the first value of the grid (the smaller change) wins.

Fast because nothing is relabelled or re-scored voxel by voxel: every step removes whole
connected components of the original prediction (see the postprocessing module), so each
case's components are computed once per region, with their sizes, which lesions' footprints
they touch, how many voxels they share with each lesion and which WT (TC) component holds
each TC (ET) component (:class:`CaseComponents`). The lesion-wise Dice and the legacy Dice of
any setting then follow from small arrays (:func:`case_scores`).
"""
import time
from collections import OrderedDict

import numpy as np

from densenet3d_keras.core.labels import REGIONS, region_mask
from densenet3d_keras.evaluation.lesionwise import (component_table, connected_components,
                                                    ground_truth_lesions, score_dice)
from densenet3d_keras.evaluation.report import load_pair
from densenet3d_keras.inference.postprocess import PostprocessSettings

#: Values tried per step, in order (the first is "off").
GRID = OrderedDict([
    ("wt", (0, 50, 100, 250, 500, 1000)),
    ("tc", (0, 25, 50, 100, 250, 500)),
    ("et", (0, 10, 25, 50, 100, 250)),
    ("et_to_necrosis_below", (None, 50, 100, 200, 500)),
])
#: Smallest rise of the objective that keeps a step.
MIN_GAIN = 1e-9


class CaseComponents(object):
    """What scoring one case under any postprocessing setting needs.

    Attributes:
        tables: region -> :class:`~densenet3d_keras.evaluation.lesionwise.ComponentTable` of
            the original prediction's components.
        wt_of_tc: int ``(n_tc,)`` index of the WT component holding each TC component.
        tc_of_et: int ``(n_et,)`` index of the TC component holding each ET component.
        lone_et: bool ``(n_et,)``, ET components that are a whole TC component.
    """

    def __init__(self, tables, wt_of_tc, tc_of_et, lone_et):
        self.tables = tables
        self.wt_of_tc = wt_of_tc
        self.tc_of_et = tc_of_et
        self.lone_et = lone_et


def _parents(child, child_count, parent):
    """0-based index of the ``parent`` component holding each ``child`` component."""
    index = np.zeros(child_count + 1, np.int64)
    inside = child > 0
    index[child[inside]] = parent[inside]
    return index[1:] - 1


def case_components(pred_label, gt_label, spacing):
    """Components, lesion matches and nesting of one case (:class:`CaseComponents`).

    Args:
        pred_label: 3-D internal label map of the prediction.
        gt_label: 3-D internal label map of the ground truth.
        spacing: voxel size in mm per axis.
    """
    tables = OrderedDict()
    components = {}
    for region in REGIONS:
        labels, count = connected_components(region_mask(pred_label, region))
        lesions = ground_truth_lesions(region_mask(gt_label, region), spacing)
        tables[region] = component_table(labels, count, lesions)
        components[region] = (labels, count)
    wt_of_tc = _parents(components["tc"][0], components["tc"][1], components["wt"][0])
    tc_of_et = _parents(components["et"][0], components["et"][1], components["tc"][0])
    lone_et = tables["tc"].sizes[tc_of_et] == tables["et"].sizes
    return CaseComponents(tables, wt_of_tc, tc_of_et, lone_et)


def kept_components(case, settings):
    """Which original components of each region a setting keeps (postprocessing steps 1-4).

    Args:
        case: :class:`CaseComponents`.
        settings: :class:`~densenet3d_keras.inference.postprocess.PostprocessSettings`.

    Returns:
        dict region -> bool array over the region's original components.
    """
    sizes = dict((region, case.tables[region].sizes) for region in REGIONS)
    wt = sizes["wt"] >= settings.min_size.get("wt", 0)
    tc = wt[case.wt_of_tc] & (sizes["tc"] >= settings.min_size.get("tc", 0))
    present = tc[case.tc_of_et]
    small = sizes["et"] < settings.min_size.get("et", 0)
    et = present & ~small
    tc[case.tc_of_et[present & small & case.lone_et]] = False  # a lone spot becomes edema
    below = settings.et_to_necrosis_below
    if below and sizes["et"][et].sum() < below:
        et[:] = False
    return {"wt": wt, "tc": tc, "et": et}


def _legacy_dice(table, keep):
    predicted = int(table.sizes[keep].sum())
    truth = int(table.lesion_sizes.sum())
    if predicted + truth == 0:
        return 1.0
    return 2.0 * int(table.gt_overlap[keep].sum()) / (predicted + truth)


def case_scores(case, settings):
    """Lesion-wise and legacy Dice per region of one case after postprocessing.

    Returns:
        OrderedDict ``lesion_dice_<region>`` then ``dice_<region>`` for wt, tc, et.
    """
    keep = kept_components(case, settings)
    scores = OrderedDict()
    for region in REGIONS:
        scores["lesion_dice_" + region] = score_dice(case.tables[region], keep[region])
    for region in REGIONS:
        scores["dice_" + region] = _legacy_dice(case.tables[region], keep[region])
    return scores


def mean_scores(cases, settings):
    """Mean over cases of :func:`case_scores`, plus ``lesion_dice_mean`` and ``dice_mean``.

    ``lesion_dice_mean`` (the mean of the three regions' means) is the objective.
    """
    per_case = [case_scores(case, settings) for case in cases]
    means = OrderedDict((key, float(np.mean([scores[key] for scores in per_case])))
                        for key in per_case[0])
    means["lesion_dice_mean"] = float(np.mean([means["lesion_dice_" + r] for r in REGIONS]))
    means["dice_mean"] = float(np.mean([means["dice_" + r] for r in REGIONS]))
    return means


def _with(settings, step, value):
    sizes = OrderedDict(settings.min_size)
    below = settings.et_to_necrosis_below
    if step in sizes:
        sizes[step] = value
    else:
        below = value
    return PostprocessSettings(sizes, below)


def choose(cases, grid=GRID):
    """Greedy choice of the settings (module docstring).

    Args:
        cases: list of :class:`CaseComponents`.
        grid: step -> values, the first value being off.

    Returns:
        (settings, steps): the chosen :class:`PostprocessSettings` and one OrderedDict per
        step: ``step``, ``scores`` (value -> objective), ``best``, ``kept``.

    Raises:
        ValueError: no case, or an unknown step.
    """
    if not cases:
        raise ValueError("no case to choose postprocessing on")
    unknown = [step for step in grid if step not in REGIONS and step != "et_to_necrosis_below"]
    if unknown:
        raise ValueError("unknown postprocessing step(s): %s" % ", ".join(unknown))
    settings = PostprocessSettings()
    current = mean_scores(cases, settings)["lesion_dice_mean"]
    steps = []
    for step, values in grid.items():
        scores = OrderedDict((value, mean_scores(cases, _with(settings, step, value))
                              ["lesion_dice_mean"]) for value in values)
        best = max(scores, key=lambda value: scores[value])  # the first of equal maxima
        kept = scores[best] > current + MIN_GAIN
        if kept:
            settings, current = _with(settings, step, best), scores[best]
        steps.append(OrderedDict([("step", step), ("scores", scores), ("best", best),
                                  ("kept", kept)]))
    return settings, steps


def choose_postprocessing(cases, pred_paths, convention="auto", grid=GRID):
    """Read every case once and choose the settings on them.

    Args:
        cases: labelled :class:`~generators.brats.Case` objects.
        pred_paths: their prediction files, in the same order.
        convention: label convention of the predictions (``auto``: each case's own).
        grid: see :func:`choose`.

    Returns:
        OrderedDict: ``settings`` (:class:`PostprocessSettings`), ``before`` and ``after``
        (:func:`mean_scores` without and with them), ``steps`` (see :func:`choose`),
        ``num_cases``, ``seconds_reading`` (reading and component analysis) and
        ``seconds_choosing`` (the grid).

    Raises:
        FileNotFoundError, ValueError: as :func:`~densenet3d_keras.evaluation.report.load_pair`.
    """
    started = time.time()
    components = []
    for case, pred_path in zip(cases, pred_paths):
        pred_label, gt_label, _, spacing = load_pair(case, pred_path, convention)
        components.append(case_components(pred_label, gt_label, spacing))
        del pred_label, gt_label
    read = time.time()
    settings, steps = choose(components, grid)
    result = OrderedDict([
        ("settings", settings),
        ("before", mean_scores(components, PostprocessSettings())),
        ("after", mean_scores(components, settings)),
        ("steps", steps),
        ("num_cases", len(components)),
        ("seconds_reading", read - started),
        ("seconds_choosing", time.time() - read),
    ])
    return result
