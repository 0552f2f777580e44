"""Benchmark: whole-case inference, reference sliding windows (patch) against the fully
convolutional network (fcn), streamed in slabs (the default) or over tiles.

One synthetic BraTS-sized case (240 x 240 x 155, written as NIfTI files and read back like
the command does; ``--shape`` for another size) is segmented with dense24 (``--model`` for
another preset, e.g. ``tiny`` for a quick check; random initial weights with randomised batch-norm
statistics: timing does not depend on the weights, and the equality check needs non-trivial
ones; ``--checkpoint`` loads trained ones instead, e.g. the demo's ``runs/dense24``). Stages, in this order:

1. ``fcn``: :func:`densenet3d_keras.inference.predict.predict_fcn` over the brain's bounding box,
   streamed in slabs of ``--slab`` planes (:mod:`densenet3d_keras.inference.streaming`), run
   twice: the first run traces and compiles for the box's shape, the second is warm. The float32
   matmul peak is measured just before and just after the second run; the useful rate of both
   runs is printed as a share of their mean. Peak RSS is read right after this stage.
1a. ``tiles`` (skipped with ``--no-tiles``): the same case over tiles of ``--tile-size`` (what
   graph mode and ``--tiles`` run): its time, the FLOPs its overlaps recompute, and whether its
   labels equal the streamed ones.
1b. With ``--tta``: the streamed run with test-time mirroring (the softmax averaged over the
   8 flips of the three axes, :mod:`densenet3d_keras.inference.averaging`); the wall times
   with and without and their ratio (expected about 8) are printed.
1c. With ``--bf16``: the streamed run with bfloat16 convolutions (``--precision bf16``, the
   weights of stage 1, after a warm-up run) against a float32 rerun: both wall times, the
   speed-up and the share of box voxels whose label equals float32's.
2. ``patch``: the reference's 38^3 windows (same padding). A full case is 3564 windows, over an
   hour on two cores, so a subset of windows spread over the brain is timed (after one
   untimed warm-up batch) and the time extrapolated to all windows; the output says so.
   The subset's logits are checked against the fcn logits (1e-3 relative) and labels.
3. Padding of the fcn tiles: a few of the case's tiles are run with a same-padding model too,
   same weights, to measure what valid padding saves (``--full-same`` runs the whole case).
4. ``--cohort N`` instead of all the above: N cases of different brain sizes streamed one
   after another by one streamer, with ``--shape-reuse`` as ``predict_keras.py`` has it: each
   new box shape traces and compiles the slab functions (about 10 s) and TensorFlow keeps them
   for the process (about 100 MB each), so the stage prints the time per case, the shapes
   compiled and how the resident memory grows.

Printed: wall and CPU seconds per stage, the fcn / patch ratio, achieved GFLOP/s against the
analytic count of :mod:`densenet3d_keras.models.flops`, the FLOPs computed against the useful
ones (the box's voxels, each layer once per voxel: the difference is what the valid network
computes in its halo around the box, and for tiles what they recompute in their overlaps), the useful rate as a share of the float32 matmul peak measured in
the same run, and peak RSS. Goals on a 2-core CPU: fcn at
least 20x faster than patch, a whole case under 2 minutes, peak memory under 4 GB.

Run standalone::

    .venv/bin/python benchmarks/inference.py [--patch-windows 48] [--slab 12] [--no-tiles]
        [--tile-size 88] [--same-tiles 2] [--full-same] [--fcn-only] [--tta] [--bf16]
        [--threads auto|I,O] [--checkpoint CKPT] [--model dense24] [--shape 240 240 155]
    .venv/bin/python benchmarks/inference.py --cohort 6 [--shape-reuse 16]
"""
import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from densenet3d_keras.core import geometry  # noqa: E402
from densenet3d_keras.inference import averaging, output, predict, streaming, tiling  # noqa: E402
from densenet3d_keras.models.flops import model_flops  # noqa: E402
from benchmarks._peak import matmul_peak  # noqa: E402

SHAPE = (240, 240, 155)
MODEL = "dense24"
GOAL_RATIO = 20.0
GOAL_SECONDS = 120.0
GOAL_RSS_GB = 4.0


