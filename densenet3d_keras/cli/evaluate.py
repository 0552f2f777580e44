"""``evaluate_keras.py``: score predicted BraTS label maps (Dice, HD95, sensitivity, specificity).

Usage::

    python evaluate_keras.py --pred <pred dir> --gt <dataset root> -o <out dir>
        [--list test.txt] [--label-convention auto|brats2017|brats2023] [--overlays]
        [--skip-incomplete]

Predictions are ``<pred dir>/<case id>.nii.gz`` (the BraTS submission name); the ground truth
is each case folder's ``seg`` file under the dataset root. With ``--list`` exactly the listed
cases are scored and a missing prediction is an error; without it the cases present on both
sides are scored and the others are reported as skipped. Writes ``<out>/metrics.csv``,
``<out>/summary.json`` and, with ``--overlays``, ``<out>/overlays/<case>.png``; prints a table.
Metric conventions (HD95 definition, empty regions) are in
:mod:`densenet3d_keras.evaluation.metrics`. Exit codes: see :mod:`densenet3d_keras.cli.runner`.
"""
from densenet3d_keras.cli.runner import ArgumentParser, run_command
from densenet3d_keras.core.labels import LABEL_CONVENTIONS


def build_parser():
    """The ``evaluate_keras.py`` argument parser."""
    parser = ArgumentParser(
        prog="evaluate_keras.py",
        description="Score predicted BraTS label maps against the ground truth "
                    "(Dice, HD95 in mm, sensitivity, specificity for WT, TC and ET).")
    parser.add_argument("--pred", required=True, help="folder of <case id>.nii.gz predictions")
    parser.add_argument("--gt", required=True, help="dataset root holding one folder per case")
    parser.add_argument("-o", "--out", required=True,
                        help="output folder for metrics.csv, summary.json and overlays/")
    parser.add_argument("--list", default=None,
                        help="case list (one case id per line); relative names are also looked "
                             "up in the dataset root. Default: every case with a prediction")
    parser.add_argument("--label-convention", default="auto",
                        choices=("auto",) + tuple(LABEL_CONVENTIONS),
                        help="labels of the prediction files: brats2017 (enhancing = 4), "
                             "brats2023 (enhancing = 3) or auto (as the case's ground truth)")
    parser.add_argument("--overlays", action="store_true",
                        help="also write overlays/<case>.png (flair with GT and prediction)")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="without --list: leave out (and list) folders under --gt that are "
                             "not complete cases, instead of stopping")
    return parser


def evaluate(args):
    """Score the predictions named by the parsed arguments; print the table. Returns 0."""
    from densenet3d_keras.evaluation.report import evaluate_folder, select_cases
    from densenet3d_keras.evaluation.table import ResultsTable
    from generators.brats import resolve_case_list

    print("evaluate: pred=%s gt=%s out=%s list=%s label_convention=%s overlays=%s"
          % (args.pred, args.gt, args.out, args.list, args.label_convention, args.overlays))
    names = resolve_case_list(args.gt, args.list, default_name="") if args.list else None
    cases, extra, unpredicted = select_cases(args.pred, args.gt, names,
                                             skip_incomplete=args.skip_incomplete)
    if names is None:
        print("evaluating %d case(s) present in both folders; skipped %d prediction(s) without "
              "ground truth and %d ground-truth case(s) without prediction"
              % (len(cases), len(extra), len(unpredicted)))
    else:
        print("evaluating %d listed case(s)" % len(cases))
    table = ResultsTable([case.case_id for case in cases])
    _, summary = evaluate_folder(args.pred, cases, args.out, convention=args.label_convention,
                                 overlays=args.overlays, progress=table)
    table.finish(summary)
    print("%d case(s); all metrics in %s/metrics.csv and %s/summary.json"
          % (summary["num_cases"], args.out, args.out))
    return 0


def main(argv=None):
    """Run ``evaluate_keras.py``; returns the exit code."""
    return run_command(build_parser(), evaluate, argv)
