"""OpenVINO and ONNX Runtime against the Keras model: per precision, on batches and on a case.

Tolerances: float32 logits within 1e-4 of TensorFlow's (about 3e-6 measured) and identical
labels; bf16 (OpenVINO) logits within 2% of the largest logit at worst and 0.5% on average
(0.6% and 0.07% typical on the tiny preset, up to 0.24% on average in one run of ten), labels equal wherever float32's decision is
clearer than that difference, and on at least 98% of a case's voxels (99.99% measured with
the trained checkpoint).
"""
import numpy as np
import pytest

from densenet3d_keras.inference.engines import check_engine, engine_predictor
from densenet3d_keras.inference.inferers.engine import EngineInferer
from densenet3d_keras.inference.inferers.registry import build_inferer
from densenet3d_keras.inference.inferers.tiles import TileInferer
from generators.volumes import load_case_volumes
from tests.inference.test_inferers import _config, case, checkpoint  # noqa: F401 (fixtures)
from tests.inference.test_onnx_graph import randomise

#: (engine, precision, the package whose absence skips it).
ENGINES = [("openvino", "float32", "openvino"), ("openvino", "bf16", "openvino"),
           ("onnxruntime", "float32", "onnxruntime")]


def _require(package):
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    pytest.importorskip(package, reason="%s not installed (pip install '.[%s]')"
                        % (package, "openvino" if package == "openvino" else "onnx"))


def _assert_close(got, want, precision, mask=None):
    """``got`` logits against ``want`` within the tolerance of ``precision`` (module docstring)."""
    if mask is not None:
        got, want = got[mask], want[mask]
    difference = np.abs(got - want)
    largest = np.max(np.abs(want))
    agree = np.mean(got.argmax(-1) == want.argmax(-1))
    if precision == "float32":
        assert difference.max() <= 1e-4 and agree == 1.0, (difference.max(), agree)
    else:
        assert difference.max() <= 0.02 * largest and difference.mean() <= 0.005 * largest, (
            difference.max(), difference.mean(), largest)
        # Labels agree wherever float32's two best logits are further apart than twice the
        # largest difference. Random weights leave near ties, which flip from run to run
        # (OpenVINO's bf16 sums vary): overall, 98.96-100% of 1,728 voxels agreed in ten runs,
        # down to 97.2% on a batch of 72.
        best = np.sort(want, axis=-1)
        sure = best[..., -1] - best[..., -2] > 2 * difference.max()
        assert np.all(got.argmax(-1)[sure] == want.argmax(-1)[sure])
        assert agree >= (0.98 if want[..., 0].size > 1000 else 0.95), agree
        assert difference.max() > 0  # it did compute in bfloat16


@pytest.fixture(scope="module")
def tiny():
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    clear_session()
    model = randomise(build_model("tiny", None, padding="valid"), seed=1)
    yield model
    clear_session()


@pytest.fixture(scope="module")
def batches(tiny):
    """``[(batch, Keras label logits)]`` for a few shapes, computed once."""
    found = []
    for shape in [(1, 38, 38, 38, 4), (2, 41, 39, 45, 4), (1, 30, 44, 27, 4)]:
        batch = np.random.RandomState(sum(shape)).standard_normal(shape).astype(np.float32)
        found.append((batch, np.asarray(tiny(batch, training=False)[1])))
    return found


@pytest.mark.parametrize("engine, precision, package", ENGINES)
def test_an_engine_computes_the_keras_logits_of_a_batch(tiny, batches, engine, precision, package):
    _require(package)
    predictor = engine_predictor(tiny, "tiny", engine, precision)
    for batch, want in batches:
        got = predictor(batch)
        assert got.shape == want.shape and got.dtype == np.float32
        _assert_close(got, want, precision)


@pytest.fixture(scope="module")
def reference(case, checkpoint):  # noqa: F811
    """The case's volumes and TensorFlow's float32 segmentation over tiles of 44."""
    volumes = load_case_volumes(case, with_label=False)
    inferer = TileInferer(checkpoint, "tiny", tile_size=44)
    inferer.load(lambda line: None)
    return volumes, inferer.segment(volumes)


@pytest.mark.parametrize("engine, precision, package", ENGINES)
def test_an_engine_segments_a_case_as_tensorflow_does(checkpoint, reference, engine, precision, package):  # noqa: F811
    _require(package)
    volumes, want = reference
    lines = []
    inferer = EngineInferer(checkpoint, "tiny", engine, precision, tile_size=44)
    inferer.load(lines.append)
    got = inferer.segment(volumes)
    assert lines[-1].startswith("engine %s (%s): the network's ONNX graph over tiles of at most 44 " % (engine, precision))
    assert inferer.model is None and inferer.describe() == "tiny fcn %s %s" % (engine, precision)
    assert (got.num_passes, got.pass_shape) == (want.num_passes, want.pass_shape) and got.num_passes > 1
    np.testing.assert_array_equal(got.scored, want.scored)
    _assert_close(got.logits, want.logits, precision, want.scored)


@pytest.mark.parametrize("flags, text", [
    (["--engine", "openvino"], "tiny fcn openvino float32"),
    (["--engine", "openvino", "--precision", "bf16", "--tta"], "tiny fcn openvino bf16 tta"),
    (["--engine", "onnxruntime", "--ensemble", "b.h5"], "tiny fcn onnxruntime float32 ensemble of 2"),
    # bf16 is OpenVINO's own, so graph mode (where Keras has no bf16) does not refuse it.
    (["--engine", "openvino", "--precision", "bf16", "--graph-mode"], "tiny fcn openvino bf16"),
])
def test_an_engine_run_gets_engine_inferers_over_tiles(flags, text):
    _require("openvino" if "openvino" in flags else "onnxruntime")
    config = _config(flags)
    inferer = build_inferer(config)
    assert config.stream is False and config.padding == "valid"
    members = getattr(inferer, "members", [inferer])
    assert all(type(member) is EngineInferer for member in members)
    assert inferer.describe() == text and inferer.unit == "tiles"


@pytest.mark.parametrize("engine, precision, message", [
    ("pytorch", "float32", "unknown --engine 'pytorch' (choose from tensorflow, openvino, onnxruntime)"),
    ("onnxruntime", "bf16", "--engine onnxruntime computes in float32, not --precision bf16 (it has no "
                            "bfloat16 convolution; --engine openvino has)"),
    ("openvino", "mixed_float16", "--engine openvino computes in float32 or bf16, not --precision mixed_float16"),
])
def test_an_engine_that_cannot_run_is_refused(engine, precision, message):
    with pytest.raises(ValueError) as error:
        check_engine(engine, precision)
    assert str(error.value) == message


@pytest.mark.parametrize("engine, package, extra", [
    ("openvino", "openvino", "openvino"), ("onnxruntime", "onnxruntime", "onnx"), ("openvino", "onnx", "openvino"),
])
def test_a_missing_engine_package_names_its_extra(monkeypatch, engine, package, extra):
    import sys

    monkeypatch.setitem(sys.modules, package, None)  # import raises ImportError
    with pytest.raises(ValueError) as error:
        check_engine(engine)
    assert str(error.value) == ("%s is not installed: pip install 'densenet3d-keras[%s]' "
                                "(in a checkout: pip install -e '.[%s]')" % (package, extra, extra))
    check_engine("tensorflow")  # needs none of them
