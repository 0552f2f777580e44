"""Score the hard 2024 cases with the official BraTS 2024 script; print its results as JSON.

Not part of the test suite: it runs once, in a separate environment, to record
``expected_2024.json``. The official code is not in this repository; it is
https://github.com/rachitsaluja/BraTS-2024-Metrics, ``metrics_GLI.py`` (commit 9e8879a, the
latest version stored; ``get_LesionWiseResults`` with ``challenge_name="BraTS-GLI"``), run
unmodified. It imports ``surface_distance``, which that repository does not ship: the copy
bundled with BraTS-2023-Metrics (``brats_2023_metrics/surface_distance``) sits beside it. The
environment follows the repository's ``requirements.txt``::

    python3.10 -m venv /tmp/brats2024_official
    /tmp/brats2024_official/bin/pip install connected_components_3d==3.12.1 MedPy==0.5.2 \\
        nibabel==5.0.1 numpy==1.26.4 pandas==2.2.3 scipy==1.10.1
    # /tmp/brats2024_official_src: metrics_GLI.py and surface_distance/ (see above)
    python -m tests.evaluation.official.cases_2024 /tmp/official_cases_2024
    /tmp/brats2024_official/bin/python tests/evaluation/official/run_official_2024.py \\
        /tmp/official_cases_2024 /tmp/brats2024_official_src \\
        > tests/evaluation/official/expected_2024.json

The script writes its intermediate label maps under ``./tmp_gt`` and ``./tmp_pred``; this runner
gives it a fresh temporary working folder and records, beside its results, how many lesions
(labels) its final maps of each region hold (``labels``: ground truth, prediction), which tells
where its full-volume HD95, sensitivity and specificity are computed on more than one label
value (see ``compare_2024.py``).

Usage: ``run_official_2024.py <cases root> <folder holding metrics_GLI.py and surface_distance/>``.
"""
import os
import sys
import tempfile
from collections import OrderedDict

from run_official import print_results, versions  # beside this script (run by its path)

COLUMNS = ("Num_TP", "Num_FP", "Num_FN", "Sensitivity", "Specificity", "Legacy_Dice",
           "Legacy_HD95", "Legacy NSD @ 0.5", "Legacy NSD @ 1.0", "GT_Complete_Volume",
           "LesionWise_Score_Dice", "LesionWise_Score_HD95", "LesionWise_Score_NSD @ 0.5",
           "LesionWise_Score_NSD @ 1.0")
LABELS = ("WT", "TC", "NETC", "SNFH", "ET", "RC")


def _label_count(path):
    import nibabel
    import numpy

    data = numpy.asarray(nibabel.load(path).get_fdata())
    return int(numpy.unique(data[data > 0]).size)


def score(official, root, case_id):
    """The official results of one case: label -> column -> value (and ``labels``)."""
    gt = os.path.join(root, "gt", case_id, case_id + "-seg.nii.gz")
    pred = os.path.join(root, "pred", case_id + ".nii.gz")
    table, _ = official.get_LesionWiseResults(pred, gt, "BraTS-GLI")
    results = OrderedDict()
    for _, row in table.iterrows():
        label = row["Labels"]
        values = OrderedDict(
            (column, int(row[column]) if column.startswith("Num_") else float(row[column]))
            for column in COLUMNS)
        values["labels"] = [
            _label_count("./tmp_gt/%s-seg/%s-seg_%s_cc_combined.nii.gz" % (case_id, case_id, label)),
            _label_count("./tmp_pred/%s/%s_%s_cc_combined.nii.gz" % (case_id, case_id, label))]
        results[label] = values
    return results


def main(root, source):
    root = os.path.abspath(root)
    sys.path.insert(0, os.path.abspath(source))
    import metrics_GLI as official  # noqa: E402  (the official metrics_GLI.py)

    cases = sorted(os.listdir(os.path.join(root, "gt")))
    results = OrderedDict()
    with tempfile.TemporaryDirectory() as work:
        os.chdir(work)
        for case_id in cases:
            results[case_id] = score(official, root, case_id)
    print_results("rachitsaluja/BraTS-2024-Metrics metrics_GLI.py (commit 9e8879a) "
                  "get_LesionWiseResults(pred, gt, 'BraTS-GLI') with BraTS-2023-Metrics' "
                  "bundled surface_distance, run unmodified",
                  "python -m tests.evaluation.official.cases_2024 /tmp/official_cases_2024 && "
                  "/tmp/brats2024_official/bin/python "
                  "tests/evaluation/official/run_official_2024.py /tmp/official_cases_2024 "
                  "/tmp/brats2024_official_src", results, versions("MedPy"))

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