def peak_rss_gb():
    """Peak resident set size of this process so far, in GB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 ** 2


def current_rss_gb():
    """Resident set size of this process now, in GB (Linux; ``nan`` elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0 ** 2
    except IOError:
        pass
    return float("nan")


class Stopwatch(object):
    """Wall and CPU time of a block."""

    def __enter__(self):
        self.wall = time.time()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.wall
        self.cpu = time.process_time() - self.cpu


def randomise_batch_norm(model, seed=0):
    """Random BN statistics and affine terms, so inference mode is not the identity."""
    rng = np.random.RandomState(seed)
    values = []
    for weight in model.weights:
        value = weight.numpy()
        if "moving_mean" in weight.name:
            value = rng.normal(0.0, 0.3, value.shape)
        elif "moving_variance" in weight.name:
            value = rng.uniform(0.5, 2.0, value.shape)
        elif "gamma" in weight.name:
            value = rng.uniform(0.6, 1.4, value.shape)
        elif "beta" in weight.name:
            value = rng.normal(0.0, 0.2, value.shape)
        values.append(value.astype(np.float32))
    model.set_weights(values)


def useful_flops(model_name, box):
    """Analytic FLOPs of the box's output voxels: every layer once per output voxel, as in an
    endless tile (a same-padding 38^3 patch costs the same per voxel), no halo recomputed."""
    per_voxel = model_flops(model_name, (geometry.PATCH_SIZE,) * 3, "same") / float(geometry.PATCH_SIZE ** 3)
    return per_voxel * float(np.prod([b - a for a, b in zip(*box)]))


def time_bf16(model, volumes, plain, slab, useful, peak):
    """Stage 1c: the streamed case again with bfloat16 convolutions (after a warm-up run) against
    a float32 rerun; prints both, the ratio and the label agreement."""
    fp32_run, _ = predict_fcn_streamed(model, slab)
    with Stopwatch() as fp32_time:
        fp32_run(volumes.image, volumes.background)
    bf16_run, _ = predict_fcn_streamed(model, slab, "bf16")
    bf16_run(volumes.image, volumes.background)  # traces and compiles for the box
    with Stopwatch() as bf16_time:
        bf16 = bf16_run(volumes.image, volumes.background)
    agree = np.mean(bf16.labels[plain.scored] == plain.labels[plain.scored])
    print("bf16  : %.1f s wall (%.1f s CPU) against float32 %.1f s: %.2fx faster (goal >= 1.5x); "
          "useful rate %.1f GFLOP/s (%.0f%% of the float32 peak); labels equal to float32 on %.3f%% "
          "of the box (goal >= 99.9%%)"
          % (bf16_time.wall, bf16_time.cpu, fp32_time.wall, fp32_time.wall / bf16_time.wall,
             useful / bf16_time.wall / 1e9, 100 * useful / bf16_time.wall / 1e9 / peak, 100 * agree))
    return fp32_time.wall / bf16_time.wall, agree


def predict_fcn_streamed(model, slab, precision="float32", reuse=streaming.DEFAULT_REUSE):
    """``predict_fcn`` of the box streamed in slabs (what ``predict_keras.py`` runs), and the
    streamer."""
    streamer = streaming.SlabStreamer(model, slab=slab, precision=precision, reuse=reuse)
    return (lambda image, background: predict.predict_box(streamer, image, background)), streamer


def time_streamed(model, model_name, volumes, slab):
    """Stage 1: the case streamed in slabs, twice (the first run traces and compiles for this
    box's shape); the float32 matmul peak measured just before and just after the warm run."""
    from densenet3d_keras.core.compat import tf

    run, streamer = predict_fcn_streamed(model, slab)
    with Stopwatch() as cold:
        fcn = run(volumes.image, volumes.background)
    peak_before = matmul_peak(tf)
    with Stopwatch() as warm:
        run(volumes.image, volumes.background)
    peak_after = matmul_peak(tf)
    peak = (peak_before + peak_after) / 2.0
    rss = peak_rss_gb()
    box = tiling.bounding_box(fcn.scored)
    useful = useful_flops(model_name, box)
    shape = streamer.last_shape
    computed = model_flops(model_name, shape, "valid")
    print("fcn   : brain box %s streamed in slabs of %d planes (valid padding) as %s voxels (spare planes, "
          "cross-section rounded up to %d): %.2f TFLOP computed for %.2f TFLOP of useful output (%.0f%% halo "
          "and padding)" % ("x".join(str(b - a) for a, b in zip(*box)), slab, "x".join(map(str, shape)),
                            streaming.SHAPE_GRID, computed / 1e12, useful / 1e12, 100 * (computed / useful - 1)))
    print("fcn   : first run %.1f s wall (%.1f s CPU; tracing and compiling for the box included), "
          "second %.1f s wall (%.1f s CPU); float32 matmul peak %.0f GFLOP/s before and %.0f after the "
          "second run" % (cold.wall, cold.cpu, warm.wall, warm.cpu, peak_before, peak_after))
    for name, wall in (("first", cold.wall), ("second", warm.wall)):
        print("fcn   : %s run: useful rate %.1f GFLOP/s = %.0f%% of the mean peak (goal >= 50%%), "
              "computed rate %.0f%% of it" % (name, useful / wall / 1e9, 100 * useful / wall / 1e9 / peak,
                                            100 * computed / wall / 1e9 / peak))
    print("fcn   : peak RSS %.2f GB (goal < 4 GB)" % rss)
    return fcn, warm, rss, box, useful, peak


def time_tiles(model, model_name, volumes, streamed, tile_size, useful, streamed_wall):
    """Stage 1a: the same case over tiles (``--tiles``): time, recomputation, label equality."""
    with Stopwatch() as watch:
        tiles = predict.predict_fcn(model, volumes.image, volumes.background, tile_size=tile_size)
    computed = tiles.num_passes * model_flops(model_name, tiles.pass_shape, "valid")
    scored = tiles.scored
    agree = np.mean(tiles.labels[scored] == streamed.labels[scored])
    difference = np.abs(tiles.logits[scored] - streamed.logits[scored]).max()
    print("tiles : %d tiles of %s: %.2f TFLOP computed (%.0f%% overlap and halo), %.1f s wall "
          "(%.1f s CPU), useful rate %.1f GFLOP/s; streaming is %.2fx faster"
          % (tiles.num_passes, "x".join(map(str, tiles.pass_shape)), computed / 1e12,
             100 * (computed / useful - 1), watch.wall, watch.cpu, useful / watch.wall / 1e9,
             watch.wall / streamed_wall))
    print("tiles : streamed labels equal the tiles' on %.4f%% of the box (goal: identical); max "
          "|logit difference| %.2e" % (100 * agree, difference))
    return agree


def choose_windows(shape, box, count):
    """``count`` window starts spread evenly over the windows whose block is in ``box``."""
    start, stop = box
    inside = [w for w in tiling.window_plan(shape)
              if all(a <= s + geometry.MARGIN and s + geometry.MARGIN + tiling.PATCH_STEP <= b
                     for s, a, b in zip(w, start, stop))]
    picks = np.linspace(0, len(inside) - 1, min(count, len(inside))).round().astype(int)
    return [inside[i] for i in sorted(set(picks.tolist()))]


def time_tta(model, volumes, plain, slab):
    """Stage 1b: the streamed case again without and with test-time mirroring (both after
    stage 1 compiled for the box's shape, so the ratio compares like with like)."""
    streamer = streaming.SlabStreamer(model, slab=slab)
    predictor = averaging.averaged_predictor([streamer], flips=True)
    predict.predict_box(streamer, volumes.image, volumes.background)  # warm-up
    with Stopwatch() as plain_time:
        predict.predict_box(streamer, volumes.image, volumes.background)
    with Stopwatch() as tta_time:
        tta = predict.predict_box(predictor, volumes.image, volumes.background)
    agree = np.mean(tta.labels[plain.scored] == plain.labels[plain.scored])
    print("tta   : %d flips in %.1f s wall (%.1f s CPU); labels agree with no TTA on %.2f%% of "
          "the box" % (len(averaging.FLIPS), tta_time.wall, tta_time.cpu, 100 * agree))
    print("tta   : wall time without TTA %.1f s (warm), with TTA %.1f s, ratio %.2fx "
          "(CPU time ratio %.2fx; %d forward passes instead of 1)"
          % (plain_time.wall, tta_time.wall, tta_time.wall / plain_time.wall,
             tta_time.cpu / plain_time.cpu, len(averaging.FLIPS)))
    return tta_time.wall


def time_cohort(model, workdir, count, slab, reuse, shape):
    """Stage 4 (``--cohort N``): N more synthetic cases (seeds 1..N: brains of different sizes)
    streamed one after another by one streamer, as ``predict_keras.py`` runs a dataset. Per
    case: the box, the cross-section it ran on, its wall time, the shapes compiled so far and
    the process's resident memory after it; then the totals."""
    from generators.brats import load_case
    from generators.synthetic import write_case
    from generators.volumes import load_case_volumes

    run, streamer = predict_fcn_streamed(model, slab, reuse=reuse)
    rss_start, total = current_rss_gb(), 0.0
    for seed in range(1, count + 1):
        folder = write_case(workdir, "Brats17_COHORT_%d" % seed, shape=shape, seed=seed)
        volumes = load_case_volumes(load_case(folder), with_label=False)
        with Stopwatch() as watch:
            segmentation = run(volumes.image, volumes.background)
        total += watch.wall
        box = tiling.bounding_box(segmentation.scored)
        print("cohort: case %d, box %s, streamed as %s: %.1f s wall; %d cross-section(s) compiled; RSS %.2f GB"
              % (seed, "x".join(str(b - a) for a, b in zip(*box)),
                 "x".join(map(str, streamer.last_shape)), watch.wall, len(streamer.shapes),
                 current_rss_gb()))
    print("cohort: %d cases with --shape-reuse %d in %.1f s (%.1f s per case); %d cross-section(s) compiled; "
          "resident memory grew by %.2f GB" % (count, reuse, total, total / count, len(streamer.shapes),
                                               current_rss_gb() - rss_start))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch-windows", type=int, default=48,
                        help="windows timed for the patch extrapolation (default 48)")
    parser.add_argument("--slab", type=int, default=streaming.DEFAULT_SLAB,
                        help="planes per slab of the streamed box (default %d)" % streaming.DEFAULT_SLAB)
    parser.add_argument("--no-tiles", action="store_true",
                        help="skip the tile run of stage 1a (its time and the label equality)")
    parser.add_argument("--tile-size", type=int, default=tiling.DEFAULT_TILE_SIZE)
    parser.add_argument("--same-tiles", type=int, default=2,
                        help="fcn tiles timed with same padding as well (default 2)")
    parser.add_argument("--full-same", action="store_true",
                        help="run the whole case with same-padding tiles too")
    parser.add_argument("--fcn-only", action="store_true",
                        help="only stage 1 (e.g. to compare tile sizes)")
    parser.add_argument("--threads", default="auto", metavar="INTRA,INTER",
                        help="TensorFlow thread counts as predict_keras.py sets them (default auto: "
                             "what predict_keras.py chooses; 0,0 is TensorFlow's default)")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the streamed case with bf16 convolutions against float32")
    parser.add_argument("--tta", action="store_true",
                        help="also time fcn with test-time mirroring (8 flips) against without")
    parser.add_argument("--checkpoint", default=None, metavar="CKPT",
                        help="trained weights (a --model checkpoint file or run folder) instead of "
                             "random ones: label agreements as a trained model gives them")
    parser.add_argument("--cohort", type=int, default=0, metavar="N",
                        help="instead of the stages above, stream N synthetic cases of different brain "
                             "sizes one after another (stage 4)")
    parser.add_argument("--shape-reuse", type=int, default=streaming.DEFAULT_REUSE, metavar="N",
                        help="--cohort: predict_keras.py's --shape-reuse (default %d; 0: compile every "
                             "box's own shape)" % streaming.DEFAULT_REUSE)
    parser.add_argument("--model", default=MODEL,
                        help="model preset (default %s; tiny for a quick check)" % MODEL)
    parser.add_argument("--shape", type=int, nargs=3, default=SHAPE, metavar=("X", "Y", "Z"),
                        help="synthetic case shape (default %s)" % "x".join(map(str, SHAPE)))
    args = parser.parse_args(argv)
    model_name, shape = args.model, tuple(args.shape)

    from densenet3d_keras.runtime import threads
    if args.threads == "auto":
        counts = threads.apply_thread_counts()
    else:
        counts = threads.apply_thread_counts(*[int(v) for v in args.threads.split(",")])
    from densenet3d_keras.core.compat import clear_session, keras, tf
    from densenet3d_keras.models.builder import build_model
    from generators.brats import load_case
    from generators.synthetic import write_case
    from generators.volumes import load_case_volumes

    print("inference benchmark: %s, synthetic case %s, tensorflow %s, %d CPU(s), tile size %d, "
          "threads %d intra-op, %d inter-op" % (model_name, "x".join(map(str, shape)), tf.__version__,
                                                os.cpu_count() or 0, args.tile_size, counts[0], counts[1]))
    workdir = tempfile.mkdtemp(prefix="bench-inference-")
    try:
        with Stopwatch() as write_time:
            folder = write_case(workdir, "Brats17_BENCH_1", shape=shape, seed=0)
        with Stopwatch() as load_time:
            volumes = load_case_volumes(load_case(folder), with_label=False)
        print("case written in %.1f s, loaded and normalised in %.1f s"
              % (write_time.wall, load_time.wall))

        # 1. fcn, valid padding, the whole case: streamed (default) and over tiles.
        clear_session()
        keras.utils.set_random_seed(0)
        if args.checkpoint:
            from densenet3d_keras.models.loading import load_model

            fcn_model, path, _ = load_model(args.checkpoint, model_name, None, "valid")
            print("weights: %s" % path)
        else:
            fcn_model = build_model(model_name, None, padding="valid")
            randomise_batch_norm(fcn_model)
        if args.cohort:
            time_cohort(fcn_model, workdir, args.cohort, args.slab, args.shape_reuse, shape)
            return 0
        weights = fcn_model.get_weights()
        fcn, fcn_time, rss_fcn, box, useful, peak = time_streamed(fcn_model, model_name, volumes, args.slab)
        with Stopwatch() as save_time:
            output.write_nifti_like(os.path.join(workdir, "labels.nii.gz"), fcn.labels,
                                    volumes.header)
        print("fcn   : labels written in %.1f s; load + predict + write %.1f s"
              % (save_time.wall, load_time.wall + fcn_time.wall + save_time.wall))
        if not args.no_tiles:
            time_tiles(fcn_model, model_name, volumes, fcn, args.tile_size, useful, fcn_time.wall)
        if args.bf16:
            time_bf16(fcn_model, volumes, fcn, args.slab, useful, peak)
        if args.tta:
            time_tta(fcn_model, volumes, fcn, args.slab)
        if args.fcn_only:
            return 0

        # 2. patch, same padding, a subset of windows, extrapolated.
        clear_session()
        patch_model = build_model(model_name, geometry.PATCH_SIZE, padding="same")
        patch_model.set_weights(weights)
        all_windows = len(tiling.window_plan(volumes.shape))
        windows = choose_windows(volumes.shape, box, args.patch_windows)
        warmup = windows[:predict.PATCH_BATCH_SIZE]
        predict.predict_patch(patch_model, volumes.image, volumes.background, windows=warmup)
        with Stopwatch() as patch_time:
            patch = predict.predict_patch(patch_model, volumes.image, volumes.background,
                                            windows=windows)
        per_window = patch_time.wall / len(windows)
        patch_total = per_window * all_windows
        patch_total_cpu = patch_time.cpu / len(windows) * all_windows
        patch_flops = len(windows) * model_flops(model_name, geometry.PATCH_SIZE, "same")
        print("patch : %d of %d windows (38^3, same padding, batches of %d) in %.1f s wall "
              "(%.1f s CPU), %.2f s per window, %.1f GFLOP/s"
              % (len(windows), all_windows, predict.PATCH_BATCH_SIZE, patch_time.wall,
                 patch_time.cpu, per_window, patch_flops / patch_time.wall / 1e9))
        print("patch : EXTRAPOLATED to all %d windows: %.0f s wall (%.1f min), %.0f s CPU, %.0f TFLOP"
              % (all_windows, patch_total, patch_total / 60.0, patch_total_cpu,
                 all_windows * model_flops(model_name, geometry.PATCH_SIZE, "same") / 1e12))
        scored = patch.scored
        reference = patch.logits[scored]
        difference = np.abs(fcn.logits[scored] - reference).max()
        scale = np.abs(reference).max()
        agree = np.mean(fcn.labels[scored] == patch.labels[scored])
        equal = difference <= 1e-3 * scale and agree >= 0.9999
        print("check : on the %d voxels of the timed windows, max |fcn - patch| logit = %.2e "
              "(%.1e of max |logit| %.2f), labels agree on %.4f%% -> %s"
              % (scored.sum(), difference, difference / scale, scale, 100 * agree,
                 "EQUAL" if equal else "DIFFERENT"))

        # 3. same-padding tiles against valid-padding tiles.
        clear_session()
        same_model = build_model(model_name, None, padding="same")
        same_model.set_weights(weights)
        plan = tiling.tile_plan(box[0], box[1], args.tile_size)
        tiles = plan[:max(1, args.same_tiles)]
        tile_shape = tiling.tile_input_shape(tiles[0])
        blocks = [tiling.extract_block(volumes.image,
                                          [a - geometry.MARGIN for a in tile.start],
                                          [b + geometry.MARGIN for b in tile.stop],
                                          volumes.background)[None] for tile in tiles]
        timings = {}
        for name, model in (("same", same_model), ("valid", fcn_model)):
            model.predict_on_batch(blocks[0])  # warm-up: tracing and oneDNN primitives
            with Stopwatch() as watch:
                for block in blocks:
                    model.predict_on_batch(block)
            timings[name] = watch.wall / len(tiles)
            flops = model_flops(model_name, tile_shape, name)
            print("tiles : %s padding, %.1f s per %s tile, %.1f GFLOP per tile, %.1f GFLOP/s"
                  % (name, timings[name], "x".join(map(str, tile_shape)), flops / 1e9,
                     flops / timings[name] / 1e9))
        print("tiles : valid padding is %.2fx faster than same padding (%.2fx fewer FLOPs)"
              % (timings["same"] / timings["valid"],
                 model_flops(model_name, tile_shape, "same")
                 / float(model_flops(model_name, tile_shape, "valid"))))
        if args.full_same:
            with Stopwatch() as same_time:
                same = predict.predict_fcn(same_model, volumes.image, volumes.background,
                                             tile_size=args.tile_size)
            print("fcn   : whole case with same-padding tiles %.1f s; logits max difference "
                  "to valid %.2e" % (same_time.wall, np.abs(same.logits - fcn.logits).max()))

        ratio = patch_total / fcn_time.wall
        print("")
        # On a shared machine the wall ratio moves with the other jobs' load; the CPU-time
        # ratio (work done, whatever the number of cores we got) is the steadier figure.
        print("RESULT: fcn %.1f s per case, patch %.0f s per case (extrapolated from %d windows), "
              "ratio %.1fx (goal >= %.0fx: %s; CPU-time ratio %.1fx); fcn under %.0f s: %s; "
              "peak RSS after fcn %.2f GB (goal < %.0f GB: %s); results %s"
              % (fcn_time.wall, patch_total, len(windows), ratio, GOAL_RATIO,
                 "met" if ratio >= GOAL_RATIO else "NOT met", patch_total_cpu / fcn_time.cpu,
                 GOAL_SECONDS,
                 "met" if fcn_time.wall < GOAL_SECONDS else "NOT met", rss_fcn, GOAL_RSS_GB,
                 "met" if rss_fcn < GOAL_RSS_GB else "NOT met", "equal" if equal else "DIFFERENT"))
        print("peak RSS of the whole benchmark (patch batches and same-padding tiles included): "
              "%.2f GB" % peak_rss_gb())
        return 0 if equal else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
