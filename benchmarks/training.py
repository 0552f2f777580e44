"""Benchmark: the training step with same and valid padding, and the input pipeline feeding it.

dense24, batch 2, 38^3 patches, Adam, the reference loss, float32 (``--precision`` for the
mixed-precision policies). Batches come from :class:`generators.sequence.PatchSequence` over
the preprocessing cache (memory-mapped ``.npy``) of one synthetic 240 x 240 x 155 case,
through ``Model.fit`` as in ``train_keras.py``. A step is timed like the training log's
``time cust`` (``on_train_batch_begin`` to ``on_train_batch_end``); same and valid run in
alternating rounds of a few steps, so that a change in machine load hits both; the first
step of every round and ``--warmup`` whole rounds are not counted. Printed per thread
setting (each in its own process, since TensorFlow fixes its thread pools at start):

* step time of same and valid (median, minimum, median CPU time of the process), their ratio;
* patches per second;
* achieved GFLOP/s against the analytic count (:mod:`densenet3d_keras.models.flops`, forward +
  backward = 3 x forward) and against this machine's measured float32 matmul peak (TensorFlow,
  same threads; two independent 4096^2 products so that one-thread-per-op pools use every
  core);
* batches per second of the generator from the memory-mapped cache: first cold (the cache
  files dropped from the page cache, as for a case read the first time), then warm; and the
  ratio of the warm rate to the valid step rate.

Goals on a 2-core CPU: valid at least 4x faster than same; at least 50% of the measured peak;
the generator at least 20x faster than the step. The machine may be shared: the load average
is printed before and after, and the CPU-time column is what load changes least.

Run standalone::

    .venv/bin/python benchmarks/training.py [--rounds 4] [--steps 4] [--threads auto 0,0 1,2]
        [--precision float32] [--jit] [--json out.json]
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from densenet3d_keras.core import compat  # noqa: E402
from densenet3d_keras.runtime import threads as thread_pools  # noqa: E402
from densenet3d_keras.core.compat import keras  # noqa: E402
from densenet3d_keras.models.flops import model_flops  # noqa: E402
from benchmarks._peak import matmul_peak  # noqa: E402

MODEL = "dense24"
BATCH = 2
PATCH = 38
SHAPE = (240, 240, 155)
CASE_ID = "Brats17_SYN_000"
GOAL_RATIO = 4.0
GOAL_PEAK_FRACTION = 0.5
GOAL_GENERATOR_RATIO = 20.0
#: Thread settings timed by default, ``intra,inter``: what ``train_keras.py`` chooses when not told
#: (``auto``: half the cores per op and two ops at once on a CPU-only machine, the two
#: pathways side by side) and TensorFlow's default (one thread per core for both pools).
DEFAULT_THREADS = ("auto", "0,0")


def load_average():
    """The 1-minute load average (``nan`` where /proc is missing)."""
    try:
        with open("/proc/loadavg") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError):
        return float("nan")


def cpu_flags():
    """The CPU features that matter here (bf16 and AMX units), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = set()
            for line in handle:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
    except OSError:
        return []
    return sorted(f for f in flags if f in ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile",
                                             "avx512_fp16", "avx_vnni"))


def synthetic_cache(folder):
    """Write one synthetic 240 x 240 x 155 case, preprocess it into the cache; the CachedCase."""
    from generators.brats import load_case
    from generators.cache import load_cached
    from generators.synthetic import write_case

    write_case(folder, CASE_ID, shape=SHAPE, seed=0)
    return load_cached(load_case(os.path.join(folder, CASE_ID), require_label=True),
                       os.path.join(folder, "cache"), minimum=PATCH)


def reopened_cold(case, cache_folder):
    """``case`` memory-mapped anew after its cache files were dropped from the page cache.

    The kernel keeps pages that are mapped, so the old mappings are released first; without
    ``posix_fadvise`` (not Linux) the reads stay warm.
    """
    from generators.brats import load_case
    from generators.cache import load_cached

    names = [getattr(getattr(case, key), "filename", None)
             for key in ("image", "label", "positives", "negatives")]
    folder = os.path.dirname(os.path.dirname(names[0]))
    del case
    gc.collect()
    for name in names:
        if name is None or not hasattr(os, "posix_fadvise"):
            continue
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return load_cached(load_case(os.path.join(cache_folder, CASE_ID), require_label=True),
                       folder, minimum=PATCH)


