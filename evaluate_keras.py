"""Score predicted BraTS label maps: Dice, HD95, sensitivity and specificity per region.

Usage::

    python evaluate_keras.py --pred <pred dir> --gt <dataset root> -o <out dir>
        [--list test.txt] [--label-convention auto|brats2017|brats2023] [--overlays]
        [--skip-incomplete]

Predictions are ``<pred dir>/<case id>.nii.gz`` (the BraTS submission name); the ground truth
is each case folder's ``seg`` file under the dataset root. With ``--list`` exactly the listed
cases are scored and a missing prediction is an error; without it the cases present on both
sides are scored and the others are reported as skipped. Writes ``<out>/metrics.csv``,
``<out>/summary.json`` and, with ``--overlays``, ``<out>/overlays/<case>.png``; prints a table.
Metric conventions (HD95 definition, empty regions) are in :mod:`densenet3d_keras.metrics`.

Exit codes: 0 success; 2 any failure (bad arguments, missing or unreadable input, labels
outside the convention, shape or grid mismatch, output not writable); 130 interrupted
(Ctrl-C). Failures print one line ``error: ...`` (or ``interrupted``) on stderr and leave no
output file behind.
"""
import math
import sys

from densenet3d_keras.cli import EXIT_INTERRUPTED, OneLineArgumentParser
from generators.brats import LABEL_CONVENTIONS, resolve_case_list

#: Exit code for every failure (argparse's own usage errors use 2 as well).
EXIT_ERROR = 2

TABLE_COLUMNS = (("Dice WT", "dice_wt"), ("Dice TC", "dice_tc"), ("Dice ET", "dice_et"),
                 ("HD95 WT", "hd95_wt"), ("HD95 TC", "hd95_tc"), ("HD95 ET", "hd95_et"))


def build_parser():
    """The command-line parser.

    Returns:
        argparse.ArgumentParser.
    """
    parser = OneLineArgumentParser(
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


def _cell(value, width, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan".rjust(width)
    return ("%.*f" % (digits, value)).rjust(width)


def format_row(name, values, name_width):
    """One table line: the name, then Dice with 4 decimals and HD95 (mm) with 2.

    Args:
        name: case id or statistic name.
        values: mapping with the keys of ``TABLE_COLUMNS``.
        name_width: width of the first column.

    Returns:
        str.
    """
    cells = [name.ljust(name_width)]
    for title, key in TABLE_COLUMNS:
        cells.append(_cell(values.get(key), len(title) + 1, 4 if key.startswith("dice") else 2))
    return " ".join(cells)


def format_header(name_width):
    """The table header matching :func:`format_row`."""
    return " ".join(["case".ljust(name_width)] + [title.rjust(len(title) + 1)
                                                  for title, _ in TABLE_COLUMNS])


def main(argv=None):
    """Run the evaluation.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on failure (the reason printed as one line on stderr), 130 when
        interrupted (``interrupted`` on stderr; no partial output is left).
    """
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (OSError, ValueError) as error:
        message = str(error).strip().splitlines()
        sys.stderr.write("error: %s\n" % (message[0] if message else type(error).__name__))
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED


def _run(args):
    # Imported here so that --help and usage errors stay instant (the package imports TensorFlow).
    from densenet3d_keras.evaluation import evaluate_folder, select_cases

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

    width = max([len("median")] + [len(case.case_id) for case in cases])
    print(format_header(width))

    def progress(index, total, row):
        print(format_row(row["case"], row, width))
        sys.stdout.flush()

    rows, summary = evaluate_folder(args.pred, cases, args.out, convention=args.label_convention,
                                    overlays=args.overlays, progress=progress)
    print("-" * len(format_header(width)))
    for statistic in ("mean", "std", "median"):
        values = dict((name, stats[statistic]) for name, stats in summary["metrics"].items())
        print(format_row(statistic, values, width))
    print("%d case(s); all metrics in %s/metrics.csv and %s/summary.json"
          % (summary["num_cases"], args.out, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
