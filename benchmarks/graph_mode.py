"""Benchmark: the training step in graph mode (TensorFlow 1.x engine) against eager mode.

dense24, valid padding, batch 2, 38^3, float32, random inputs and one-hot targets,
``train_on_batch`` (the step alone; no input pipeline), the thread counts ``train_keras.py``
chooses. Each mode runs in its own process (the mode is per process); the first
``--warmup`` steps (graph building, XLA compilation) are not counted.

Run standalone::

    .venv/bin/python benchmarks/graph_mode.py [--steps 5] [--warmup 2] [--model dense24]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(graph, model_name, steps, warmup):
    """Median and minimum seconds per step in this process (after switching the mode)."""
    from densenet3d_keras.cli.runner import apply_graph_mode
    apply_graph_mode(graph)
    import numpy as np
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model
    from densenet3d_keras.runtime import threads

    threads.apply_thread_counts()
    model = compile_model(build_model(model_name, 38, padding="valid"))
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 38, 38, 38, 4)).astype("float32")
    y = {"wt": np.eye(2, dtype="float32")[rng.randint(0, 2, (2, 12, 12, 12))],
         "labels": np.eye(5, dtype="float32")[rng.randint(0, 5, (2, 12, 12, 12))]}
    times = []
    for step in range(warmup + steps):
        started = time.time()
        model.train_on_batch(x, y)
        if step >= warmup:
            times.append(time.time() - started)
    return {"mode": "graph" if graph else "eager", "median": float(np.median(times)),
            "min": float(np.min(times)), "steps": steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--model", default="dense24")
    parser.add_argument("--child", choices=("eager", "graph"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "graph", args.model, args.steps, args.warmup)))
        return
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    results = []
    for mode in ("eager", "graph"):
        env = dict(os.environ)
        env.pop("DENSENET3D_GRAPH_MODE", None)
        out = subprocess.check_output([sys.executable, __file__, "--child", mode, "--steps",
                                       str(args.steps), "--warmup", str(args.warmup), "--model",
                                       args.model], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
        print("%s: median %.3f s/step, min %.3f s (%d steps)"
              % (mode, results[-1]["median"], results[-1]["min"], args.steps))
    print("graph / eager (median): %.2f" % (results[1]["median"] / results[0]["median"]))
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()
