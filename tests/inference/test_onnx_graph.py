"""The ONNX graph of the valid-padding network: what it holds, and that it computes the Keras logits."""
from collections import Counter

import numpy as np
import pytest

from densenet3d_keras.inference.onnx_graph import INPUT_NAME, OUTPUT_NAMES, conv_weights, onnx_model

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")

#: Operators the graph may hold.
ALLOWED = {"Transpose", "Slice", "Conv", "Mul", "Add", "Relu", "Concat"}


def randomise(model, seed=0):
    """Random kernels and non-trivial batch-norm parameters and statistics (all positive)."""
    rng = np.random.RandomState(seed)
    model.set_weights([w if w.ndim > 1 else rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def tiny():
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    clear_session()
    model = randomise(build_model("tiny", None, padding="valid"))
    yield model
    clear_session()


def _run(proto, batch):
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})


def test_the_graph_holds_plain_operators_only(tiny):
    proto = onnx_model(tiny, "tiny")
    ops = Counter(node.op_type for node in proto.graph.node)
    assert set(ops) <= ALLOWED, ops
    # One Transpose in (NDHWC -> NCDHW), one per output: none around the layers.
    transposes = [node for node in proto.graph.node if node.op_type == "Transpose"]
    assert len(transposes) == 3
    assert sorted(n.input[0] == INPUT_NAME or n.output[0] in OUTPUT_NAMES for n in transposes) == [True] * 3
    # tiny: per pathway 1 init conv and 2 dense blocks of 6 units, each unit one conv over
    # the block's input and (from the 2nd unit) one over the channels added so far, summed;
    # 2 taps; the head one conv per tap it reads (wt: flair's 2, labels: all 4).
    units, blocks = 6, 2
    per_block = 2 * units - 1
    assert ops["Conv"] == 2 * (1 + blocks * per_block + 2) + 2 + 4
    # Only the added channels are concatenated unit by unit, the input once per block; never
    # a concatenation of taps.
    assert ops["Concat"] == 2 * blocks * units
    # Batch norm as x * scale + shift only before the units' and taps' convolutions (one per
    # part of a unit's input); the taps' second batch norm is folded into their convolution.
    # Adds: those shifts, the units' two-part sums, and the head's shares (wt's 2 scales: 1;
    # labels' 2 pathways per scale and the 2 scales: 3).
    assert ops["Mul"] == 2 * (blocks * per_block + 2)
    assert ops["Add"] == 2 * (blocks * per_block + 2) + 2 * blocks * (units - 1) + 1 + 3
    assert ops["Relu"] == 2 * (blocks * per_block + 2 + 2)
    # No constant of zero channels or padding: the largest is a convolution kernel.
    kernels = [init for init in proto.graph.initializer if init.name.endswith("_kernel")]
    assert max(init.ByteSize() for init in proto.graph.initializer) == max(k.ByteSize() for k in kernels)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "depth", "height", "width", 4]


@pytest.mark.parametrize("shape, input_size", [
    ((1, 38, 38, 38, 4), 38),
    ((1, 38, 38, 38, 4), None),
    ((2, 41, 39, 45, 4), None),
    ((1, 27, 30, 28, 4), None),
])
def test_onnx_runtime_computes_the_keras_logits(tiny, shape, input_size):
    batch = np.random.RandomState(sum(shape)).standard_normal(shape).astype(np.float32)
    got = _run(onnx_model(tiny, "tiny", input_size), batch)
    want = [np.asarray(x) for x in tiny.predict_on_batch(batch)]
    for a, b, classes in zip(got, want, (2, 5)):
        assert a.shape == b.shape == shape[:1] + tuple(s - 26 for s in shape[1:4]) + (classes,)
        # float32 sums in another order: relative to the largest logit (about 1e-6 measured).
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), np.max(np.abs(a - b))
        assert np.array_equal(a.argmax(-1), b.argmax(-1))


def test_a_batch_norm_after_a_convolution_is_folded_into_it():
    class Conv(object):
        use_bias = True
        kernel = np.arange(2 * 3, dtype=np.float32).reshape(1, 1, 1, 2, 3)
        bias = np.array([1.0, 2.0, 3.0], dtype=np.float32)

    scale, shift = np.array([2.0, 0.5, -1.0], np.float32), np.array([0.0, 1.0, 2.0], np.float32)
    kernel, bias = conv_weights(Conv(), (scale, shift))
    x = np.array([0.5, -2.0], np.float32)
    plain = x @ Conv.kernel.reshape(2, 3) + Conv.bias
    assert kernel.shape == (3, 2, 1, 1, 1)
    np.testing.assert_allclose(kernel.reshape(3, 2) @ x + bias, plain * scale + shift, rtol=1e-6)


def test_a_same_padding_model_is_refused():
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    clear_session()
    with pytest.raises(ValueError, match="valid-padding network"):
        onnx_model(build_model("tiny", None, padding="same"), "tiny")
    clear_session()
