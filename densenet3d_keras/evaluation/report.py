"""Scoring a folder of predicted label maps against BraTS ground truth.

Predictions are named like BraTS submissions, ``<pred dir>/<case id>.nii.gz`` (``.nii`` is
accepted too); the ground truth is the case folders' ``seg`` files found with
:mod:`generators.brats`. Both label maps are mapped to internal labels (enhancing tumour = 4)
and scored with :func:`densenet3d_keras.evaluation.metrics.evaluate_case` using the ground truth's
voxel size. Which metrics is a *metric set* (:data:`METRIC_SETS`): ``legacy`` (Dice, HD95,
sensitivity, specificity: :data:`~densenet3d_keras.evaluation.metrics.METRIC_NAMES`),
``lesionwise`` (the BraTS 2023 lesion-wise Dice, HD95 and lesion counts of
:mod:`densenet3d_keras.evaluation.lesionwise`, the BraTS 2024 ones for 2024 labels, then NSD
at 1 mm: :data:`~densenet3d_keras.evaluation.metrics.NSD_NAMES`) or ``all`` (legacy, then
lesionwise).

Label conventions: the ground truth's is its file names' (the case layout's) unless its label
values do not fit it, then the later release's they fit (a BraTS 2023 map renamed to 2017
names is read as ``brats2023``; label 4 beside 2023 names, or 1-4 beside 2017 names, as the
BraTS 2024 post-treatment ``brats2024``), with a one-line note. ``auto`` predictions take the
ground truth's convention, or the first of ``brats2017``, ``brats2023``, ``brats2024`` their
values fit. A case read as ``brats2024`` (either side) is scored on the regions of
:data:`~densenet3d_keras.core.labels.REGIONS_2024` with the BraTS 2024 GLI lesion settings;
the others on WT, TC, ET with the ``challenge``'s BraTS 2023 settings
(:mod:`densenet3d_keras.evaluation.challenges`). ``legacy_2024`` (``--brats2024-legacy-metrics``)
says how the HD95, sensitivity and specificity of ``brats2024`` cases are computed: on the 0/1
masks (``masks``, the default) or on the official script's lesion label maps, giving exactly its
values (``official``; :mod:`densenet3d_keras.evaluation.metrics`); it changes nothing for the
other cases.

Outputs, written only once every case has been scored (temporary names, then ``os.replace``,
so a failure leaves no partial file behind):

* ``<out>/metrics.csv``: ``case``, the columns of :func:`metric_names` (lesion counts as
  integers; NaN for a region a case was not scored on) and, with lesion-wise metrics, the
  ``challenge`` settings the row was scored with (``GLI-2023``);
* ``<out>/summary.json``: number of cases, case ids, the metric set, the challenge and its
  lesion settings, ``brats2024_legacy_metrics``, and mean / std / median / count per metric
  (NaN written as ``null``);
* with overlays, ``<out>/overlays/<case>.png`` (see :mod:`densenet3d_keras.evaluation.overlays`).
"""
import csv
import json
import os
import shutil
import sys
import tempfile
from collections import OrderedDict, namedtuple
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from densenet3d_keras.core import memory
from densenet3d_keras.core.fileio import make_output_folder
from densenet3d_keras.core.labels import (LABEL_CONVENTIONS, REGIONS, REGIONS_2024,
                                          detect_convention, to_internal_labels)
from densenet3d_keras.evaluation.challenges import (CHALLENGES, DEFAULT_CHALLENGE,
                                                    lesion_settings, settings_regions)
from densenet3d_keras.evaluation.lesionwise import (COUNT_FAMILIES, evaluate_lesionwise,
                                                    lesion_names, prepare_brats2024)
from densenet3d_keras.evaluation.metrics import (DEFAULT_LEGACY_2024, LEGACY_2024_CHOICES, evaluate_case,
                                                 metric_names as legacy_names, summarise)
from generators.brats import (Case,
                              NIFTI_EXTENSIONS,
                              discover_cases,
                              load_case,
                              split_nifti_extension)
from generators.volumes import AFFINE_TOLERANCE, load_nifti

