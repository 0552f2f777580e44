"""Graph mode (TensorFlow 1.x sessions, Keras's v1 training loop) against eager mode.

TensorFlow 1.15 cannot be installed here; graph mode under TensorFlow 2 runs the same engine
(``tf.compat.v1`` graphs, sessions, the v1 Keras training loop). The mode is per process, so
the graph-mode runs happen in one subprocess (tests/training/graph_mode_scenarios.py, several
checks at once to keep the time down); this eager process trains and predicts the same
things and compares.
"""
import json
import os
import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from tests import ROOT

PATIENT_LOSS = re.compile(r"^patient loss: ([0-9.]+),", re.M)


def _eager_argv(root, work, save, *extra):
    return ["-mn", "tiny", "-r", root, "--n-pos", "2", "--n-neg", "2", "--performance", "1",
            "--padding", "valid", "--seed", "5", "--cache-dir", os.path.join(work, "cache"),
            "-sp", save] + list(extra)


def _log(folder):
    with open(os.path.join(folder, "train_0.log")) as handle:
        return handle.read()


@pytest.fixture(scope="module")
def runs(small_dataset, tmp_path_factory):
    """The eager runs here, the graph-mode ones in a subprocess, on the same data and weights."""
    import predict_keras
    import train_keras
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model

    work = str(tmp_path_factory.mktemp("graph_mode"))
    clear_session()
    keras.utils.set_random_seed(7)
    init = os.path.join(work, "init_epoch_000.h5")
    save_checkpoint(build_model("tiny", 38, padding="valid"), init, 0, "tiny", "valid")
    eager_save = os.path.join(work, "eager_run")
    assert train_keras.main(_eager_argv(small_dataset, work, eager_save, "-e", "1", "-lp", init)) == 0
    with open(os.path.join(small_dataset, "test.txt")) as handle:
        test_case = os.path.join(small_dataset, handle.read().split()[0])
    spec = {"root": small_dataset, "work": work, "init": init, "test_case": test_case,
            "eager_checkpoint": os.path.join(eager_save, "tiny_epoch_001.h5")}
    for method in ("fcn", "patch"):
        assert predict_keras.main(["-m", spec["eager_checkpoint"], "-mn", "tiny", "-i", test_case,
                                   "-o", os.path.join(work, "eager_pred_" + method), "--method",
                                   method, "--save-probabilities"]) == 0
    clear_session()
    with open(os.path.join(work, "spec.json"), "w") as handle:
        json.dump(spec, handle)
    env = dict(os.environ)
    env.pop("DENSENET3D_GRAPH_MODE", None)
    done = subprocess.run([sys.executable, "-m", "tests.training.graph_mode_scenarios",
                           os.path.join(work, "spec.json")], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    with open(os.path.join(work, "graph_results.json")) as handle:
        results = json.load(handle)
    return spec, results, done.stdout.decode(), done.stderr.decode()


def test_graph_mode_trains_logs_checkpoints_and_resumes(runs):
    spec, results, out, err = runs
    assert not results["graph_mode_before"] and results["graph_mode_after"]
    assert results["train_exit"] == 0
    log = _log(os.path.join(spec["work"], "graph_run"))
    assert '"graph_mode": true' in log
    assert len(re.findall(r"^epoch-patient: 1, \d, iter: 1-1, p%: ", log, re.M)) == 3
    assert sorted(os.listdir(os.path.join(spec["work"], "graph_run"))) == [
        "checkpoint.json", "config.json", "history.csv", "learning_curves.png", "tensorboard",
        "tiny_best.h5", "tiny_epoch_001.h5", "train_0.log"]
    # Validation, the best checkpoint and TensorBoard's (TensorFlow 1) summaries in graph mode.
    assert re.search(r"^validation epoch 1: dice wt [0-9.]+, tc [0-9.]+, et [0-9.]+, mean [0-9.]+ "
                     r"\(1 case, ", log, re.M)
    assert os.listdir(os.path.join(spec["work"], "graph_run", "tensorboard"))
    # Resumed with its optimizer state: 3 steps before, 3 more in epoch 2.
    assert results["resume_graph_initial_epoch"] == 1 and results["resume_graph_iterations"] == 6
    assert len(results["resume_graph_losses"]) == 1
    # --precision other than float32 is refused in one line.
    assert results["bf16_exit"] == 2
    assert "error: --precision bf16 needs TensorFlow 2 eager" in err


def test_same_losses_as_eager(runs):
    spec, results, _, _ = runs
    eager = [float(x) for x in PATIENT_LOSS.findall(_log(os.path.join(spec["work"], "eager_run")))]
    graph = [float(x) for x in PATIENT_LOSS.findall(_log(os.path.join(spec["work"], "graph_run")))]
    assert len(eager) == len(graph) == 3
    np.testing.assert_allclose(graph, eager, rtol=2e-3, atol=1e-4)  # 4 printed decimals


def test_checkpoints_load_in_the_other_mode(runs, keras_session):
    from densenet3d_keras.cli.train import build_parser
    from densenet3d_keras.core import compat
    from densenet3d_keras.training.config import resolve
    from densenet3d_keras.training.trainer import load_for_training

    spec, results, _, _ = runs
    # eager checkpoint -> graph mode: its Adam state, reordered for the legacy optimizer.
    assert results["resume_eager_initial_epoch"] == 1 and results["resume_eager_iterations"] == 3
    assert results["resume_eager_state_difference"] == 0.0
    # graph-mode checkpoint -> eager.
    argv = _eager_argv(spec["root"], spec["work"], os.path.join(spec["work"], "x"), "-e", "2",
                       "-c", "true", "-lp", results["graph_checkpoint"])
    model, epoch = load_for_training(resolve(build_parser().parse_args(argv)), log=lambda line: None)
    assert epoch == 1 and compat.optimizer_iterations(model.optimizer) == 3


@pytest.mark.parametrize("method", ["fcn", "patch"])
def test_same_predictions_in_both_modes(runs, method):
    spec, results, _, _ = runs
    assert results["predict_%s_exit" % method] == 0
    name = os.path.basename(spec["test_case"])
    for suffix in (".nii.gz", "_probabilities.nii.gz"):
        eager = nib.load(os.path.join(spec["work"], "eager_pred_" + method, name + suffix))
        graph = nib.load(os.path.join(spec["work"], "graph_pred_" + method, name + suffix))
        if suffix == ".nii.gz":
            assert np.array_equal(np.asarray(graph.dataobj), np.asarray(eager.dataobj))
        else:
            np.testing.assert_allclose(graph.get_fdata(), eager.get_fdata(), rtol=0, atol=1e-5)


def test_npu_session_is_the_one_fit_runs_in(runs):
    npu = runs[1]["npu"]
    assert npu["sessions_created"] == 1
    assert npu["config_optimizers"] == ["NpuOptimizer"]
    assert npu["precision_mode"] == "must_keep_origin_dtype"
    # Every session call of the run (variable initialisation, the train function, checkpoint
    # reads) went to the session built from the NpuOptimizer ConfigProto, and Keras's session
    # at each batch, as the stand-in's callback saw it, was that one.
    assert npu["sessions_that_ran"] == 1 and npu["all_ran_in_npu_session"]
    assert npu["callback_batches"] == [0] and npu["callback_saw_npu_session"]
    assert npu["wrapped_optimizer"] and npu["session_closed"]


def test_export_in_graph_mode_matches_keras(runs, keras_session):
    from densenet3d_keras.core.compat import tf
    from densenet3d_keras.inference import export
    from densenet3d_keras.models.loading import load_model

    spec, results, _, _ = runs
    assert results["export_exit"] == 0
    graph_def = export.load_frozen_graph(os.path.join(spec["work"], "graph_model.pb"))
    assert not graph_def.library.function
    batch = np.random.RandomState(3).normal(size=(1, 38, 38, 38, 4)).astype("float32")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        tf.compat.v1.import_graph_def(graph_def, name="")
        frozen = session.run([n + ":0" for n in export.OUTPUT_NODES], {"input:0": batch})
    model = load_model(results["graph_checkpoint"], "tiny", 38, "same")[0]
    for got, want in zip(frozen, model.predict_on_batch(batch)):
        assert np.max(np.abs(got - want)) / np.max(np.abs(want)) < 1e-5


def test_environment_variable_and_late_switch(keras_session):
    from densenet3d_keras.core import compat

    # Too late in this process: TensorFlow already ran eagerly.
    with pytest.raises(ValueError, match="graph mode must be chosen before TensorFlow runs"):
        compat.enable_graph_mode()
    assert not compat.graph_mode()
    code = ("from densenet3d_keras.core import compat\n"
            "from densenet3d_keras.models.objectives import compile_model\n"
            "from densenet3d_keras.models.builder import build_model\n"
            "m = compile_model(build_model('tiny', 38, padding='valid'))\n"
            "v1 = any(c.__module__.endswith('training_v1') for c in type(m).__mro__)\n"
            "print(compat.graph_mode(), v1, type(m.optimizer).__module__)\n")
    env = dict(os.environ, DENSENET3D_GRAPH_MODE="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=300).stdout.decode().split()
    assert out[:2] == ["True", "True"]
    assert ".legacy." in out[2]
