"""``evaluate_keras.py``: score predicted BraTS label maps (Dice, HD95, sensitivity, specificity,
BraTS 2023 lesion-wise Dice and HD95, NSD), and choose postprocessing on them.

Usage::

    python evaluate_keras.py --pred <pred dir> --gt <dataset root> -o <out dir>
        [--list test.txt] [--label-convention auto|brats2017|brats2023|brats2024] [--overlays]
        [--skip-incomplete] [--metrics legacy|lesionwise|all] [--challenge GLI|MEN|MET|PED|SSA]
        [--brats2024-legacy-metrics masks|official] [--choose-postprocessing]

Predictions are ``<pred dir>/<case id>.nii.gz`` (the BraTS submission name); the ground truth
is each case folder's ``seg`` file under the dataset root. With ``--list`` exactly the listed
cases are scored and a missing prediction is an error; without it the cases present on both
sides are scored and the others are reported as skipped. Writes ``<out>/metrics.csv``,
``<out>/summary.json`` and, with ``--overlays``, ``<out>/overlays/<case>.png``; prints a table.
Every metric is the official BraTS 2023 script's (HD95 definition, empty regions:
:mod:`densenet3d_keras.evaluation.metrics`; lesion-wise: :mod:`densenet3d_keras.evaluation.lesionwise`);
``--metrics`` picks the columns (default ``all``), ``--challenge`` the lesion-wise dilation and
volume threshold (:mod:`densenet3d_keras.evaluation.challenges`). BraTS 2024 post-treatment
label maps (4 = resection cavity) are recognised from their values or named with
``--label-convention brats2024``, and scored on WT, TC, NETC, SNFH, ET and RC as the official
BraTS 2024 script scores them (small predicted lesions deleted, touching sub-region lesions
merged); the official script computes their full-volume HD95, sensitivity and specificity on
its lesion label maps (ids 1, 2, ...), which this project reproduces with
``--brats2024-legacy-metrics official`` (the default ``masks`` scores the 0/1 masks, which
gives the same values wherever both maps hold at most one lesion). ``--choose-postprocessing``
then also chooses postprocessing settings on these cases
(:mod:`densenet3d_keras.evaluation.postprocess_choice`), prints them with the mean Dice before
and after, and writes ``<out>/postprocessing.json`` for ``predict_keras.py --postprocess``.
Exit codes: see :mod:`densenet3d_keras.cli.runner`.
"""
import os

from densenet3d_keras.cli.runner import ArgumentParser, run_command
from densenet3d_keras.core.labels import LABEL_CONVENTIONS

#: Metric sets of ``--metrics`` (as :data:`densenet3d_keras.evaluation.report.METRIC_SETS`).
METRIC_SETS = ("legacy", "lesionwise", "all")
#: ``--challenge`` values (as :data:`densenet3d_keras.evaluation.challenges.CHALLENGES`).
CHALLENGES = ("GLI", "MEN", "MET", "PED", "SSA")
#: ``--brats2024-legacy-metrics`` values (as
#: :data:`densenet3d_keras.evaluation.metrics.LEGACY_2024_CHOICES`), the first the default.
LEGACY_2024_CHOICES = ("masks", "official")
POSTPROCESSING_NAME = "postprocessing.json"


def add_scoring_flags(group):
    """``--challenge`` and ``--brats2024-legacy-metrics`` (also ``predict_keras.py --evaluate``'s)."""
    group.add_argument("--challenge", choices=CHALLENGES, default="GLI",
                       help="BraTS challenge whose lesion-wise settings apply (official 2023 "
                            "scripts): GLI, SSA, PED dilate 3 times and drop lesions <= 50 "
                            "mm^3, MEN 1 and 50, MET 1 and 2 (default GLI; BraTS 2024 "
                            "post-treatment labels always take the 2024 GLI settings)")
    group.add_argument("--brats2024-legacy-metrics", dest="brats2024_legacy_metrics",
                       choices=LEGACY_2024_CHOICES, default=LEGACY_2024_CHOICES[0],
                       help="HD95, sensitivity and specificity of BraTS 2024 post-treatment "
                            "cases: masks scores the 0/1 region masks (default); official "
                            "gives exactly the official 2024 script's values, computed on its "
                            "lesion label maps (ids 1, 2, ...), which lose their meaning where "
                            "a region holds two lesions or more (sensitivity then counts only "
                            "lesion 1; elsewhere the two agree). Dice and lesion-wise metrics "
                            "are the same either way; no effect on BraTS 2017/2023 cases")


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
                             "brats2023 (enhancing = 3), brats2024 (enhancing = 3, resection "
                             "cavity = 4) or auto (as the case's ground truth, else what the "
                             "values fit)")
    parser.add_argument("--overlays", action="store_true",
                        help="also write overlays/<case>.png (flair with GT and prediction)")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="without --list: leave out (and list) folders under --gt that are "
                             "not complete cases, instead of stopping")
    parser.add_argument("--metrics", choices=METRIC_SETS, default="all",
                        help="legacy: Dice, HD95, sensitivity, specificity; lesionwise: BraTS "
                             "2023 lesion-wise Dice, HD95, TP/FP/FN lesions and NSD at 1 mm; "
                             "all: both (default)")
    add_scoring_flags(parser)
    parser.add_argument("--choose-postprocessing", dest="choose_postprocessing",
                        action="store_true",
                        help="also choose postprocessing (small-component removal, ET to "
                             "necrosis) that maximises the mean lesion-wise Dice on these "
                             "cases; writes <out>/%s for predict_keras.py --postprocess"
                             % POSTPROCESSING_NAME)
    return parser