def generator_rate(case, batches=200, seed=1):
    """Batches per second of ``PatchSequence.__getitem__`` over ``batches`` batches of ``case``."""
    from generators.sequence import PatchSequence

    sequence = PatchSequence([case], batch_size=BATCH, n_pos=batches, n_neg=batches, seed=seed)
    count = min(batches, len(sequence))
    started = time.perf_counter()
    for index in range(count):
        sequence[index]
    return count / (time.perf_counter() - started)


def enqueuer_rate(case, workers, batches=200):
    """Batches per second through Keras' ``OrderedEnqueuer`` (the threads of ``fit(workers=...)``)."""
    from generators.sequence import PatchSequence

    sequence = PatchSequence([case], batch_size=BATCH, n_pos=batches, n_neg=batches, seed=4)
    enqueuer = keras.utils.OrderedEnqueuer(sequence, use_multiprocessing=False, shuffle=False)
    enqueuer.start(workers=workers, max_queue_size=10)
    try:
        batches = enqueuer.get()
        next(batches)
        started = time.perf_counter()
        for _ in range(len(sequence) - 1):
            next(batches)
        return (len(sequence) - 1) / (time.perf_counter() - started)
    finally:
        enqueuer.stop()


class Window(keras.utils.Sequence):
    """Batches ``[start, start + length)`` of another sequence."""

    def __init__(self, sequence, start, length):
        super(Window, self).__init__()
        self.sequence = sequence
        self.start = start
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.sequence[self.start + index]


class StepTimer(keras.callbacks.Callback):
    """Wall and process CPU seconds of every train step (metrics reset per batch, as in the log)."""

    def __init__(self):
        super(StepTimer, self).__init__()
        self.wall = []
        self.cpu = []
        self._wall = self._cpu = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)


def time_steps(case, paddings, rounds, steps, warmup, precision="float32", jit=False):
    """Alternate ``fit`` rounds of ``steps`` batches per padding; per-step wall and CPU times."""
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model
    from generators.sequence import PatchSequence

    compat.set_precision(precision)
    total = (rounds + warmup) * steps
    sequence = PatchSequence([case], batch_size=BATCH, n_pos=total, n_neg=total, seed=0)
    models = {}
    for padding in paddings:
        model = build_model(MODEL, PATCH, padding=padding)
        models[padding] = compile_model(model, jit_compile=True) if jit else compile_model(model)
    results = dict((p, {"wall": [], "cpu": []}) for p in paddings)
    for index in range(rounds + warmup):
        for padding in paddings:
            timer = StepTimer()
            window = Window(sequence, index * steps, steps)
            models[padding].fit(window, epochs=1, verbose=0, shuffle=False, callbacks=[timer],
                                workers=1, use_multiprocessing=False)
            if index >= warmup:
                results[padding]["wall"].extend(timer.wall[1:])
                results[padding]["cpu"].extend(timer.cpu[1:])
    compat.set_precision("float32")
    return results


def run_one(args):
    """Measure one thread setting in this process; return the figures as a dict."""
    if args.threads[0] == "auto":
        intra, inter = thread_pools.auto_thread_counts()
        label = "auto (%d,%d)" % (intra, inter)
    else:
        intra, inter = [int(v) for v in args.threads[0].split(",")]
        label = "%d,%d" % (intra, inter)
    thread_pools.set_thread_counts(intra, inter)
    load_before = load_average()
    peak = matmul_peak(compat.tf)
    folder = tempfile.mkdtemp(prefix="bench_training_")
    try:
        case = reopened_cold(synthetic_cache(folder), folder)
        cold = generator_rate(case, seed=1)
        warm = [generator_rate(case, seed=2) for _ in range(3)]
        queued = dict((w, enqueuer_rate(case, w)) for w in (1, 2))
        steps = time_steps(case, args.paddings, args.rounds, args.steps, args.warmup,
                           args.precision, args.jit)
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    out = {"threads": label, "precision": args.precision, "jit": args.jit,
           "peak_gflops": peak, "generator_warm": float(np.median(warm)),
           "generator_cold": cold, "enqueuer_1": queued[1], "enqueuer_2": queued[2], "load_before": load_before, "load_after": load_average(),
           "steps": {}}
    for padding, times in steps.items():
        flops = 3.0 * BATCH * model_flops(MODEL, PATCH, padding)
        wall = float(np.median(times["wall"]))
        out["steps"][padding] = {"median": wall, "min": float(np.min(times["wall"])),
                                 "cpu": float(np.median(times["cpu"])), "n": len(times["wall"]),
                                 "gflop": flops / 1e9, "gflops": flops / wall / 1e9}
    return out


