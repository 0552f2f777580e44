"""This project's metrics on the hard 2024 cases against the official BraTS 2024 script's
(``expected_2024.json``).

``python -m tests.evaluation.official.compare_2024`` scores the cases with ``evaluate_keras.py``'s
library (``--label-convention brats2024``) and prints the README table: per metric, how many
values were compared and the largest difference.

Which values are compared: every lesion-wise value (Dice, HD95, true positives, false
positives, misses) and the full-volume Dice of every case and region. The official script
computes the full-volume HD95, sensitivity and specificity on its final *lesion label maps*
(lesion ids 1, 2, ... rather than a 0/1 mask): DeepMind's surface code then sums label values
into its 8-bit neighbour codes and ``get_sensitivity_and_specificity`` counts only voxels
labelled 1 as positives, so those three values mean what they say only where both maps hold at
most one lesion. They are compared there (``labels`` of the recorded results: the official
maps' lesion counts) and not elsewhere; this project scores the 0/1 masks.
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


def score_all(root, merge=True):
    """This project's rows for the cases under ``root``: case -> row.

    ``merge=False`` scores without the merging of touching sub-region lesions (to show that
    the cases need it).
    """
    from densenet3d_keras.evaluation import lesionwise

    cases = discover_cases(os.path.join(root, "gt"), require_label=True)
    saved = lesionwise.MERGED_THROUGH
    if not merge:
        lesionwise.MERGED_THROUGH = OrderedDict()
    try:
        out = os.path.join(root, "out-merged" if merge else "out-unmerged")
        rows, _ = evaluate_folder(os.path.join(root, "pred"), cases, out,
                                  convention="brats2024", challenge="GLI")
    finally:
        lesionwise.MERGED_THROUGH = saved
    return OrderedDict((row["case"], row) for row in rows)


def single_labels(values):
    """The official maps of a region hold at most one lesion each (module docstring)."""
    return max(values["labels"]) <= 1


def comparisons(scored, expected):
    """Every compared value: (case, label, column, ours, official, tolerance)."""
    found = []
    for case_id, by_label in expected.items():
        row = scored[case_id]
        for label, values in by_label.items():
            for column, (family, tolerance) in COLUMNS.items():
                if column in ON_LABEL_MAPS and not single_labels(values):
                    continue
                ours = row["%s_%s" % (family, label.lower())]
                found.append((case_id, label, column, float(ours), float(values[column]),
                              tolerance))
    return found


def table(found):
    """Markdown lines: per metric, values compared and the largest absolute difference."""
    lines = ["| metric (official column) | values compared | max difference | tolerance |",
             "| --- | ---: | ---: | ---: |"]
    for column, (family, tolerance) in COLUMNS.items():
        diffs = [abs(ours - official) for _, _, name, ours, official, _ in found
                 if name == column]
        lines.append("| %s (`%s`) | %d | %.3g | %s |" % (family, column, len(diffs), max(diffs),
                                                      tolerance or "exact"))
    return lines


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
    with tempfile.TemporaryDirectory() as folder:
        write_cases(folder)
        found = comparisons(score_all(folder), load_expected())
    sys.stdout.write("\n".join(table(found) + [""] + case_table(found)) + "\n")
