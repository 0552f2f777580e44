"""export_keras.py: a frozen GraphDef (and a SavedModel) that computes what the Keras model does.

The export builds its own TensorFlow 1.x graph, so it runs in this eager test process as it
does in a graph-mode one (tests/training/test_graph_mode.py exports there too).
"""
import os
import sys

import numpy as np
import pytest

import export_keras
from densenet3d_keras.core.compat import tf
from densenet3d_keras.inference import export


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    folder = tmp_path_factory.mktemp("export")
    clear_session()
    keras.utils.set_random_seed(2)
    model = compile_model(build_model("tiny", 38, padding="valid"))
    # Non-trivial batch-norm statistics, so that inference mode is checked too.
    for layer in model.layers:
        for weight in layer.weights:
            if "moving" in weight.name:
                shape = tuple(weight.shape.as_list())
                weight.assign(np.random.RandomState(0).uniform(0.5, 1.5, shape).astype("float32"))
    path = str(folder / "tiny_epoch_003.h5")
    save_checkpoint(model, path, 3, "tiny", "valid")
    clear_session()
    return path


def _keras_logits(path, batch):
    from densenet3d_keras.models.loading import load_model

    model = load_model(path, "tiny", batch.shape[1], "same")[0]
    return [np.asarray(x) for x in model.predict_on_batch(batch)]


def _max_relative(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _run_graph(graph_def, batch):
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run([name + ":0" for name in export.OUTPUT_NODES],
                               {export.INPUT_NODE + ":0": batch})


def test_frozen_graph_matches_keras(checkpoint, tmp_path, capsys, keras_session):
    out = str(tmp_path / "model.pb")
    assert export_keras.main(["-m", os.path.dirname(checkpoint), "-o", out, "--input-size", "40"]) == 0
    printed = capsys.readouterr().out
    assert "input node: input float32 [-1,40,40,40,4]" in printed
    assert "output node: wt_logits float32 [-1,14,14,14,2]" in printed
    assert "output node: labels_logits float32 [-1,14,14,14,5]" in printed
    assert '--input_shape="input:1,40,40,40,4"' in printed
    assert os.listdir(str(tmp_path)) == ["model.pb"]  # no temporary left

    graph_def = export.load_frozen_graph(out)
    ops = set(node.op for node in graph_def.node)
    assert not graph_def.library.function  # plain operators, nothing for ATC to inline
    assert not ops & {"VarHandleOp", "VariableV2", "ReadVariableOp", "PlaceholderWithDefault",
                      "Switch", "Merge", "PartitionedCall", "StatefulPartitionedCall"}
    batch = np.random.RandomState(1).normal(size=(2, 40, 40, 40, 4)).astype("float32")
    frozen = _run_graph(graph_def, batch)
    expected = _keras_logits(checkpoint, batch)
    for got, want in zip(frozen, expected):
        assert got.shape == want.shape
        assert _max_relative(got, want) < 1e-5


def test_savedmodel_and_fixed_batch(checkpoint, tmp_path, capsys, keras_session):
    out = str(tmp_path / "saved")
    os.makedirs(out)  # an empty folder is written into
    args = ["-m", checkpoint, "-o", out, "--format", "savedmodel", "--batch-size", "1",
            "--padding", "same"]
    assert export_keras.main(args[:-4]) == 0
    assert export_keras.main(args) == 0  # an earlier export is replaced
    assert "input node: input float32 [1,38,38,38,4]" in capsys.readouterr().out
    assert sorted(os.listdir(str(tmp_path))) == ["saved"]
    batch = np.random.RandomState(2).normal(size=(1, 38, 38, 38, 4)).astype("float32")
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], out)
        signature = meta.signature_def[export.SIGNATURE]
        outputs = session.run([signature.outputs[n].name for n in export.OUTPUT_NODES],
                              {signature.inputs["input"].name: batch})
    for got, want in zip(outputs, _keras_logits(checkpoint, batch)):
        assert _max_relative(got, want) < 1e-5


