"""Benchmark: the inference engines on one whole case, side by side.

Each engine and precision segments the same case in a process of its own (so that each peak
RSS is its own), as ``predict_keras.py`` runs it: TensorFlow streams the box in slabs (the
default), OpenVINO and ONNX Runtime run the network's ONNX graph over tiles of ``--tile-size`` (default: each engine's,
:data:`densenet3d_keras.inference.engines.ENGINE_TILE_SIZES`).
The first run of a process includes TensorFlow's tracing and compiling of the slab shape
(about 10 s) and OpenVINO's compiling of the tile shape (about 1 s), what predicting one case
costs; ``--warm ENGINE ...`` runs the case a second time in those engines' processes, and the
ratios use that warm run where there is one (``--repeat N``: the fastest of N warm runs, for a
shared machine whose speed varies from minute to minute). Printed per run: wall and CPU seconds, the speed-up over TensorFlow
float32 and TensorFlow bf16, the useful rate (every layer once per voxel of the brain's box,
:mod:`densenet3d_keras.models.flops`) as a share of the float32 and the bfloat16 matmul peaks
measured with TensorFlow in the same benchmark (before and after the runs, averaged), the share
of brain voxels and of box voxels whose label equals TensorFlow float32's, and the peak RSS.

Goals (issue 26): OpenVINO bf16 at least 2x faster than TensorFlow bf16 streaming and 3x
faster than TensorFlow float32; its labels equal to TensorFlow float32's on >= 99.9% of the box
with trained weights; OpenVINO float32 labels identical; peak memory < 4 GB.

Run standalone::

    .venv/bin/python benchmarks/engines.py [--case <BraTS case folder>] [--checkpoint CKPT]
        [--model dense24] [--tile-size N] [--runs tensorflow:float32 openvino:bf16 ...]
        [--crop N] [--warm tensorflow openvino] [--repeat N]

Without ``--case``, a synthetic 240 x 240 x 155 case; without ``--checkpoint``, random weights
with randomised batch-norm statistics. ``--crop N`` keeps the central N^3 voxels of the brain's
box (a shorter run; the output says so).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from benchmarks._peak import matmul_peak  # noqa: E402
from benchmarks.inference import Stopwatch, peak_rss_gb, randomise_batch_norm, useful_flops  # noqa: E402

RUNS = ("tensorflow:float32", "tensorflow:bf16", "openvino:float32", "openvino:bf16", "onnxruntime:float32")
REFERENCE = "tensorflow:float32"


def _volumes(case_dir, crop):
    """The case's normalised volumes, cropped to the central ``crop``^3 of the brain's box."""
    from densenet3d_keras.core.brain import brain_mask
    from densenet3d_keras.inference.tiling import bounding_box
    from generators.brats import load_case
    from generators.volumes import load_case_volumes

    volumes = load_case_volumes(load_case(case_dir), with_label=False)
    if crop:
        start, stop = bounding_box(brain_mask(volumes.image, volumes.background))
        centre = [(a + b) // 2 for a, b in zip(start, stop)]
        box = tuple(slice(max(0, c - crop // 2), max(0, c - crop // 2) + crop) for c in centre)
        volumes.image = np.ascontiguousarray(volumes.image[box])
    return volumes


def child(args):
    """One engine and precision in this process: segment the case, save the labels, print JSON."""
    from densenet3d_keras.runtime import threads

    engine, precision = args.child.split(":")
    threads.apply_thread_counts()  # what predict_keras.py chooses
    from densenet3d_keras.core.brain import brain_mask
    from densenet3d_keras.inference.inferers.engine import EngineInferer
    from densenet3d_keras.inference.tiling import bounding_box
    from densenet3d_keras.inference.inferers.slabs import SlabInferer

    volumes = _volumes(args.case, args.crop)
    if engine == "tensorflow":
        inferer = SlabInferer(args.checkpoint, args.model, precision=precision)
    else:
        inferer = EngineInferer(args.checkpoint, args.model, engine, precision, tile_size=args.tile_size)
    with Stopwatch() as load:
        inferer.load(lambda line: sys.stderr.write(line + "\n"))
    with Stopwatch() as run:
        segmentation = inferer.segment(volumes)
    warm_runs = []
    for _ in range(args.repeat if engine in args.warm else 0):
        with Stopwatch() as again:
            inferer.segment(volumes)
        warm_runs.append(again)
    warm = min(warm_runs, key=lambda stopwatch: stopwatch.wall) if warm_runs else None
    np.save(args.labels, segmentation.labels.astype(np.uint8))
    box = bounding_box(brain_mask(volumes.image, volumes.background))
    print(json.dumps({"first": run.wall, "first_cpu": run.cpu, "wall": (warm or run).wall,
                      "cpu": (warm or run).cpu, "warm": warm is not None, "warm_walls": [stopwatch.wall for stopwatch in warm_runs], "load": load.wall, "rss": peak_rss_gb(),
                      "passes": inferer.describe_passes(segmentation), "box": [list(box[0]), list(box[1])],
                      "shape": list(volumes.image.shape[:3])}))
    return 0


def _peaks():
    """``(float32, bfloat16)`` matmul peaks in GFLOP/s, measured with TensorFlow."""
    from densenet3d_keras.core.compat import tf

    return matmul_peak(tf), matmul_peak(tf, dtype=tf.bfloat16)


def _random_checkpoint(model_name, folder):
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.checkpoints import save_checkpoint

    keras.utils.set_random_seed(0)
    model = build_model(model_name, None, padding="valid")
    randomise_batch_norm(model)
    path = os.path.join(folder, "%s_epoch_001.h5" % model_name)
    save_checkpoint(model, path, 1, model_name, "valid")
    clear_session()
    return path


def _run(args, run, workdir):
    """One run in a child process: its JSON figures plus its labels."""
    labels = os.path.join(workdir, run.replace(":", "_") + ".npy")
    command = [sys.executable, os.path.abspath(__file__), "--child", run, "--case", args.case,
               "--checkpoint", args.checkpoint, "--model", args.model,
               "--labels", labels, "--crop", str(args.crop), "--repeat", str(args.repeat), "--warm"] + list(args.warm)
    if args.tile_size:
        command += ["--tile-size", str(args.tile_size)]
    output = subprocess.run(command, stdout=subprocess.PIPE, universal_newlines=True)
    if output.returncode != 0:
        return None
    figures = json.loads(output.stdout.strip().splitlines()[-1])
    figures["labels"] = np.load(labels)
    return figures


def _table(results, useful, peaks):
    """The Markdown table of the runs."""
    reference = results[REFERENCE]
    box = tuple(slice(a, b) for a, b in zip(*reference["box"]))
    brain = reference["brain"]
    lines = ["| engine, precision | how | whole case, first run (s) | warm run (s, wall / CPU) | vs TF float32 | vs TF bf16 | useful GFLOP/s "
             "(% of float32 / bf16 matmul peak) | labels = TF float32 (brain / box) | peak RSS |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run, figures in results.items():
        rate = useful / figures["wall"] / 1e9
        same = figures["labels"] == reference["labels"]
        bf16 = results.get("tensorflow:bf16")
        lines.append("| %s | %s | %.1f | %s | %.2fx | %s | %.0f (%.0f%% / %.0f%%) | %.3f%% / %.3f%% | %.2f GB |" % (
            run.replace(":", " "), figures["passes"], figures["first"],
            "%.1f / %.1f" % (figures["wall"], figures["cpu"]) if figures["warm"] else "-",
            reference["wall"] / figures["wall"],
            "%.2fx" % (bf16["wall"] / figures["wall"]) if bf16 else "-",
            rate, 100 * rate / peaks[0], 100 * rate / peaks[1],
            100 * same[brain].mean(), 100 * same[box].mean(), figures["rss"]))
    return lines


def _reference_brain(args):
    from densenet3d_keras.core.brain import brain_mask

    volumes = _volumes(args.case, args.crop)
    return brain_mask(volumes.image, volumes.background)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=None, help="a BraTS case folder (default: a synthetic 240x240x155 case)")
    parser.add_argument("--checkpoint", default=None, help="weights (default: random)")
    parser.add_argument("--model", default="dense24")
    parser.add_argument("--tile-size", dest="tile_size", type=int, default=None,
                        help="tiles of the other engines (default: each engine's, as predict_keras.py)")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), metavar="ENGINE:PRECISION")
    parser.add_argument("--crop", type=int, default=0, help="keep the central N^3 voxels of the brain's box")
    parser.add_argument("--warm", nargs="*", default=[], metavar="ENGINE",
                        help="these engines' processes segment the case again after the first run; "
                             "the ratios use the fastest of these warm runs where there are some")
    parser.add_argument("--repeat", type=int, default=1,
                        help="warm runs per --warm engine (default 1; more on a shared, noisy machine)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--labels", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1, got %d" % args.repeat)
    if args.child:
        return child(args)
    runs = [REFERENCE] + [run for run in args.runs if run != REFERENCE]
    workdir = tempfile.mkdtemp(prefix="bench-engines-")
    try:
        if args.case is None:
            from generators.synthetic import write_case

            args.case = write_case(workdir, "Brats17_BENCH_1", shape=(240, 240, 155), seed=0)
        if args.checkpoint is None:
            args.checkpoint = _random_checkpoint(args.model, workdir)
        print("engines benchmark: %s from %s, case %s%s, tile size %s (other engines), %d CPU(s)"
              % (args.model, args.checkpoint, args.case, ", central %d^3 of the brain's box" % args.crop
                 if args.crop else "", args.tile_size or "each engine's", os.cpu_count() or 0))
        sys.stdout.flush()
        before = _peaks()
        results = {}
        for run in runs:
            started = time.time()
            figures = _run(args, run, workdir)
            print("%s: %s" % (run, "failed" if figures is None else "%.1f s wall, %.1f s CPU, %s, peak RSS %.2f GB%s"
                              % (figures["wall"], figures["cpu"], figures["passes"], figures["rss"],
                                 " (warm runs: %s s)" % ", ".join("%.1f" % w for w in figures["warm_walls"])
                                 if len(figures["warm_walls"]) > 1 else "")))
            print("  (process %.0f s)" % (time.time() - started))
            sys.stdout.flush()
            if figures is not None:
                results[run] = figures
        after = _peaks()
        peaks = [(a + b) / 2 for a, b in zip(before, after)]
        print("matmul peaks (TensorFlow, before / after): float32 %.0f / %.0f GFLOP/s, bfloat16 %.0f / %.0f GFLOP/s"
              % (before[0], after[0], before[1], after[1]))
        if REFERENCE not in results:
            print("the TensorFlow float32 reference failed")
            return 1
        results[REFERENCE]["brain"] = _reference_brain(args)
        box = results[REFERENCE]["box"]
        useful = useful_flops(args.model, (tuple(box[0]), tuple(box[1])))
        print("brain's box %s voxels, %.2f useful TFLOP" % ("x".join(str(b - a) for a, b in zip(*box)), useful / 1e12))
        for line in _table(results, useful, peaks):
            print(line)
        return 0 if len(results) == len(runs) else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
