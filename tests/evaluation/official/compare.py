"""This project's metrics on the hard cases against the official BraTS 2023 script's (expected.json).

``python -m tests.evaluation.official.compare`` scores the cases with ``evaluate_keras.py``'s
library (every challenge) and prints the README table: per metric, how many values were
compared and the largest difference; then, per case, this project's / the official value of
the glioma WT metrics.
"""
import json
import os
import sys
import tempfile
from collections import OrderedDict

from densenet3d_keras.evaluation.report import evaluate_folder
from generators.brats import discover_cases
from tests.evaluation.official.cases import DESCRIPTIONS, write_cases

EXPECTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expected.json")
#: Official column -> this project's metric family; tolerance of the comparison.
COLUMNS = OrderedDict([
    ("Legacy_Dice", ("dice", 1e-3)), ("Legacy_HD95", ("hd95", 0.5)),
    ("Sensitivity", ("sensitivity", 1e-3)), ("Specificity", ("specificity", 1e-3)),
    ("LesionWise_Score_Dice", ("lesion_dice", 1e-3)), ("LesionWise_Score_HD95", ("lesion_hd95", 0.5)),
    ("Num_TP", ("lesion_tp", 0)), ("Num_FP", ("lesion_fp", 0)), ("Num_FN", ("lesion_fn", 0)),
])
#: Official challenge name -> ``--challenge``.
CHALLENGES = OrderedDict([("BraTS-GLI", "GLI"), ("BraTS-SSA", "SSA"), ("BraTS-MEN", "MEN"),
                          ("BraTS-PED", "PED"), ("BraTS-MET", "MET")])


def load_expected():
    """The recorded official results: case -> challenge -> label -> column -> value."""
    with open(EXPECTED) as stream:
        return json.load(stream)["results"]


def score_all(root):
    """This project's rows for the cases under ``root``: challenge -> case -> row."""
    cases = discover_cases(os.path.join(root, "gt"), require_label=True)
    scored = OrderedDict()
    for official, challenge in CHALLENGES.items():
        out = os.path.join(root, "out-" + challenge)
        rows, _ = evaluate_folder(os.path.join(root, "pred"), cases, out, challenge=challenge)
        scored[official] = OrderedDict((row["case"], row) for row in rows)
    return scored


def comparisons(scored, expected):
    """Every compared value: (case, challenge, label, column, ours, official, tolerance)."""
    found = []
    for case_id, by_challenge in expected.items():
        for challenge, by_label in by_challenge.items():
            row = scored[challenge][case_id]
            for label, values in by_label.items():
                for column, (family, tolerance) in COLUMNS.items():
                    ours = row["%s_%s" % (family, label.lower())]
                    found.append((case_id, challenge, label, column, float(ours),
                                  float(values[column]), tolerance))
    return found


def table(found):
    """Markdown lines: per metric, values compared and the largest absolute difference."""
    lines = ["| metric (official column) | values compared | max difference | tolerance |",
             "| --- | ---: | ---: | ---: |"]
    for column, (family, tolerance) in COLUMNS.items():
        diffs = [abs(ours - official) for _, _, _, name, ours, official, _ in found
                 if name == column]
        lines.append("| %s (`%s`) | %d | %.3g | %s |" % (family, column, len(diffs), max(diffs),
                                                      tolerance or "exact"))
    return lines


#: Columns of the per-case table (BraTS-GLI, WT): official column, title, format.
CASE_COLUMNS = (("Legacy_Dice", "Dice", "%.4f"), ("Legacy_HD95", "HD95 mm", "%.2f"),
                ("Sensitivity", "sens.", "%.3f"), ("LesionWise_Score_Dice", "LDice", "%.4f"),
                ("LesionWise_Score_HD95", "LHD95 mm", "%.2f"), ("Num_TP", "TP", "%d"),
                ("Num_FP", "FP", "%d"), ("Num_FN", "FN", "%d"))


def case_table(found, challenge="BraTS-GLI", label="WT"):
    """Markdown lines: per case, this project's / the official value of a few WT metrics."""
    values = dict(((case, column), (ours, official))
                  for case, name, region, column, ours, official, _ in found
                  if name == challenge and region == label)
    lines = ["| case | situation | " + " | ".join(title for _, title, _ in CASE_COLUMNS) + " |",
             "| --- | --- |" + " ---: |" * len(CASE_COLUMNS)]
    for case_id, situation in DESCRIPTIONS.items():
        cells = []
        for column, _, form in CASE_COLUMNS:
            ours, official = values[(case_id, column)]
            cells.append((form + " / " + form) % (ours, official))
        lines.append("| %s | %s | %s |" % (case_id[-9:-4], situation, " | ".join(cells)))
    return lines


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        write_cases(folder)
        found = comparisons(score_all(folder), load_expected())
    sys.stdout.write("\n".join(table(found) + [""] + case_table(found)) + "\n")
