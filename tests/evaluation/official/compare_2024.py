"""This project's metrics on the hard 2024 cases against the official BraTS 2024 script's
(``expected_2024.json``).

``python -m tests.evaluation.official.compare_2024`` scores the cases with ``evaluate_keras.py``'s
library (``--label-convention brats2024``), once with each ``--brats2024-legacy-metrics``
(``masks``, the default, and ``official``), and prints the README table: per metric, how many
values were compared and the largest difference, for both.

Which values are compared: every lesion-wise value (Dice, HD95, true positives, false
positives, misses) and the full-volume Dice of every case and region. The official script
computes the full-volume HD95, sensitivity and specificity on its final *lesion label maps*
(lesion ids 1, 2, ... rather than a 0/1 mask): DeepMind's surface code then sums label values
into its 8-bit neighbour codes and ``get_sensitivity_and_specificity`` counts only voxels
labelled 1 as positives, so those three values mean what they say only where both maps hold at
most one lesion. They are compared there (``labels`` of the recorded results: the official
maps' lesion counts) and not elsewhere; this project scores the 0/1 masks by default. With
``official`` this project computes them on the official maps too, and they are compared
everywhere.
"""
import json
import os
import sys
import tempfile
from collections import OrderedDict

from densenet3d_keras.evaluation.report import evaluate_folder
from generators.brats import discover_cases
from tests.evaluation.official.cases_2024 import DESCRIPTIONS, write_cases

EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected_2024.json")
#: Official column -> this project's metric family; tolerance of the comparison.
COLUMNS = OrderedDict([
    ("Legacy_Dice", ("dice", 1e-3)), ("Legacy_HD95", ("hd95", 0.5)),
    ("Sensitivity", ("sensitivity", 1e-3)), ("Specificity", ("specificity", 1e-3)),
    ("LesionWise_Score_Dice", ("lesion_dice", 1e-3)),
    ("LesionWise_Score_HD95", ("lesion_hd95", 0.5)),
    ("Num_TP", ("lesion_tp", 0)), ("Num_FP", ("lesion_fp", 0)), ("Num_FN", ("lesion_fn", 0)),
])
#: Columns the official script computes on lesion label maps (module docstring).
ON_LABEL_MAPS = ("Legacy_HD95", "Sensitivity", "Specificity")
LABELS = ("WT", "TC", "NETC", "SNFH", "ET", "RC")


def load_expected():
    """The recorded official results: case -> label -> column -> value."""
    with open(EXPECTED) as stream:
        return json.load(stream)["results"]


def score_all(root, merge=True, legacy_2024="masks"):
    """This project's rows for the cases under ``root``: case -> row.

    ``merge=False`` scores without the merging of touching sub-region lesions (to show that
    the cases need it); ``legacy_2024`` is ``--brats2024-legacy-metrics``.
    """
    from densenet3d_keras.evaluation import lesionwise

    cases = discover_cases(os.path.join(root, "gt"), require_label=True)
    saved = lesionwise.MERGED_THROUGH
    if not merge:
        lesionwise.MERGED_THROUGH = OrderedDict()
    try:
        out = os.path.join(root, "out-%s-%s" % ("merged" if merge else "unmerged", legacy_2024))
        rows, _ = evaluate_folder(os.path.join(root, "pred"), cases, out,
                                  convention="brats2024", challenge="GLI",
                                  legacy_2024=legacy_2024)
    finally:
        lesionwise.MERGED_THROUGH = saved
    return OrderedDict((row["case"], row) for row in rows)


def single_labels(values):
    """The official maps of a region hold at most one lesion each (module docstring)."""
    return max(values["labels"]) <= 1


def comparisons(scored, expected, everywhere=False):
    """Every compared value: (case, label, column, ours, official, tolerance).

    The :data:`ON_LABEL_MAPS` columns only where :func:`single_labels`, unless ``everywhere``
    (``scored`` with ``--brats2024-legacy-metrics official``).
    """
    found = []
    for case_id, by_label in expected.items():
        row = scored[case_id]
        for label, values in by_label.items():
            for column, (family, tolerance) in COLUMNS.items():
                if column in ON_LABEL_MAPS and not (everywhere or single_labels(values)):
                    continue
                ours = row["%s_%s" % (family, label.lower())]
                found.append((case_id, label, column, float(ours), float(values[column]),
                              tolerance))
    return found


def differences(found, column):
    """The absolute differences of one column's compared values."""
    return [abs(ours - official) for _, _, name, ours, official, _ in found if name == column]


def table(found, found_official):
    """Markdown lines: per metric, values compared and the largest absolute difference, with
    ``masks`` (``found``) and ``official`` (``found_official``, compared everywhere)."""
    lines = ["| metric (official column) | masks: compared | max difference | official: compared "
             "| max difference | tolerance |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for column, (family, tolerance) in COLUMNS.items():
        cells = []
        for values in (found, found_official):
            diffs = differences(values, column)
            cells.append("%d | %.3g" % (len(diffs), max(diffs)))
        lines.append("| %s (`%s`) | %s | %s |" % (family, column, " | ".join(cells),
                                                tolerance or "exact"))
    return lines


def wrong(found):
    """The compared values outside their tolerance."""
    return [item for item in found if abs(item[3] - item[4]) > item[5]]


def masks_note(scored_masks, expected):
    """A line: how the ``masks`` values differ from the official ones where the official maps
    hold two lesions or more."""
    multi = [item for item in comparisons(scored_masks, expected, everywhere=True)
             if item[2] in ON_LABEL_MAPS and not single_labels(expected[item[0]][item[1]])]
    regions = set(item[:2] for item in multi)
    changed = [item for item in multi if abs(item[3] - item[4]) > 1e-9]
    largest = dict((column, max(differences(multi, column))) for column in ON_LABEL_MAPS)
    return ("With masks, on the %d case-regions where the official maps hold two lesions or more, "
            "%d of their %d HD95, sensitivity and specificity values differ from the official ones, "
            "%d beyond the tolerance (largest differences: HD95 %.3g mm, sensitivity %.3g, "
            "specificity %.3g)." % (len(regions), len(changed), len(multi), len(wrong(multi)),
                                    largest["Legacy_HD95"], largest["Sensitivity"],
                                    largest["Specificity"]))


def case_table(found):
    """Markdown lines: per case, this project's / the official lesion-wise Dice per region."""
    values = dict(((case, label), (ours, official))
                  for case, label, column, ours, official, _ in found
                  if column == "LesionWise_Score_Dice")
    lines = ["| case | situation | " + " | ".join(LABELS) + " |",
             "| --- | --- |" + " ---: |" * len(LABELS)]
    for case_id, situation in DESCRIPTIONS.items():
        cells = ["%.3f / %.3f" % values[(case_id, label)] for label in LABELS]
        lines.append("| %s | %s | %s |" % (case_id[-9:-4], situation, " | ".join(cells)))
    return lines


if __name__ == "__main__":
    expected_values = load_expected()
    with tempfile.TemporaryDirectory() as folder:
        write_cases(folder)
        scored = score_all(folder)
        found_masks = comparisons(scored, expected_values)
        found_official = comparisons(score_all(folder, legacy_2024="official"), expected_values,
                                     everywhere=True)
    sys.stdout.write("\n".join(table(found_masks, found_official) + ["", masks_note(
        scored, expected_values), ""] + case_table(found_masks)) + "\n")
