#!/usr/bin/env python
"""Held-out scores of the demo model with and without test-time mirroring and postprocessing.

Uses the best validated checkpoint of the ``train_keras.py --demo`` run in ``runs/dense24``
(trains it first if there is none) and its dataset (3 training, 1 validation, 2 test cases). For each setting, plain and
``--tta``:

1. predicts the validation case and chooses postprocessing on it
   (``evaluate_keras.py --choose-postprocessing``), as nnU-Net chooses on its validation folds;
2. predicts the test cases without and with that postprocessing (``--postprocess``) and scores
   them (``evaluate_keras.py``, legacy and BraTS 2023 lesion-wise metrics).

Prints one row per setting: mean legacy Dice and lesion-wise Dice per region over the test
cases, the false-positive lesions, and the segmentation time (the ``N case(s) segmented in``
line of ``predict_keras.py``, model loading excluded), with TTA's time ratio.

    python benchmarks/heldout.py [--run runs/dense24] [--out runs/dense24/heldout]
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from densenet3d_keras.training.demo import demo_root  # noqa: E402

REGIONS = ("wt", "tc", "et")
SEGMENTED = re.compile(r"^(\d+) case\(s\) segmented in ([0-9.]+) s$", re.M)


def _run(argv):
    done = subprocess.run([sys.executable] + argv, cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if done.returncode != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(argv), done.stderr[-2000:]))
    return done.stdout


def predict(run, root, case_list, out, *extra):
    """Predict the listed cases; returns the segmentation seconds."""
    text = _run(["predict_keras.py", "-m", run, "-mn", "dense24", "-r", root, "--list", case_list,
                 "-o", out] + list(extra))
    return float(SEGMENTED.search(text).group(2))


def scores(pred, root, case_list, out, *extra):
    """Score predictions; returns the ``summary.json`` metrics (means)."""
    _run(["evaluate_keras.py", "--pred", pred, "--gt", root, "--list", case_list, "-o", out] + list(extra))
    with open(os.path.join(out, "summary.json")) as handle:
        return dict((k, v["mean"]) for k, v in json.load(handle)["metrics"].items())


def setting(run, root, out, name, flags):
    """Validation choice, then test scores without and with postprocessing: two result rows."""
    folder = os.path.join(out, name)
    predict(run, root, "val.txt", os.path.join(folder, "val_pred"), *flags)
    scores(os.path.join(folder, "val_pred"), root, "val.txt", os.path.join(folder, "val_eval"),
           "--choose-postprocessing")
    settings = os.path.join(folder, "val_eval", "postprocessing.json")
    rows = []
    for label, extra in ((name, []), (name + " + postprocessing", ["--postprocess", settings])):
        pred = os.path.join(folder, "test_pred" + ("_pp" if extra else ""))
        seconds = predict(run, root, "test.txt", pred, *(list(flags) + extra))
        rows.append((label, seconds, scores(pred, root, "test.txt", pred + "_eval")))
    return rows


def _print(rows):
    print("%-24s %-23s %-23s %-9s %s" % ("setting", "legacy Dice wt/tc/et", "lesion Dice wt/tc/et",
                                         "FP wt/tc/et", "seconds"))
    plain = rows[0][1]
    for label, seconds, metrics in rows:
        legacy = "/".join("%.3f" % metrics["dice_" + r] for r in REGIONS)
        lesion = "/".join("%.3f" % metrics["lesion_dice_" + r] for r in REGIONS)
        fp = "/".join("%.1f" % metrics["lesion_fp_" + r] for r in REGIONS)
        print("%-24s %-23s %-23s %-11s %.1f (%.2fx)" % (label, legacy, lesion, fp, seconds, seconds / plain))
        print("    mean legacy %.4f, mean lesion-wise %.4f"
              % (sum(metrics["dice_" + r] for r in REGIONS) / 3,
                 sum(metrics["lesion_dice_" + r] for r in REGIONS) / 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=os.path.join("runs", "dense24"))
    parser.add_argument("--out", default=os.path.join("runs", "dense24", "heldout"))
    args = parser.parse_args(argv)
    if not os.path.isfile(os.path.join(ROOT, args.run, "checkpoint.json")):
        print("no demo run in %s: training it (python train_keras.py --demo)" % args.run)
        sys.stdout.flush()
        _run(["train_keras.py", "--demo"])
    root = demo_root(None)
    best = os.path.join(args.run, "dense24_best.h5")
    args.run = best if os.path.isfile(os.path.join(ROOT, best)) else args.run
    print("model: %s" % args.run)
    rows = setting(args.run, root, args.out, "plain", [])
    rows += setting(args.run, root, args.out, "tta", ["--tta"])
    _print(rows)
    print("TTA costs %.2fx the segmentation time of plain prediction" % (rows[2][1] / rows[0][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