CONVENTION_CHOICES = ("auto",) + tuple(LABEL_CONVENTIONS)
#: ``--challenge`` values.
CHALLENGE_CHOICES = CHALLENGES
CSV_NAME = "metrics.csv"
SUMMARY_NAME = "summary.json"
OVERLAY_DIR = "overlays"
FLOAT_FORMAT = "%.6f"
#: Metric sets of ``evaluate_keras.py --metrics``.
METRIC_SETS = ("legacy", "lesionwise", "all")
DEFAULT_METRIC_SET = "all"
#: Column naming the lesion-wise settings a row was scored with.
CHALLENGE_COLUMN = "challenge"
#: Prediction conventions ``auto`` tries when the ground truth's does not fit the values.
PREDICTION_FALLBACKS = ("brats2017", "brats2023", "brats2024")


def metric_names(metric_set, regions=REGIONS):
    """The metric columns of a metric set, in ``metrics.csv`` order.

    Args:
        metric_set: one of :data:`METRIC_SETS`.
        regions: the regions scored (``REGIONS``, or ``REGIONS_2024`` for BraTS 2024 labels).

    Raises:
        ValueError: an unknown metric set.
    """
    if metric_set not in METRIC_SETS:
        raise ValueError("unknown metric set %r (choose from %s)"
                         % (metric_set, ", ".join(METRIC_SETS)))
    names = ()
    if metric_set in ("legacy", "all"):
        names += legacy_names(regions)
    if metric_set in ("lesionwise", "all"):
        names += lesion_names(regions) + tuple("nsd_" + region for region in regions)
    return names


def csv_header(metric_set, regions=REGIONS):
    """The header of ``metrics.csv``: ``case``, :func:`metric_names` and, with lesion-wise
    metrics, :data:`CHALLENGE_COLUMN`."""
    extra = (CHALLENGE_COLUMN,) if metric_set != "legacy" else ()
    return ("case",) + metric_names(metric_set, regions) + extra


def check_legacy_2024(legacy_2024):
    """Raise ValueError naming the choices unless ``legacy_2024`` is one of
    :data:`LEGACY_2024_CHOICES`."""
    if legacy_2024 not in LEGACY_2024_CHOICES:
        raise ValueError("unknown BraTS 2024 legacy metrics %r (choose from %s)"
                         % (legacy_2024, ", ".join(LEGACY_2024_CHOICES)))


def find_predictions(pred_dir):
    # type: (str) -> Dict[str, str]
    """Prediction files in a folder, by case id.

    Args:
        pred_dir: folder of ``<case id>.nii.gz`` (or ``.nii``) files.

    Returns:
        OrderedDict ``case id -> path``, sorted by case id; other files are ignored.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: one case has both a ``.nii.gz`` and a ``.nii`` file.
    """
    if not os.path.isdir(pred_dir):
        raise FileNotFoundError("prediction folder not found: %s" % pred_dir)
    found = OrderedDict()
    for name in sorted(os.listdir(pred_dir)):
        path = os.path.join(pred_dir, name)
        stem, extension = split_nifti_extension(name)
        if not extension or not stem or not os.path.isfile(path):
            continue
        if stem in found:
            raise ValueError("two predictions for case %s: %s and %s" % (stem, found[stem], path))
        found[stem] = path
    return OrderedDict(sorted(found.items()))