def _scores_line(name, before, after, prefix):
    def regions(scores):
        return " / ".join("%.4f" % scores[prefix + region] for region in ("wt", "tc", "et"))
    return ("%s (WT / TC / ET): before %.4f (%s), after %.4f (%s)"
            % (name, before[prefix + "mean"], regions(before), after[prefix + "mean"],
               regions(after)))


def _validation(result, cases):
    """The ``validation`` entry of postprocessing.json: what the choice was made on."""
    steps = [dict(step=s["step"], best=s["best"], kept=s["kept"],
                  scores=dict((str(value), score) for value, score in s["scores"].items()))
             for s in result["steps"]]
    return {"objective": "mean over cases of the mean lesion-wise Dice of WT, TC and ET",
            "num_cases": result["num_cases"], "cases": [case.case_id for case in cases],
            "before": dict(result["before"]), "after": dict(result["after"]), "steps": steps}


def choose_and_write(args, cases):
    """Choose postprocessing on the scored cases, print it, write <out>/postprocessing.json."""
    from densenet3d_keras.evaluation.postprocess_choice import choose_postprocessing
    from densenet3d_keras.evaluation.report import prediction_path
    from densenet3d_keras.inference.postprocess import save_settings

    pred_paths = [prediction_path(args.pred, case.case_id) for case in cases]
    result = choose_postprocessing(cases, pred_paths, args.label_convention)
    print("postprocessing chosen on %d case(s) in %.1f s (reading and components %.1f s, "
          "grid %.2f s); objective: mean lesion-wise Dice of WT, TC, ET"
          % (result["num_cases"], result["seconds_reading"] + result["seconds_choosing"],
             result["seconds_reading"], result["seconds_choosing"]))
    for step in result["steps"]:
        tried = ", ".join("%s: %.4f" % (value, score) for value, score in step["scores"].items())
        print("  %s: %s -> %s" % (step["step"], tried, "%s kept" % step["best"] if step["kept"]
                                  else "off (no gain)"))
    print("chosen: %s" % result["settings"].describe())
    print(_scores_line("lesion-wise mean Dice", result["before"], result["after"], "lesion_dice_"))
    print(_scores_line("legacy mean Dice", result["before"], result["after"], "dice_"))
    path = os.path.join(args.out, POSTPROCESSING_NAME)
    save_settings(path, result["settings"], _validation(result, cases))
    print("postprocessing settings: %s (apply with predict_keras.py --postprocess %s)"
          % (path, path))
    return result


def evaluate(args):
    """Score the predictions named by the parsed arguments; print the table. Returns 0."""
    from densenet3d_keras.evaluation.report import evaluate_folder, select_cases
    from densenet3d_keras.evaluation.table import ResultsTable
    from generators.brats import check_outside_root, resolve_case_list

    check_outside_root(args.out, args.gt, "output folder (-o)")
    print("evaluate: pred=%s gt=%s out=%s list=%s label_convention=%s overlays=%s metrics=%s "
          "challenge=%s brats2024_legacy_metrics=%s choose_postprocessing=%s"
          % (args.pred, args.gt, args.out, args.list, args.label_convention, args.overlays,
             args.metrics, args.challenge, args.brats2024_legacy_metrics,
             args.choose_postprocessing))
    names = resolve_case_list(args.gt, args.list, default_name="") if args.list else None
    cases, extra, unpredicted = select_cases(args.pred, args.gt, names,
                                             skip_incomplete=args.skip_incomplete)
    if names is None:
        print("evaluating %d case(s) present in both folders; skipped %d prediction(s) without "
              "ground truth and %d ground-truth case(s) without prediction"
              % (len(cases), len(extra), len(unpredicted)))
    else:
        print("evaluating %d listed case(s)" % len(cases))
    table = ResultsTable([case.case_id for case in cases], metric_set=args.metrics)
    _, summary = evaluate_folder(args.pred, cases, args.out, convention=args.label_convention,
                                 overlays=args.overlays, progress=table, metric_set=args.metrics,
                                 challenge=args.challenge,
                                 legacy_2024=args.brats2024_legacy_metrics)
    table.finish(summary)
    print("%d case(s); all metrics in %s/metrics.csv and %s/summary.json"
          % (summary["num_cases"], args.out, args.out))
    if args.choose_postprocessing:
        choose_and_write(args, cases)
    return 0


def main(argv=None):
    """Run ``evaluate_keras.py``; returns the exit code."""
    return run_command(build_parser(), evaluate, argv)
