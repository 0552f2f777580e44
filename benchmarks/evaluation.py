#!/usr/bin/env python
"""Time the metrics and the postprocessing choice on full-size synthetic BraTS cases.

Writes ``--cases`` synthetic cases (default 2, 240 x 240 x 155) and, as their predictions, each
ground truth shifted by one voxel with ``--strays`` small blobs of random labels added (false
positives for the lesion-wise scores). Then times, per case, the legacy metrics (Dice, HD95,
sensitivity, specificity), the lesion-wise metrics and NSD, and the whole
``--choose-postprocessing`` step (reading, components, the greedy grid), and prints the
chosen settings with the mean Dice before and after.

    python benchmarks/evaluation.py [--cases 2] [--shape 240 240 155] [--strays 40] [--keep DIR]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from densenet3d_keras.evaluation.lesionwise import evaluate_lesionwise  # noqa: E402
from densenet3d_keras.evaluation.metrics import evaluate_case, nsd_case  # noqa: E402
from densenet3d_keras.evaluation.postprocess_choice import GRID, choose_postprocessing  # noqa: E402
from densenet3d_keras.evaluation.report import load_pair, prediction_path  # noqa: E402
from densenet3d_keras.inference.output import write_nifti_like  # noqa: E402
from generators import synthetic  # noqa: E402
from generators.brats import discover_cases  # noqa: E402
from generators.volumes import load_nifti  # noqa: E402


def write_predictions(root, pred_dir, strays, seed):
    """Each case's label map shifted by a voxel plus ``strays`` random blobs, as predictions."""
    rng = np.random.RandomState(seed)
    cases = discover_cases(root, None, require_label=True)
    for case in cases:
        label, image = load_nifti(case.label)
        pred = np.roll(label.astype(np.uint8), 1, axis=0)
        for _ in range(strays):
            corner = [rng.randint(10, n - 14) for n in pred.shape]
            extent = rng.randint(1, 6, 3)
            pred[tuple(slice(c, c + e) for c, e in zip(corner, extent))] = rng.choice([1, 2, 4])
        write_nifti_like(os.path.join(pred_dir, case.case_id + ".nii.gz"), pred, image.header,
                         "benchmark prediction")
    return cases


def time_metrics(cases, pred_dir):
    for case in cases:
        pred, gt, _, spacing = load_pair(case, prediction_path(pred_dir, case.case_id))
        seconds = []
        for function in (lambda: evaluate_case(pred, gt, spacing),
                         lambda: evaluate_case(pred, gt, spacing, with_nsd=True),
                         lambda: nsd_case(pred, gt, spacing),
                         lambda: evaluate_lesionwise(pred, gt, spacing)):
            started = time.time()
            row = function()
            seconds.append(time.time() - started)
        print("%s: legacy metrics %.2f s, legacy + NSD %.2f s, NSD alone %.2f s, lesion-wise "
              "%.2f s; lesion-wise Dice WT/TC/ET %.3f/%.3f/%.3f, FP %d/%d/%d"
              % ((case.case_id,) + tuple(seconds) + tuple(
                  row[name] for name in ("lesion_dice_wt", "lesion_dice_tc", "lesion_dice_et",
                                         "lesion_fp_wt", "lesion_fp_tc", "lesion_fp_et"))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(240, 240, 155))
    parser.add_argument("--strays", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None,
                        help="write the cases (data/) and predictions (pred/) to this folder "
                             "and keep them, e.g. to time evaluate_keras.py on them")
    args = parser.parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix="bench-evaluation-")
    try:
        root, pred_dir = os.path.join(work, "data"), os.path.join(work, "pred")
        os.makedirs(pred_dir)
        started = time.time()
        synthetic.write_dataset(root, n_cases=args.cases, shape=args.shape, seed=args.seed,
                                splits=(1.0, 0.0, 0.0))
        cases = write_predictions(root, pred_dir, args.strays, args.seed)
        print("%d synthetic case(s) of %s written in %.0f s" % (
            len(cases), "x".join(str(s) for s in args.shape), time.time() - started))
        time_metrics(cases, pred_dir)
        n_settings = 1 + sum(len(values) for values in GRID.values())
        result = choose_postprocessing(cases, [prediction_path(pred_dir, c.case_id)
                                               for c in cases])
        print("choose-postprocessing: %.2f s reading and components (%.2f s per case), %.3f s "
              "for the grid (%d settings x %d cases)"
              % (result["seconds_reading"], result["seconds_reading"] / len(cases),
                 result["seconds_choosing"], n_settings, len(cases)))
        print("chosen: %s" % result["settings"].describe())
        for key in ("lesion_dice_mean", "dice_mean"):
            print("%s: before %.4f, after %.4f" % (key, result["before"][key],
                                                   result["after"][key]))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
