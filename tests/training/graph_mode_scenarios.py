"""The graph-mode half of tests/training/test_graph_mode.py, run as ``python -m`` in a process
of its own (graph mode is chosen once per process, before TensorFlow runs).

Argument: a JSON file with ``root``, ``work``, ``init`` (initial weights), ``eager_checkpoint``
and ``test_case``; the results go to ``<work>/graph_results.json``. Graph mode is switched on
by the command lines' own ``--graph-mode`` flag (the first call), not by the environment.
"""
import json
import os
import sys


def _train_argv(spec, save, *extra):
    return ["--graph-mode", "-mn", "tiny", "-r", spec["root"], "--n-pos", "2", "--n-neg", "2",
            "--performance", "1", "--padding", "valid", "--seed", "5",
            "--cache-dir", os.path.join(spec["work"], "cache"), "-sp", save] + list(extra)


def _train(spec, save, *extra, **options):
    """Train through the library (to see the model); returns (result, iterations)."""
    from densenet3d_keras.cli.train import build_parser
    from densenet3d_keras.core import compat
    from densenet3d_keras.training.config import resolve
    from densenet3d_keras.training.trainer import train

    config = resolve(build_parser().parse_args(_train_argv(spec, save, *extra)))
    result = train(config, stream=None)
    if not options.get("iterations", True):  # the NPU session is closed after training
        return result, None
    return result, compat.optimizer_iterations(result["model"].optimizer)


def cli_runs(spec, results):
    """train_keras.py --graph-mode from the initial weights, predict_keras.py --graph-mode."""
    import predict_keras
    import train_keras

    save = os.path.join(spec["work"], "graph_run")
    results["train_exit"] = train_keras.main(_train_argv(spec, save, "-e", "1", "-lp", spec["init"],
                                                         "--val-list", "test.txt", "--tensorboard"))
    results["graph_checkpoint"] = os.path.join(save, "tiny_epoch_001.h5")
    results["bf16_exit"] = train_keras.main(_train_argv(spec, save, "--precision", "bf16"))
    for method in ("fcn", "patch"):
        out = os.path.join(spec["work"], "graph_pred_" + method)
        results["predict_%s_exit" % method] = predict_keras.main(
            ["--graph-mode", "-m", spec["eager_checkpoint"], "-mn", "tiny", "-i", spec["test_case"],
             "-o", out, "--method", method, "--save-probabilities"])


def resumes(spec, results):
    """Resume the graph-mode checkpoint and the eager one, optimizer state included."""
    from densenet3d_keras.models.checkpoints import read_optimizer_weights
    from densenet3d_keras.core.compat import keras
    import numpy as np

    result, results["resume_graph_iterations"] = _train(
        spec, os.path.join(spec["work"], "graph_resume"), "-e", "2", "-c", "true",
        "-lp", results["graph_checkpoint"])
    results["resume_graph_initial_epoch"] = result["initial_epoch"]
    results["resume_graph_losses"] = result["epoch_losses"]
    result, results["resume_eager_iterations"] = _train(
        spec, os.path.join(spec["work"], "eager_resume"), "-e", "1", "-c", "true",
        "-lp", spec["eager_checkpoint"])
    results["resume_eager_initial_epoch"] = result["initial_epoch"]
    # Nothing trained (epoch 1 of 1 done): the optimizer holds the eager file's state, reordered.
    saved = read_optimizer_weights(spec["eager_checkpoint"])
    state = keras.backend.batch_get_value(result["model"].optimizer.weights)
    count = (len(saved) - 1) // 2
    expected = [saved[0]] + list(saved[1::2]) + list(saved[2::2])
    results["resume_eager_state_difference"] = max(
        float(np.max(np.abs(np.asarray(a, dtype="float64") - np.asarray(b, dtype="float64"))))
        for a, b in zip(state, expected)) if len(state) == 2 * count + 1 else None


def npu_run(spec, results):
    """Train as rank 0 of 2 on the recording npu_bridge stand-in: which session ran fit?"""
    from tensorflow.python.client import session as session_module

    from densenet3d_keras.core import compat
    from tests.runtime.test_npu import StandIn

    stand_in = StandIn()
    sys.modules.update(stand_in.modules)
    created, ran = [], []
    new_session = compat.new_session

    def spy_new_session(config=None):
        created.append(new_session(config))
        created[-1].npu_config = config
        return created[-1]

    base = session_module.BaseSession
    original_callable, original_run = base._make_callable_from_options, base.run

    def spy_callable(self, *args, **kwargs):
        ran.append(self)
        return original_callable(self, *args, **kwargs)

    def spy_run(self, *args, **kwargs):
        ran.append(self)
        return original_run(self, *args, **kwargs)

    compat.new_session, base._make_callable_from_options, base.run = spy_new_session, spy_callable, spy_run
    os.environ.update({"RANK_SIZE": "2", "RANK_ID": "0", "ASCEND_DEVICE_ID": "0"})
    try:
        result, _ = _train(spec, os.path.join(spec["work"], "npu_run"), "-e", "1",
                           "--precision-mode", "must_keep_origin_dtype", iterations=False)
    finally:
        compat.new_session, base._make_callable_from_options, base.run = (
            new_session, original_callable, original_run)
        for name in ("RANK_SIZE", "RANK_ID", "ASCEND_DEVICE_ID"):
            os.environ.pop(name)
    broadcast, = [call.result for call in stand_in.named("NPUBroadcastGlobalVariablesCallback")]
    optimizers = created[0].npu_config.graph_options.rewrite_options.custom_optimizers if created else []
    results["npu"] = {
        "sessions_created": len(created),
        "config_optimizers": [o.name for o in optimizers],
        "precision_mode": optimizers[0].parameter_map["precision_mode"].s.decode() if optimizers else None,
        "sessions_that_ran": len(set(map(id, ran))),
        "all_ran_in_npu_session": bool(ran) and all(s is created[0] for s in ran),
        "callback_batches": broadcast.batches,
        "callback_saw_npu_session": bool(broadcast.sessions) and all(
            s is created[0] for s in broadcast.sessions),
        "wrapped_optimizer": stand_in.wrapped() == [result["model"].optimizer],
        "session_closed": bool(created) and created[0]._closed,
    }


def export_run(spec, results):
    import export_keras

    results["export_exit"] = export_keras.main(
        ["-m", results["graph_checkpoint"], "-o", os.path.join(spec["work"], "graph_model.pb")])


def main(path):
    with open(path) as handle:
        spec = json.load(handle)
    results = {}
    from densenet3d_keras.core import compat

    results["graph_mode_before"] = compat.graph_mode()
    cli_runs(spec, results)
    results["graph_mode_after"] = compat.graph_mode()
    for step in (resumes, npu_run, export_run):
        compat.clear_session()
        step(spec, results)
    with open(os.path.join(spec["work"], "graph_results.json"), "w") as handle:
        json.dump(results, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1])
