#!/usr/bin/env python
"""Cross-validation of a training configuration on labelled BraTS cases (real scans).

The cases under the root (default ``$DENSENET3D_REAL_BRATS``, else ``../shared/realbrats``)
are sorted by id and fold ``k`` of ``n`` validates on ``ids[k::n]`` and trains on the rest
(10 cases, 5 folds: 8 training and 2 validation cases per fold). For each fold this runs, as
a user would:

1. ``train_keras.py -r ROOT --train-list <fold>/train.txt -sp <fold> <training flags>``;
2. ``predict_keras.py -m <fold> -r ROOT --list <fold>/val.txt -o <fold>/pred --evaluate
   <prediction flags>`` (per-region and lesion-wise metrics of the held-out cases);

and records the wall time and the CPU time (user + system, of the command and its children)
of each step. A fold whose ``fold.json`` exists is not run again, and a fold whose training
was interrupted resumes from its newest checkpoint (``-c true -lp <fold>``; its record then
says ``"resumed": true`` and its times cover the resumed part only), so an interrupted
cross-validation continues where it stopped. ``<out>/cv.json`` holds every case's metrics
and the times; the table printed at the end has one row per held-out case and the means.

    python tools/cross_validate.py --out runs/cv/real -- --recipe real
    python tools/cross_validate.py --out runs/cv/ref --folds 5 --only 0 -- -e 2 --padding valid
    python tools/cross_validate.py --out runs/cv/x --val Brats18_A Brats18_B -- --recipe real

Everything after ``--`` goes to ``train_keras.py``; ``--predict-flags "..."`` to
``predict_keras.py``.

With two or more folds, the postprocessing is cross-validated too (``postprocessing`` in
``cv.json``, a second table): for each fold, ``evaluate_keras.py --choose-postprocessing``'s
greedy choice is made on the held-out predictions of the *other* folds and scored on this
fold's, so the postprocessed Dice is measured on cases its settings were not chosen on. The
settings chosen on every fold's held-out cases together (what a shipped model would use) are
recorded as ``postprocessing.json`` in ``--out``.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_DATA_ENV = "DENSENET3D_REAL_BRATS"
#: Metrics in the printed table (``metrics.csv`` columns).
COLUMNS = ("dice_wt", "dice_tc", "dice_et", "lesion_dice_wt", "lesion_dice_tc", "lesion_dice_et",
           "hd95_wt", "hd95_tc", "hd95_et")


def default_root():
    """``$DENSENET3D_REAL_BRATS``, else ``../shared/realbrats`` beside the project."""
    return os.environ.get(REAL_DATA_ENV) or os.path.join(os.path.dirname(ROOT), "shared", "realbrats")


def case_ids(root):
    """Sorted ids of the case folders under ``root`` (folders holding a ``*_seg.nii.gz``)."""
    ids = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isdir(folder) and not name.startswith(".") and any(
                entry.endswith("_seg.nii.gz") or entry.endswith("-seg.nii.gz") for entry in os.listdir(folder)):
            ids.append(name)
    return ids


def folds(ids, count, val=None):
    """``[(training ids, validation ids)]``: ``ids[k::count]`` held out in fold ``k``, or the
    one split that holds out ``val``."""
    if val:
        unknown = sorted(set(val) - set(ids))
        if unknown:
            raise SystemExit("error: --val names cases that are not under the root: %s" % ", ".join(unknown))
        return [([i for i in ids if i not in val], list(val))]
    if not 2 <= count <= len(ids):
        raise SystemExit("error: --folds must be between 2 and the number of cases (%d)" % len(ids))
    return [([i for i in ids if i not in ids[k::count]], ids[k::count]) for k in range(count)]


def _write_list(path, ids):
    with open(path, "w") as handle:
        handle.write("\n".join(ids) + "\n")


def run_step(argv, log_path, mode="w"):
    """Run a command with its output in ``log_path``; returns ``(wall s, CPU s)``.

    Raises:
        SystemExit: the command failed (its last lines are shown).
    """
    started = time.time()
    with open(log_path, mode) as log:
        process = subprocess.Popen([sys.executable] + argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    wall = time.time() - started
    if process.returncode != 0:
        with open(log_path) as log:
            tail = log.readlines()[-15:]
        raise SystemExit("failed (exit %s): %s\n%s" % (process.returncode, " ".join(argv), "".join(tail)))
    return wall, usage.ru_utime + usage.ru_stime


def _read_metrics(path):
    import csv

    def value_of(text):
        try:
            return float(text)
        except ValueError:
            return text  # the case id, the challenge

    with open(path) as handle:
        return [dict((key, value_of(value)) for key, value in row.items())
                for row in csv.DictReader(handle)]


def run_fold(index, train_ids, val_ids, args, log=print):
    """Train and evaluate one fold (unless its results exist); returns its record."""
    folder = os.path.join(args.out, "fold_%d" % index)
    record_path = os.path.join(folder, "fold.json")
    if os.path.isfile(record_path):
        with open(record_path) as handle:
            log("fold %d: already done (%s)" % (index, record_path))
            return json.load(handle)
    os.makedirs(folder, exist_ok=True)
    _write_list(os.path.join(folder, "train.txt"), train_ids)
    _write_list(os.path.join(folder, "val.txt"), val_ids)
    log("fold %d: training on %d cases, validating on %s" % (index, len(train_ids), ", ".join(val_ids)))
    train_argv = (["train_keras.py", "-r", args.root, "--train-list", os.path.join(folder, "train.txt"),
                   "-sp", folder] + args.train_flags)
    resumed = os.path.isfile(os.path.join(folder, "checkpoint.json"))
    if resumed:
        log("fold %d: resuming its interrupted training from the newest checkpoint" % index)
        train_argv += ["-c", "true", "-lp", folder]
    train_wall, train_cpu = run_step(train_argv, os.path.join(folder, "train.out"), "a" if resumed else "w")
    log("fold %d: trained in %.0f s (%.2f CPU hours)" % (index, train_wall, train_cpu / 3600.0))
    predict_argv = (["predict_keras.py", "-m", folder, "-r", args.root, "--list",
                     os.path.join(folder, "val.txt"), "-o", os.path.join(folder, "pred"), "--evaluate"]
                    + shlex.split(args.predict_flags))
    predict_wall, predict_cpu = run_step(predict_argv, os.path.join(folder, "predict.out"))
    record = {"fold": index, "train": train_ids, "val": val_ids,
              "train_wall_s": train_wall, "train_cpu_s": train_cpu, "resumed": resumed,
              "predict_wall_s": predict_wall, "predict_cpu_s": predict_cpu,
              "cases": _read_metrics(os.path.join(folder, "pred", "metrics.csv")),
              "train_flags": args.train_flags, "predict_flags": args.predict_flags}
    with open(record_path, "w") as handle:
        json.dump(record, handle, indent=1)
    return record


def table(records):
    """Markdown lines: one row per held-out case, then the mean over all of them."""
    lines = ["| fold | case | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    rows = []
    for record in records:
        for case in record["cases"]:
            rows.append(case)
            lines.append("| %d | %s | %s |" % (record["fold"], case["case"],
                                                " | ".join("%.3f" % case[c] if c.startswith(("dice", "lesion_dice"))
                                                           else "%.1f" % case[c] for c in COLUMNS)))
    means = [sum(row[c] for row in rows) / len(rows) for c in COLUMNS]
    lines.append("| | **mean of %d** | %s |" % (len(rows), " | ".join(
        "**%.3f**" % m if c.startswith(("dice", "lesion_dice")) else "**%.1f**" % m for c, m in zip(COLUMNS, means))))
    return lines


def _components(root, records):
    """fold index -> [(case id, CaseComponents)] of its held-out predictions."""
    from densenet3d_keras.evaluation.postprocess_choice import case_components
    from densenet3d_keras.evaluation.report import load_pair
    from generators.brats import discover_cases

    by_fold = {}
    for record in records:
        folder = os.path.join(root["out"], "fold_%d" % record["fold"], "pred")
        cases = discover_cases(root["root"], record["val"], require_label=True)
        by_fold[record["fold"]] = []
        for case in cases:
            pred, truth, _, spacing = load_pair(case, os.path.join(folder, case.case_id + ".nii.gz"))
            by_fold[record["fold"]].append((case.case_id, case_components(pred, truth, spacing)))
            del pred, truth
    return by_fold


def cross_validated_postprocessing(out, root, records):
    """Choose postprocessing on the other folds' held-out cases, score it on each fold's.

    Returns:
        dict: ``folds`` (per fold: ``settings`` and per case the Dice and lesion-wise Dice
        after), ``chosen_on_all`` (the settings chosen on every held-out case; also written
        to ``<out>/postprocessing.json``).
    """
    from densenet3d_keras.evaluation.postprocess_choice import case_scores, choose
    from densenet3d_keras.inference.postprocess import save_settings

    by_fold = _components({"out": out, "root": root}, records)
    folds_out = []
    for record in records:
        others = [item for k, items in by_fold.items() if k != record["fold"] for item in items]
        settings, _ = choose([components for _, components in others])
        cases = [dict([("case", case_id)] + list(case_scores(components, settings).items()))
                 for case_id, components in by_fold[record["fold"]]]
        folds_out.append({"fold": record["fold"], "settings": settings.to_dict(), "cases": cases})
    every = [components for items in by_fold.values() for _, components in items]
    chosen, _ = choose(every)
    save_settings(os.path.join(out, "postprocessing.json"), chosen)
    return {"folds": folds_out, "chosen_on_all": chosen.to_dict()}


def postprocessing_table(result):
    """Markdown lines: per held-out case, Dice and lesion-wise Dice after postprocessing chosen
    on the other folds, then the means."""
    names = ("dice_wt", "dice_tc", "dice_et", "lesion_dice_wt", "lesion_dice_tc", "lesion_dice_et")
    lines = ["| fold | case | settings (wt / tc / et min size) | " + " | ".join(names) + " |",
             "|---" * (len(names) + 3) + "|"]
    rows = []
    for fold in result["folds"]:
        sizes = fold["settings"]["min_size"]
        label = "%s / %s / %s" % (sizes.get("wt", 0), sizes.get("tc", 0), sizes.get("et", 0))
        for case in fold["cases"]:
            rows.append(case)
            lines.append("| %d | %s | %s | %s |" % (fold["fold"], case["case"], label,
                                                    " | ".join("%.3f" % case[n] for n in names)))
    lines.append("| | **mean of %d** | | %s |" % (len(rows), " | ".join(
        "**%.3f**" % (sum(row[n] for row in rows) / len(rows)) for n in names)))
    return lines


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    train_flags = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_root(), help="labelled BraTS cases (default: %(default)s)")
    parser.add_argument("--out", required=True, help="folder of the folds' runs and cv.json")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", type=int, nargs="+", default=None, help="run only these folds")
    parser.add_argument("--val", nargs="+", default=None, help="one split holding out these cases")
    parser.add_argument("--predict-flags", default="", help="extra predict_keras.py flags (one string)")
    args = parser.parse_args(argv)
    args.train_flags = train_flags
    if not os.path.isdir(args.root):
        raise SystemExit("error: no BraTS folder at %s (set %s or --root)" % (args.root, REAL_DATA_ENV))
    args.root = os.path.abspath(args.root)
    args.out = os.path.abspath(args.out)
    splits = folds(case_ids(args.root), args.folds, args.val)
    chosen = range(len(splits)) if args.only is None else args.only
    records = [run_fold(k, splits[k][0], splits[k][1], args) for k in chosen]
    summary = {"root": args.root, "train_flags": train_flags, "predict_flags": args.predict_flags,
               "folds": records,
               "train_cpu_hours": sum(r["train_cpu_s"] for r in records) / 3600.0,
               "train_wall_hours": sum(r["train_wall_s"] for r in records) / 3600.0}
    if len(records) >= 2:
        summary["postprocessing"] = cross_validated_postprocessing(args.out, args.root, records)
    with open(os.path.join(args.out, "cv.json"), "w") as handle:
        json.dump(summary, handle, indent=1)
    print("\n".join(table(records)))
    if "postprocessing" in summary:
        print("\npostprocessing chosen on the other folds' held-out cases:")
        print("\n".join(postprocessing_table(summary["postprocessing"])))
        print("chosen on all %d held-out cases: %s (%s)" % (
            sum(len(r["cases"]) for r in records), json.dumps(summary["postprocessing"]["chosen_on_all"]),
            os.path.join(args.out, "postprocessing.json")))
    print("training: %.2f CPU hours, %.2f wall hours over %d fold(s)"
          % (summary["train_cpu_hours"], summary["train_wall_hours"], len(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
