"""Benchmark: training curves of same and valid padding (and precisions) side by side.

Same and valid padding are one network (same weights, same inference logits), but in training
mode batch normalisation sees different voxels: with same padding every layer normalises over
the whole 38^3 patch (zero padding included in what the convolutions read), with valid padding
each layer only over the block that reaches the kept 12^3 outputs. This script measures what
that changes: every run trains the same model from the same initial weights on the same
generated cases and batches, then each epoch's checkpoint is scored on held-out patches in
inference mode (where the paddings agree exactly).

Printed and written to ``--out`` (default ``runs/same_vs_valid``): a markdown table and a CSV
with, per run and epoch, the training loss and accuracies (means over the epoch's batches, as
in the training log), the median step time, and the held-out loss and accuracies; and a PNG
plot if matplotlib is installed. Takes several minutes with dense24 on two cores (same padding
dominates).

Run standalone::

    .venv/bin/python benchmarks/same_vs_valid_curves.py [--model dense24] [--epochs 6]
        [--runs same:float32 valid:float32] [--out runs/same_vs_valid]

``--runs valid:float32 valid:bf16`` compares precisions instead.
"""
import argparse
import csv
import os
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from densenet3d_keras.core import compat  # noqa: E402
from densenet3d_keras.runtime import threads  # noqa: E402
from densenet3d_keras.cli.train import build_parser  # noqa: E402
from densenet3d_keras.training.config import resolve  # noqa: E402

COLUMNS = ["run", "epoch", "train_loss", "train_acc_wt", "train_acc_labels", "step_seconds",
           "heldout_loss", "heldout_acc_wt", "heldout_acc_labels"]


def parse_batch_lines(log_path):
    """``{epoch: [(loss, acc_wt, acc_labels, seconds), ...]}`` from a training log."""
    epochs = {}
    with open(log_path) as handle:
        for line in handle:
            if not line.startswith("epoch-patient:"):
                continue
            fields = line.split(" ")
            epoch = int(fields[1].rstrip(","))
            values = (float(fields[8].rstrip(",")), float(fields[10].rstrip("%,")),
                      float(fields[12].rstrip("%,")), float(fields[15]))
            epochs.setdefault(epoch, []).append(values)
    return epochs