def select_cases(pred_dir, gt_root, names=None, skip_incomplete=False):
    # type: (str, str, Optional[Sequence[str]], bool) -> Tuple[List[Case], List[str], List[str]]
    """Pair predictions with labelled ground-truth cases.

    Args:
        pred_dir: folder of ``<case id>.nii.gz`` predictions.
        gt_root: dataset root holding one folder per case.
        names: case ids to evaluate (e.g. from ``test.txt``); every one must have a prediction
            and a label map. ``None`` evaluates the cases present on both sides.
        skip_incomplete: without ``names``, leave out (and report on stderr) folders under
            ``gt_root`` that are not complete cases instead of raising
            (:func:`generators.brats.discover_cases`).

    Returns:
        (cases, predictions without ground truth, ground-truth cases without prediction); the
        two skipped lists are empty when ``names`` is given (predictions outside the list
        are not reported).

    Raises:
        FileNotFoundError: a folder, a listed case, a listed case's prediction or a selected
            case's label map is missing, or no case has both.
    """
    predictions = find_predictions(pred_dir)
    if names is not None:
        cases = discover_cases(gt_root, names, require_label=True)
        missing = [case.case_id for case in cases if case.case_id not in predictions]
        if missing:
            raise FileNotFoundError(
                "no prediction for %d listed case(s) in %s: %s (expected <case>.nii.gz)"
                % (len(missing), pred_dir, _short_list(missing)))
        return cases, [], []
    available = discover_cases(gt_root, None, require_label=False,
                               skip_incomplete=skip_incomplete)
    by_id = OrderedDict((case.case_id, case) for case in available)
    cases = [load_case(case.directory, require_label=True)
             for case in available if case.case_id in predictions]
    if not cases:
        raise FileNotFoundError("none of the %d prediction(s) in %s matches a case folder in %s"
                                % (len(predictions), pred_dir, gt_root))
    extra = [case_id for case_id in predictions if case_id not in by_id]
    unpredicted = [case_id for case_id in by_id if case_id not in predictions]
    return cases, extra, unpredicted


def prediction_path(pred_dir, case_id):
    """Path of a case's prediction, ``<pred dir>/<case id>.nii.gz`` (or ``.nii``).

    Raises:
        FileNotFoundError: neither file exists.
    """
    for extension in NIFTI_EXTENSIONS:
        path = os.path.join(pred_dir, case_id + extension)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError("no prediction for case %s: %s.nii.gz"
                            % (case_id, os.path.join(pred_dir, case_id)))


def load_label_map(path, convention, what):
    """Read a label map of a known convention and map it to internal labels.

    Args:
        path: NIfTI file.
        convention: one of :data:`~densenet3d_keras.core.labels.LABEL_CONVENTIONS`.
        what: how the message names the file, e.g. ``"prediction for case X"``.

    Returns:
        (uint8 internal label array, nibabel image).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is corrupt, not 3-D, non-integer or has labels outside the
            convention.
    """
    label, image, _, _ = read_label_map(path, convention, what, fallbacks=())
    return label, image


def read_label_map(path, convention, what, fallbacks=None):
    """Read a label map, find its convention from its values, map it to internal labels.

    Args:
        path: NIfTI file.
        convention: the convention its names (or the ground truth) suggest.
        what: how messages name the file, e.g. ``"prediction for case X"``.
        fallbacks: conventions to try when the values do not fit ``convention``
            (:func:`~densenet3d_keras.core.labels.detect_convention`; default the later
            releases, ``()`` none).

    Returns:
        (uint8 internal label array, nibabel image, convention read, note): the note is a
        line naming the file when the convention is not ``convention``, else ``None``.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: the file is corrupt, not 3-D, non-integer or its labels fit no convention
            tried.
    """
    raw, image = load_nifti(path)
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)) or not np.all(np.mod(raw, 1) == 0):
            raise ValueError("%s %s has non-integer values" % (what, path))
    raw = raw.astype(np.int64)
    read_as, note = detect_convention(np.unique(raw), convention, fallbacks)
    try:
        label = to_internal_labels(raw, read_as)
    except ValueError as error:
        raise ValueError("%s %s: %s" % (what, path, error))
    if note is not None:
        note = "%s %s: %s" % (what, path, note)
    return label, image, read_as, note


def _report_note(line):
    sys.stderr.write("note: %s\n" % line)
    sys.stderr.flush()


class ScoringPair(namedtuple("ScoringPair", "pred_label gt_label gt_image spacing "
                                            "gt_convention pred_convention")):
    """A prediction and its ground truth read for scoring (:func:`read_pair`).

    Attributes:
        pred_label, gt_label: uint8 internal label maps (3 = resection cavity, brats2024 only).
        gt_image: the ground truth's nibabel image.
        spacing: its voxel size in mm.
        gt_convention, pred_convention: the conventions the two files were read as.
    """

    @property
    def brats2024(self):
        """Either side was read as BraTS 2024 post-treatment labels."""
        return "brats2024" in (self.gt_convention, self.pred_convention)


