"""predict_keras.py --engine: the same run (tiles, --tta, --evaluate) on OpenVINO as on
TensorFlow, and the one-line refusals (ensembles: tests/inference/test_engines.py)."""
import os

import nibabel as nib
import numpy as np
import pytest

from tests.cli.predict_runs import error_line, run_predict
from tests.inference.test_inferers import case, checkpoint  # noqa: F401 (fixtures)


def _labels(out, case_id):
    return np.asarray(nib.load(os.path.join(out, case_id + ".nii.gz")).dataobj)


def test_tta_and_evaluation_run_unchanged_on_openvino(case, checkpoint, tmp_path, capsys):  # noqa: F811
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[openvino]')")
    pytest.importorskip("openvino", reason="openvino not installed (pip install '.[openvino]')")
    common = ["-m", checkpoint, "-i", case.directory, "--tile-size", "66", "--tta",
              "--evaluate"]
    outputs = {}
    for name, flags in (("tensorflow", ["--tiles"]), ("openvino", ["--engine", "openvino"])):
        outputs[name] = str(tmp_path / name)
        code, stdout, err = run_predict(common + ["-o", outputs[name]] + flags, capsys)
        assert code == 0, err[-2000:]
        assert os.path.isfile(os.path.join(outputs[name], "metrics.csv"))
        assert "averaging softmax probabilities over 1 model(s) x 8 mirror image(s): 8 forward passes per tile" in stdout
    assert "engine openvino (float32): the network's ONNX graph over tiles of at most 66 voxels" in stdout
    assert '"engine": "openvino"' in stdout  # the run's configuration
    want, got = _labels(outputs["tensorflow"], case.case_id), _labels(outputs["openvino"], case.case_id)
    assert want.any() and np.mean(got == want) >= 0.9999


@pytest.mark.parametrize("flags, message", [
    (["--engine", "onnxruntime", "--precision", "bf16"],
     "error: --engine onnxruntime computes in float32, not --precision bf16"),
    (["--engine", "openvino", "--method", "patch"], "error: --engine openvino runs --method fcn (over tiles)"),
    (["--engine", "openvino", "--padding", "same"], "error: --engine openvino runs the valid-padding network"),
    (["--engine", "pytorch"], "error: argument --engine: invalid choice: 'pytorch'"),
])
def test_an_engine_that_cannot_run_stops_with_one_line(case, checkpoint, tmp_path, capsys, flags, message):  # noqa: F811
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[openvino]')")
    pytest.importorskip("openvino", reason="openvino not installed (pip install '.[openvino]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    out = str(tmp_path / "out")
    try:
        code, _, err = run_predict(["-m", checkpoint, "-i", case.directory, "-o", out] + flags, capsys)
    except SystemExit as exit:  # argparse's usage error
        code, err = exit.code, capsys.readouterr().err
    assert error_line(code, err).startswith(message)
    assert not os.path.exists(out)


def test_a_missing_engine_package_names_the_extra(case, checkpoint, tmp_path, capsys, monkeypatch):  # noqa: F811
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    out = str(tmp_path / "out")
    code, _, err = run_predict(["-m", checkpoint, "-i", case.directory, "-o", out, "--engine", "openvino"], capsys)
    assert error_line(code, err) == ("error: openvino is not installed: pip install 'densenet3d-keras[openvino]' "
                                     "(in a checkout: pip install -e '.[openvino]')")
    assert not os.path.exists(out)