def markdown(results):
    """The figures of every thread setting as markdown tables, with the goals checked."""
    lines = ["| threads (intra,inter) | padding | step median s | min s | CPU s/step | patches/s "
             "| GFLOP/step | GFLOP/s | % of peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    summary = ["", "| threads | same / valid | valid % of peak | matmul peak GFLOP/s "
               "| generator batches/s warm (cold) | Keras enqueuer, 1 (2) workers "
               "| generator / valid step rate | load before, after |",
               "|---|---|---|---|---|---|---|---|"]
    for result in results:
        steps = result["steps"]
        for padding in sorted(steps):
            s = steps[padding]
            lines.append("| %s | %s | %.3f | %.3f | %.3f | %.1f | %.1f | %.0f | %.0f%% |" % (
                result["threads"], padding, s["median"], s["min"], s["cpu"], BATCH / s["median"],
                s["gflop"], s["gflops"], 100.0 * s["gflops"] / result["peak_gflops"]))
        valid = steps.get("valid")
        ratio = steps["same"]["median"] / valid["median"] if valid and "same" in steps else float("nan")
        fraction = valid["gflops"] / result["peak_gflops"] if valid else float("nan")
        feed = result["generator_warm"] * valid["median"] if valid else float("nan")
        summary.append("| %s | %.2fx (goal %.0fx) | %.0f%% (goal %.0f%%) | %.0f | %.0f (%.0f) | %.0f (%.0f) "
                       "| %.0fx (goal %.0fx) | %.1f, %.1f |" % (
                           result["threads"], ratio, GOAL_RATIO, 100 * fraction,
                           100 * GOAL_PEAK_FRACTION, result["peak_gflops"], result["generator_warm"],
                           result["generator_cold"], result["enqueuer_1"], result["enqueuer_2"],
                           feed, GOAL_GENERATOR_RATIO,
                           result["load_before"], result["load_after"]))
    return "\n".join(lines + summary)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds per padding")
    parser.add_argument("--steps", type=int, default=4,
                        help="batches per round (the first of each is not counted)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--threads", nargs="+", default=list(DEFAULT_THREADS),
                        help="intra,inter thread counts to time, each in its own process "
                             "(0: TensorFlow's default; auto: what train_keras.py chooses)")
    parser.add_argument("--paddings", nargs="+", default=["same", "valid"], choices=("same", "valid"))
    parser.add_argument("--precision", default="float32", choices=("float32", "bf16", "mixed_float16"))
    parser.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2 or args.rounds < 1:
        parser.error("--steps must be >= 2 and --rounds >= 1")
    if args.child:
        print("RESULT " + json.dumps(run_one(args)))
        return 0
    print("%s, batch %d, %d^3, precision %s%s; %d cores, CPU flags: %s; load %.2f"
          % (MODEL, BATCH, PATCH, args.precision, ", XLA" if args.jit else "", os.cpu_count() or 0,
             " ".join(cpu_flags()) or "-", load_average()))
    results = []
    for threads in args.threads:
        command = [sys.executable, os.path.abspath(__file__), "--child", "--threads", threads,
                   "--rounds", str(args.rounds), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--precision", args.precision,
                   "--paddings"] + list(args.paddings) + (["--jit"] if args.jit else [])
        started = time.time()
        output = subprocess.run(command, stdout=subprocess.PIPE, universal_newlines=True, cwd=REPO)
        found = [line for line in output.stdout.splitlines() if line.startswith("RESULT ")]
        if output.returncode != 0 or not found:
            sys.stderr.write("threads %s failed (exit code %d)\n" % (threads, output.returncode))
            return 1
        results.append(json.loads(found[-1][len("RESULT "):]))
        print("threads %s measured in %.0f s" % (threads, time.time() - started))
        sys.stdout.flush()
    print()
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