def load_pair(case, pred_path, convention="auto"):
    """Read a prediction and its case's label map, both as internal labels on one grid.

    Args:
        case: labelled :class:`~generators.brats.Case`.
        pred_path: the prediction NIfTI.
        convention: label convention of the prediction; ``auto`` as :func:`read_pair`.

    Returns:
        (pred_label, gt_label, gt_image, spacing): uint8 internal label maps, the ground
        truth's nibabel image and its voxel size in mm.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_pair`.
    """
    pair = read_pair(case, pred_path, convention)
    return pair.pred_label, pair.gt_label, pair.gt_image, pair.spacing


def read_pair(case, pred_path, convention="auto", on_note=None):
    """Read a prediction and its case's label map for scoring (module docstring: conventions).

    Args:
        case: labelled :class:`~generators.brats.Case`.
        pred_path: the prediction NIfTI.
        convention: label convention of the prediction; ``auto``: the ground truth's, or the
            first of :data:`PREDICTION_FALLBACKS` its values fit.
        on_note: called with a line when a file is read in another convention than its names
            (or the ground truth) suggest; default: ``note: ...`` on stderr.

    Returns:
        :class:`ScoringPair`.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a corrupt file, bad labels, or a prediction whose shape or affine differs
            from the ground truth's (the message names the case).
    """
    if case.label is None:
        raise FileNotFoundError("case %s has no label map" % case.case_id)
    note = on_note or _report_note
    gt_label, gt_image, gt_convention, gt_note = read_label_map(
        case.label, case.label_convention, "ground truth of case %s" % case.case_id)
    if convention == "auto":
        pred_convention = gt_convention
        fallbacks = tuple(c for c in PREDICTION_FALLBACKS if c != gt_convention)
    else:
        pred_convention, fallbacks = convention, ()
    pred_label, pred_image, pred_convention, pred_note = read_label_map(
        pred_path, pred_convention, "prediction for case %s" % case.case_id, fallbacks)
    for line in (gt_note, pred_note):
        if line is not None:
            note(line)
    if pred_label.shape != gt_label.shape:
        raise ValueError("case %s: prediction %s has shape %s but the ground truth %s has shape %s"
                         % (case.case_id, pred_path, pred_label.shape, case.label, gt_label.shape))
    if not np.allclose(pred_image.affine, gt_image.affine, atol=AFFINE_TOLERANCE):
        raise ValueError("case %s: prediction %s is on a different grid (affine) from the ground "
                         "truth %s" % (case.case_id, pred_path, case.label))
    spacing = tuple(float(z) for z in gt_image.header.get_zooms()[:3])
    return ScoringPair(pred_label, gt_label, gt_image, spacing, gt_convention, pred_convention)


def score_labels(pred_label, gt_label, spacing, metric_set=DEFAULT_METRIC_SET, settings=None,
                 legacy_2024=DEFAULT_LEGACY_2024):
    """The metrics of a metric set for one pair of internal label maps.

    Args:
        pred_label, gt_label: internal label maps of one shape.
        spacing: voxel size in mm.
        metric_set: one of :data:`METRIC_SETS`.
        settings: :class:`~densenet3d_keras.evaluation.challenges.LesionSettings` (default
            BraTS 2023 GLI); its regions are the ones scored.
        legacy_2024: one of :data:`LEGACY_2024_CHOICES`: with BraTS 2024 settings, ``official``
            computes HD95, sensitivity and specificity on the official script's lesion label
            maps, ``masks`` on the 0/1 masks; no effect with other settings.

    Returns:
        OrderedDict with the keys of :func:`metric_names` ``(metric_set, regions)``.

    Raises:
        ValueError: an unknown metric set or ``legacy_2024``, different shapes, bad labels or
            spacing.
    """
    check_legacy_2024(legacy_2024)
    settings = settings or lesion_settings()
    regions = settings_regions(settings)
    names = metric_names(metric_set, regions)
    with_lesions = metric_set != "legacy"
    prepared = pred_masks = label_maps = None
    if settings.brats2024:
        # The 2024 script deletes small predicted lesions before every metric.
        prepared = prepare_brats2024(pred_label, gt_label, spacing, settings)
        pred_masks = OrderedDict((region, part.pred_mask) for region, part in prepared.items())
        if legacy_2024 == "official":
            label_maps = OrderedDict((region, part.label_maps) for region, part in prepared.items())
    row = evaluate_case(pred_label, gt_label, spacing, with_nsd=with_lesions, regions=regions,
                        pred_masks=pred_masks, hd95_penalty=settings.missed_hd95,
                        label_maps=label_maps)
    if with_lesions:
        row.update(evaluate_lesionwise(pred_label, gt_label, spacing, settings, prepared))
    return OrderedDict((name, row[name]) for name in names)