@pytest.mark.parametrize("args, message", [
    (["-m", "{missing}", "-o", "{out}"], "error: checkpoint not found: "),
    (["-m", "{ckpt}", "-o", "{out}", "--input-size", "26"], "error: --input-size must be > 26"),
    (["-m", "{ckpt}", "-o", "{out}", "-mn", "dense24"], "error: checkpoint "),
    (["-m", "{ckpt}", "-o", "{tmp}/no/such/model.pb"], "error: output folder does not exist"),
    (["-m", "{ckpt}", "-o", "{tmp}"], "is a folder; give a .pb file name"),
])
def test_errors_are_one_line(checkpoint, tmp_path, capsys, args, message):
    values = {"missing": str(tmp_path / "missing.h5"), "out": str(tmp_path / "m.pb"),
              "ckpt": checkpoint, "tmp": str(tmp_path)}
    assert export_keras.main([a.format(**values) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not os.path.exists(values["out"])


@pytest.fixture
def run_folder(checkpoint, tmp_path):
    """A training run folder: the checkpoint, its pointer, a log and a file of the user's."""
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, str(run / "tiny_epoch_003.h5"))
    (run / "checkpoint.json").write_text('{"latest": "tiny_epoch_003.h5", "epoch": 3}')
    (run / "history.csv").write_text("epoch,loss\n1,0.5\n")
    (run / "notes.txt").write_text("mine")
    return run


def _contents(folder):
    return dict((name, (folder / name).read_bytes()) for name in sorted(os.listdir(str(folder))))


@pytest.mark.parametrize("target, fmt, message", [
    ("{run}", "savedmodel", "output {run} is the input {run}; choose another -o"),
    ("{tmp}", "savedmodel", "output {tmp} holds the input {run}; choose another -o"),
    ("{run}/tiny_epoch_003.h5", "pb", "output {run}/tiny_epoch_003.h5 is the input {run}/tiny_epoch_003.h5"),
    ("{run}/history.csv", "pb", "output {run}/history.csv exists and is not an earlier export"),
    ("{tmp}/other", "savedmodel", "output folder {tmp}/other exists and is not an earlier SavedModel "
                                  "export (it holds notes.txt)"),
])
def test_an_output_that_is_not_an_earlier_export_is_refused(run_folder, tmp_path, capsys, target, fmt, message):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    values = {"run": str(run_folder), "tmp": str(tmp_path)}
    before = _contents(run_folder), _contents(tmp_path / "other")
    assert export_keras.main(["-m", str(run_folder), "-o", target.format(**values), "--format", fmt]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(**values) in err and err.count("\n") == 1, err
    assert (_contents(run_folder), _contents(tmp_path / "other")) == before


def test_the_checkpoint_file_itself_is_never_the_output(run_folder, capsys):
    path = str(run_folder / "tiny_epoch_003.h5")
    assert export_keras.main(["-m", path, "-o", path]) == 2
    assert "is the input" in capsys.readouterr().err


def test_onnx_export_computes_the_keras_logits(checkpoint, tmp_path, capsys, keras_session):
    onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    out = str(tmp_path / "model.onnx")
    for _ in range(2):  # the second run replaces the first export
        assert export_keras.main(["-m", checkpoint, "-o", out, "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "input node: input float32 [-1,-1,-1,-1,4]" in printed
    assert "operators: Add, Concat, Conv, Mul, Relu, Slice, Transpose" in printed
    assert "checked with ONNX Runtime on a random [1,40,41,42,4] input" in printed
    assert "labels equal on 100.00% of voxels" in printed
    assert os.listdir(str(tmp_path)) == ["model.onnx"]  # no temporary left
    onnx.checker.check_model(onnx.load(out))
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    batch = np.random.RandomState(1).normal(size=(2, 40, 40, 40, 4)).astype("float32")
    for got, want in zip(session.run(list(export.OUTPUT_NODES), {"input": batch}), _keras_logits(checkpoint, batch)):
        assert got.shape == want.shape == (2, 14, 14, 14, got.shape[-1])
        assert _max_relative(got, want) < 1e-5


def test_onnx_export_with_a_fixed_input_and_batch(checkpoint, tmp_path, capsys, keras_session):
    onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    out = str(tmp_path / "model.onnx")
    assert export_keras.main(["-m", checkpoint, "-o", out, "--format", "onnx", "--input-size", "40",
                              "--batch-size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "input node: input float32 [2,40,40,40,4]" in printed
    assert "output node: labels_logits float32 [2,14,14,14,5]" in printed
    assert "checked with ONNX Runtime on a random [2,40,40,40,4] input" in printed
    dims = [d.dim_value for d in onnx.load(out).graph.output[1].type.tensor_type.shape.dim]
    assert dims == [2, 14, 14, 14, 5]


@pytest.mark.parametrize("args, message", [
    (["--padding", "same"], "error: --format onnx writes the valid-padding network"),
    (["--input-size", "26"], "error: --input-size must be > 26"),
    (["-o", "{run}/history.csv"], "exists and is not an earlier export (an ONNX graph with nodes input, "),
    (["-o", "{run}/tiny_epoch_003.h5"], "is the input"),
])
def test_onnx_export_refusals(run_folder, tmp_path, capsys, args, message):
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    values = {"run": str(run_folder)}
    before = _contents(run_folder)
    argv = ["-m", str(run_folder), "-o", str(tmp_path / "m.onnx"), "--format", "onnx"]
    assert export_keras.main(argv + [a.format(**values) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert _contents(run_folder) == before and not os.path.exists(str(tmp_path / "m.onnx"))


def test_onnx_export_without_the_onnx_package_names_the_extra(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    assert export_keras.main(["-m", checkpoint, "-o", str(tmp_path / "m.onnx"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: onnx is not installed: pip install 'densenet3d-keras[onnx]' "
                   "(in a checkout: pip install -e '.[onnx]')\n")