def heldout_batches(data_root, cache_dir, n_patches, seed):
    """Fixed held-out batches: ``n_patches`` per ``val.txt`` case (half tumour centres)."""
    from generators.brats import discover_cases, read_case_list
    from generators.cache import load_cached
    from generators.sequence import PatchSequence

    names = read_case_list(os.path.join(data_root, "val.txt"))
    cases = [load_cached(case, cache_dir) for case in discover_cases(data_root, names, require_label=True)]
    sequence = PatchSequence(cases, batch_size=2, n_pos=n_patches // 2, n_neg=n_patches // 2, seed=seed)
    return [sequence[i] for i in range(len(sequence))]


def score(model, batches):
    """Mean loss (sum of both heads' cross-entropy) and accuracies (%) in inference mode."""
    from densenet3d_keras.models.objectives import accuracy_percent, softmax_cross_entropy

    losses, acc_wt, acc_labels = [], [], []
    for x, (wt, labels) in batches:
        out_wt, out_labels = model(x, training=False)
        losses.append(float(softmax_cross_entropy(wt, out_wt) + softmax_cross_entropy(labels, out_labels)))
        acc_wt.append(float(accuracy_percent(wt, out_wt)))
        acc_labels.append(float(accuracy_percent(labels, out_labels)))
    return float(np.mean(losses)), float(np.mean(acc_wt)), float(np.mean(acc_labels))


def initial_weights(model_name, path, seed):
    """Save one initialisation of ``model_name`` that every run starts from."""
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from densenet3d_keras.core.compat import keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    keras.utils.set_random_seed(seed)
    save_checkpoint(compile_model(build_model(model_name)), path, 0, model_name)


def train_run(args, padding, precision, data_root, cache_dir, init_path, folder):
    """Train one run; return the training log path and the checkpoint paths by epoch."""
    from densenet3d_keras.training import trainer as training

    argv = ["-mn", args.model, "-r", data_root, "--cache-dir", cache_dir, "-e", str(args.epochs),
            "--n-pos", str(args.n_pos), "--n-neg", str(args.n_neg), "--seed", str(args.seed),
            "--padding", padding, "--precision", precision, "-lp", init_path, "-sp", folder,
            "--keep", str(args.epochs)]
    config = resolve(build_parser().parse_args(argv))
    result = training.train(config, stream=None)
    return result["log_path"], result["checkpoints"]


def plot(rows, runs, path):
    """Training and held-out loss and label accuracy per epoch, one line per run (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = (("train_loss", "training loss"), ("heldout_loss", "held-out loss"),
              ("heldout_acc_labels", "held-out label accuracy (%)"))
    for axis, (key, title) in zip(axes, panels):
        for run in runs:
            mine = [r for r in rows if r["run"] == run]
            axis.plot([r["epoch"] for r in mine], [r[key] for r in mine], marker="o", label=run)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_xticks(sorted(set(r["epoch"] for r in rows)))
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def markdown(rows):
    header = ("| run | epoch | train loss | train acc WT % | train acc labels % | step s "
              "| held-out loss | held-out acc WT % | held-out acc labels % |")
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        lines.append("| %s | %d | %.4f | %.2f | %.2f | %.3f | %.4f | %.2f | %.2f |" % tuple(
            r[c] for c in COLUMNS))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dense24")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--cases", type=int, default=5, help="generated cases: 60%% train, 20%% held out")
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 96, 72))
    parser.add_argument("--n-pos", type=int, default=8)
    parser.add_argument("--n-neg", type=int, default=8)
    parser.add_argument("--heldout-patches", type=int, default=64, help="per held-out case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=["same:float32", "valid:float32"],
                        help="padding:precision of each run")
    parser.add_argument("--threads", default="0,0", help="intra,inter TensorFlow threads")
    parser.add_argument("--out", default=os.path.join("runs", "same_vs_valid"))
    args = parser.parse_args(argv)
    runs = []
    for run in args.runs:
        padding, _, precision = run.partition(":")
        if padding not in ("same", "valid") or precision not in compat.PRECISION_POLICIES:
            parser.error("--runs takes padding:precision, e.g. valid:bf16; got %r" % run)
        runs.append((padding, precision))
    threads.set_thread_counts(*[int(v) for v in args.threads.split(",")])
    from densenet3d_keras.models.builder import build_model
    from generators.synthetic import write_dataset

    work = tempfile.mkdtemp(prefix="same_vs_valid_")
    rows = []
    try:
        data_root = os.path.join(work, "data")
        cache_dir = os.path.join(work, "cache")
        write_dataset(data_root, n_cases=args.cases, shape=tuple(args.shape), seed=args.seed + 7,
                      splits=(0.6, 0.2, 0.2))
        init_path = os.path.join(work, "init.h5")
        initial_weights(args.model, init_path, args.seed)
        heldout = heldout_batches(data_root, cache_dir, args.heldout_patches, args.seed + 1)
        for padding, precision in runs:
            name = "%s %s" % (padding, precision)
            started = time.time()
            log_path, checkpoints = train_run(args, padding, precision, data_root, cache_dir,
                                              init_path, os.path.join(work, name.replace(" ", "_")))
            batches = parse_batch_lines(log_path)
            compat.set_precision("float32")
            compat.clear_session()
            scorer = build_model(args.model, None, padding="valid")  # inference: paddings agree
            for epoch, path in enumerate(checkpoints, 1):
                scorer.load_weights(path)
                loss, acc_wt, acc_labels = score(scorer, heldout)
                values = np.array(batches[epoch])
                rows.append(dict(zip(COLUMNS, [name, epoch, values[:, 0].mean(), values[:, 1].mean(),
                                               values[:, 2].mean(), float(np.median(values[:, 3])),
                                               loss, acc_wt, acc_labels])))
            print("%s: %d epochs in %.0f s" % (name, len(checkpoints), time.time() - started))
            sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not os.path.isdir(args.out):
        os.makedirs(args.out)
    with open(os.path.join(args.out, "curves.csv"), "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows)
    with open(os.path.join(args.out, "curves.md"), "w") as handle:
        handle.write(table + "\n")
    picture = plot(rows, ["%s %s" % r for r in runs], os.path.join(args.out, "curves.png"))
    print()
    print("%s, %d generated cases %s, %d+%d patches per case and epoch, seed %d"
          % (args.model, args.cases, "x".join(str(s) for s in args.shape), args.n_pos, args.n_neg, args.seed))
    print(table)
    print("written: %s%s" % (os.path.join(args.out, "curves.csv"), ", " + picture if picture else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