def evaluate_prediction(case, pred_path, convention="auto", metric_set=DEFAULT_METRIC_SET,
                        challenge=DEFAULT_CHALLENGE, on_note=None, legacy_2024=DEFAULT_LEGACY_2024):
    """Score one prediction file against a case's label map.

    Args:
        case: labelled :class:`~generators.brats.Case`.
        pred_path: the prediction NIfTI.
        convention: label convention of the prediction (``auto``: :func:`read_pair`).
        metric_set: one of :data:`METRIC_SETS`.
        challenge: one of :data:`~densenet3d_keras.evaluation.challenges.CHALLENGES`, whose
            lesion-wise settings apply (BraTS 2024 labels: the 2024 GLI ones).
        on_note: as :func:`read_pair`.
        legacy_2024: as :func:`score_labels`.

    Returns:
        (row, pred_label, gt_label, gt_image): the metrics OrderedDict (``case`` first, then
        :func:`metric_names` of the case's regions, then with lesion-wise metrics the
        ``challenge`` settings name), both internal label maps and the ground truth's image.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a corrupt file, bad labels, a challenge that does not apply, or a
            prediction whose shape or affine differs from the ground truth's (the message
            names the case).
    """
    pair = read_pair(case, pred_path, convention, on_note)
    try:
        settings = lesion_settings(challenge, "brats2024" if pair.brats2024 else "brats2023")
        metrics = score_labels(pair.pred_label, pair.gt_label, pair.spacing, metric_set, settings,
                               legacy_2024)
    except ValueError as error:
        raise ValueError("case %s: %s" % (case.case_id, error))
    row = OrderedDict([("case", case.case_id)])
    row.update(metrics)
    if metric_set != "legacy":
        row[CHALLENGE_COLUMN] = settings.name
    return row, pair.pred_label, pair.gt_label, pair.gt_image


def _overlay(case, pred_label, gt_label, gt_image, row, path):
    from densenet3d_keras.evaluation.overlays import to_canonical, write_overlay

    flair, flair_image = load_nifti(case.images["flair"], np.float32)
    if flair.shape != gt_label.shape:
        raise ValueError("case %s: flair %s has shape %s but the label map has %s"
                         % (case.case_id, case.images["flair"], flair.shape, gt_label.shape))
    spacing = tuple(float(z) for z in gt_image.header.get_zooms()[:3])
    (flair, gt_label, pred_label), spacing = to_canonical(
        [flair, gt_label, pred_label], gt_image.affine, spacing)
    prefix = "" if "dice_wt" in row else "lesion_"
    title = "%s   %sDice WT %.3f  TC %.3f  ET %.3f   HD95 WT %.1f mm" % (
        case.case_id, "lesion-wise " if prefix else "", row[prefix + "dice_wt"],
        row[prefix + "dice_tc"], row[prefix + "dice_et"], row[prefix + "hd95_wt"])
    write_overlay(path, flair, gt_label, pred_label, spacing, title)


def _format(name, value):
    if name == CHALLENGE_COLUMN:
        return value
    if isinstance(value, float) and np.isnan(value):
        return "nan"
    if name.rsplit("_", 1)[0] in COUNT_FAMILIES:
        return "%d" % value
    return FLOAT_FORMAT % value


def _write_csv(path, rows, metric_set, regions=REGIONS):
    header = csv_header(metric_set, regions)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row["case"]] + [_format(name, row[name]) for name in header[1:]])


