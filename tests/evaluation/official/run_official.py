"""Score the hard cases with the official BraTS 2023 script; print its results as JSON.

Not part of the test suite: it runs once, in a separate environment, to record
``expected.json``. The official code is not in this repository; it is
https://github.com/rachitsaluja/BraTS-2023-Metrics, ``eval.py`` (``get_LesionWiseResults``) with
the DeepMind ``surface_distance`` package it bundles
(``brats_2023_metrics/surface_distance/{metrics,lookup_tables}.py``, importable as
``surface_distance`` beside ``eval.py``). It needs pandas < 2 (``DataFrame.append``)::

    python3 -m venv /tmp/brats_official
    /tmp/brats_official/bin/pip install 'pandas<2' 'numpy<1.24' 'scipy<1.12' \\
        connected-components-3d nibabel
    # /tmp/brats_official_src: eval.py and surface_distance/ from the repository above
    python -m tests.evaluation.official.cases /tmp/official_cases
    /tmp/brats_official/bin/python tests/evaluation/official/run_official.py \\
        /tmp/official_cases /tmp/brats_official_src > tests/evaluation/official/expected.json

Usage: ``run_official.py <cases root> <folder holding eval.py and surface_distance/>``.
"""
import json
import os
import sys
from collections import OrderedDict

CHALLENGES = ("BraTS-GLI", "BraTS-SSA", "BraTS-MEN", "BraTS-PED", "BraTS-MET")
COLUMNS = ("Num_TP", "Num_FP", "Num_FN", "Sensitivity", "Specificity", "Legacy_Dice",
           "Legacy_HD95", "LesionWise_Score_Dice", "LesionWise_Score_HD95")


def versions(*extra):
    """Versions of the packages the official script ran with (and of the ``extra``
    distributions, by name)."""
    from importlib.metadata import version  # novermin (runs on the official environment)

    import nibabel
    import numpy
    import pandas
    import scipy

    found = OrderedDict([("python", sys.version.split()[0]), ("numpy", numpy.__version__),
                         ("pandas", pandas.__version__), ("scipy", scipy.__version__),
                         ("nibabel", nibabel.__version__),
                         ("connected-components-3d", version("connected-components-3d"))])
    for name in extra:
        found[name] = version(name)
    return found


def print_results(source, command, results, environment):
    """The JSON record of an official run on stdout: where the code came from, the command,
    the environment and the results."""
    output = OrderedDict([("source", source), ("command", command), ("environment", environment),
                          ("results", results)])
    json.dump(output, sys.stdout, indent=1)
    sys.stdout.write("\n")


def score(official, root, case_id, challenge):
    """The official results of one case: label -> column -> value."""
    gt = os.path.join(root, "gt", case_id, case_id + "-seg.nii.gz")
    pred = os.path.join(root, "pred", case_id + ".nii.gz")
    table = official.get_LesionWiseResults(pred, gt, challenge)
    results = OrderedDict()
    for _, row in table.iterrows():
        results[row["Labels"]] = OrderedDict(
            (column, int(row[column]) if column.startswith("Num_") else float(row[column]))
            for column in COLUMNS)
    return results


def main(root, source):
    sys.path.insert(0, source)
    import eval as official  # noqa: E402  (the official eval.py)

    cases = sorted(os.listdir(os.path.join(root, "gt")))
    results = OrderedDict()
    for case_id in cases:
        results[case_id] = OrderedDict((challenge, score(official, root, case_id, challenge))
                                       for challenge in CHALLENGES)
    print_results("rachitsaluja/BraTS-2023-Metrics eval.py get_LesionWiseResults with its "
                  "bundled surface_distance, run unmodified",
                  "python -m tests.evaluation.official.cases /tmp/official_cases && "
                  "/tmp/brats_official/bin/python tests/evaluation/official/run_official.py "
                  "/tmp/official_cases /tmp/brats_official_src", results, versions())

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