def _json_safe(value):
    if isinstance(value, dict):
        return OrderedDict((key, _json_safe(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _write_json(path, summary):
    with open(path, "w") as stream:
        json.dump(_json_safe(summary), stream, indent=2, allow_nan=False)
        stream.write("\n")


def evaluate_folder(pred_dir, cases, out_dir, convention="auto", overlays=False, progress=None,
                    metric_set=DEFAULT_METRIC_SET, challenge=DEFAULT_CHALLENGE, on_note=None,
                    legacy_2024=DEFAULT_LEGACY_2024):
    # type: (str, Sequence[Case], str, str, bool, Optional[Callable[[int, int, Dict[str, object]], None]], str, str, Optional[Callable[[str], None]], str) -> Tuple[List[Dict[str, object]], Dict[str, object]]
    """Score every case's prediction and write ``metrics.csv``, ``summary.json`` (and overlays).

    Nothing is written until every case has been scored; then each file goes to a temporary
    name in ``out_dir`` and is renamed into place. On failure or interrupt (``KeyboardInterrupt``,
    re-raised) no output file of this call is left, even one already renamed into place, and
    an ``out_dir`` created by this call is removed again if empty.

    Args:
        pred_dir: folder of ``<case id>.nii.gz`` predictions.
        cases: labelled :class:`~generators.brats.Case` objects (see :func:`select_cases`).
        out_dir: output folder, created if missing.
        convention: label convention of the predictions: ``auto`` (the ground truth's, or
            what the values fit: :func:`read_pair`), ``brats2017`` (enhancing = 4),
            ``brats2023`` (enhancing = 3) or ``brats2024`` (3 enhancing, 4 resection cavity).
        overlays: also write ``<out_dir>/overlays/<case>.png``.
        progress: called as ``progress(index, total, row)`` after each case (index from 1).
        metric_set: one of :data:`METRIC_SETS` (``legacy``, ``lesionwise``, ``all``).
        challenge: whose lesion-wise settings apply
            (:data:`~densenet3d_keras.evaluation.challenges.CHALLENGES`).
        on_note: called with a line for each file read in another convention than its names
            suggest, and for each case whose scoring may need more memory than is available
            (:mod:`densenet3d_keras.core.memory`) (default: stderr).
        legacy_2024: ``masks`` or ``official`` (:data:`LEGACY_2024_CHOICES`): how HD95,
            sensitivity and specificity of BraTS 2024 cases are computed (:func:`score_labels`).

    Returns:
        (rows, summary): one OrderedDict per case (``case`` then the metrics) and the dict
        written to ``summary.json`` (``num_cases``, ``cases``, ``label_convention``,
        ``metric_set``, ``challenge``, ``brats2024_legacy_metrics``, ``regions``,
        ``lesion_settings``: settings name -> dilation and volume thresholds, ``hd95``: the
        definition, ``metrics``: metric -> mean / std / median / count).

    Raises:
        FileNotFoundError: the prediction folder, a prediction or a ground-truth file is missing.
        ValueError: an unknown convention, metric set, challenge or ``legacy_2024``, no case, a
            corrupt file, bad labels, or a shape or affine mismatch (messages name the case).
        OSError: the output folder cannot be created or written.
    """
    if convention not in CONVENTION_CHOICES:
        raise ValueError("unknown label convention %r (choose from %s)"
                         % (convention, ", ".join(CONVENTION_CHOICES)))
    metric_names(metric_set)
    lesion_settings(challenge)
    check_legacy_2024(legacy_2024)
    if not os.path.isdir(pred_dir):
        raise FileNotFoundError("prediction folder not found: %s" % pred_dir)
    cases = list(cases)
    if not cases:
        raise ValueError("no case to evaluate")
    unlabelled = [case.case_id for case in cases if case.label is None]
    if unlabelled:
        raise FileNotFoundError("no label map for %d case(s): %s"
                                % (len(unlabelled), _short_list(unlabelled)))
    pred_paths = [prediction_path(pred_dir, case.case_id) for case in cases]

    created = make_output_folder(out_dir)
    try:
        staging = tempfile.mkdtemp(prefix=".evaluate-", dir=out_dir)
    except OSError as error:
        _remove_if_created(out_dir, created)
        raise OSError("cannot write to output folder %s: %s" % (out_dir, error.strerror or error))
    placed = []  # outputs already renamed into place, removed again if the run fails
    overlay_dir = os.path.join(out_dir, OVERLAY_DIR)
    overlay_dir_created = False
    try:
        rows, summary = _score_cases(cases, pred_paths, convention, overlays and staging,
                                     progress, (metric_set, challenge, on_note, legacy_2024))
        _write_csv(os.path.join(staging, CSV_NAME), rows, metric_set,
                   REGIONS_2024 if "rc" in summary["regions"] else REGIONS)
        _write_json(os.path.join(staging, SUMMARY_NAME), summary)
        if overlays:
            overlay_dir_created = make_output_folder(overlay_dir)
            for row in rows:
                name = row["case"] + ".png"
                os.replace(os.path.join(staging, name), os.path.join(overlay_dir, name))
                placed.append(os.path.join(overlay_dir, name))
        for name in (CSV_NAME, SUMMARY_NAME):
            os.replace(os.path.join(staging, name), os.path.join(out_dir, name))
            placed.append(os.path.join(out_dir, name))
    except BaseException:
        # Failed or interrupted (Ctrl-C) even while renaming: no metrics.csv without its
        # summary.json, no overlays without both, and a folder this call made goes again.
        for path in placed:
            try:
                os.remove(path)
            except OSError:
                pass
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_created(overlay_dir, overlay_dir_created)
        _remove_if_created(out_dir, created)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return rows, summary


#: How summary.json names the HD95 definition.
HD95_DEFINITION = ("BraTS 2023 (surface-distance compute_robust_hausdorff: max of the two "
                   "directed area-weighted 95th percentiles; 374 mm when one mask is empty)")


def _warn_memory(case, on_note):
    """A warning line (through ``on_note``, default stderr) when scoring ``case`` may need
    more memory than is available."""
    shape = memory.grid_shape(case.label)
    if shape is None:
        return
    memory.warn_if_short(on_note or _report_note, "scoring case %s (%s)"
                         % (case.case_id, memory.describe_shape(shape)), memory.evaluate_bytes(shape))


def _score_cases(cases, pred_paths, convention, overlay_dir, progress, options):
    """Score every case (overlay PNGs into ``overlay_dir`` unless it is falsy): (rows, summary).

    ``options`` is (metric set, challenge, on_note, legacy_2024). Rows of cases scored on fewer
    regions than others get NaN for the missing ones.
    """
    metric_set, challenge, on_note, legacy_2024 = options
    rows = []
    for index, (case, pred_path) in enumerate(zip(cases, pred_paths)):
        _warn_memory(case, on_note)
        row, pred_label, gt_label, gt_image = evaluate_prediction(
            case, pred_path, convention, metric_set, challenge, on_note, legacy_2024)
        if overlay_dir:
            _overlay(case, pred_label, gt_label, gt_image, row,
                     os.path.join(overlay_dir, case.case_id + ".png"))
        rows.append(row)
        if progress is not None:
            progress(index + 1, len(cases), row)
    regions = REGIONS_2024 if any("dice_rc" in row or "nsd_rc" in row for row in rows) else REGIONS
    names = metric_names(metric_set, regions)
    for row in rows:
        for name in names:
            row.setdefault(name, float("nan"))
    used = OrderedDict()
    if metric_set != "legacy":
        for row in rows:
            settings = lesion_settings(challenge, "brats2024" if row[CHALLENGE_COLUMN]
                                       .endswith("2024") else "brats2023")
            used[settings.name] = settings.describe()
    summary = OrderedDict([
        ("num_cases", len(rows)),
        ("cases", [row["case"] for row in rows]),
        ("label_convention", convention),
        ("metric_set", metric_set),
        ("challenge", challenge),
        ("brats2024_legacy_metrics", legacy_2024),
        ("regions", list(regions)),
        ("lesion_settings", used),
        ("hd95", HD95_DEFINITION),
        ("metrics", summarise(rows, names)),
    ])
    return rows, summary


def _remove_if_created(out_dir, created):
    if created:
        try:
            os.rmdir(out_dir)
        except OSError:
            pass


def _short_list(names, limit=5):
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += ", ... (%d more)" % (len(names) - limit)
    return shown
