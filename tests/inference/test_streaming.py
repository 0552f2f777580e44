"""Slab streaming (densenet3d_keras.inference.streaming) against the Keras valid-padding model."""
import numpy as np
import pytest

from densenet3d_keras.inference import streaming
from densenet3d_keras.models.architecture import Architecture, DenseBlock, PlainBlock
from densenet3d_keras.models.presets import ARCHITECTURES
from tests.inference.test_inference import _randomise_batch_norm

#: Narrow variants of the topologies the presets do not have, each streamed against Keras: a
#: plain pathway, a plain block whose tap is a transition, a dense block whose tap is its
#: features, dense and plain blocks mixed, no init convolution before a dense block.
VARIANTS = {
    "plain": Architecture(None, (PlainBlock([4] * 7), PlainBlock([6] * 6))),
    "plain_transition": Architecture(None, (PlainBlock([4] * 5, tap_filters=3), PlainBlock([5] * 4))),
    "dense_identity_tap": Architecture(6, (DenseBlock(3, 2, tap_filters=None), DenseBlock(4, 3, 7))),
    "mixed": Architecture(5, (PlainBlock([4, 6, 5]), DenseBlock(5, 2, tap_filters=9))),
    "dense_without_init": Architecture(None, (DenseBlock(4, 3, 5), DenseBlock(2, 2, 6))),
}
PLAIN = VARIANTS["plain"]


def _model(name="tiny", architecture=None, seed=0):
    from densenet3d_keras.core.compat import keras
    from densenet3d_keras.models.builder import build_model

    keras.utils.set_random_seed(seed)
    model = build_model(name, None, padding="valid", architecture=architecture)
    _randomise_batch_norm(model, seed)
    return model


@pytest.fixture(scope="module")
def tiny_model():
    return _model("tiny", seed=1)


@pytest.fixture(scope="module")
def plain_model():
    return _model("no_dense", architecture=PLAIN, seed=2)


def _block(shape, seed=0):
    return np.random.RandomState(seed).normal(size=(1,) + tuple(shape) + (4,)).astype(np.float32)


def _keras_logits(model, block):
    return np.asarray(model.predict_on_batch(block)[1])


@pytest.fixture(scope="module")
def streamer(tiny_model):
    """Slabs of up to 4 planes: a block of 46 planes is a first slab and 5 of 4 planes, one
    plane to spare."""
    return streaming.SlabStreamer(tiny_model, slab=4)


BLOCK = (46, 30, 28)


def test_streamed_logits_equal_the_keras_models(tiny_model, streamer):
    block = _block(BLOCK)
    expected = _keras_logits(tiny_model, block)
    calls = []
    streamer.progress = lambda done, total: calls.append((done, total))
    result = streamer(block)
    streamer.progress = None
    assert result.shape == expected.shape == (1, 20, 4, 2, 5)
    assert np.abs(expected).max() > 1.0, "the test model must give non-trivial logits"
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_array_equal(result.argmax(-1), expected.argmax(-1))
    assert streamer.plan(46) == (27, 4, 5)
    assert calls == [(27 + 4 * i, 47) for i in range(6)]


def test_a_block_of_one_output_plane_is_the_first_slab_alone(tiny_model, streamer):
    block = _block((27, 29, 33), seed=1)
    np.testing.assert_allclose(streamer(block), _keras_logits(tiny_model, block), rtol=1e-4, atol=1e-4)


def test_a_plain_pathway_streams_too(plain_model):
    block = _block((40, 28, 30), seed=3)
    expected = _keras_logits(plain_model, block)
    result = streaming.SlabStreamer(plain_model, slab=3, architecture=PLAIN)(block)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_every_preset_streams_as_its_keras_model(name, keras_session):
    """Each row of the table, at its full width, on the smallest block with 3 slabs."""
    model = _model(name, seed=3)
    block = _block((30, 27, 28), seed=10)
    expected = _keras_logits(model, block)
    result = streaming.SlabStreamer(model, slab=2)(block)
    assert result.shape == expected.shape == (1, 4, 1, 2, 5)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_other_topologies_stream_as_their_keras_model(name, keras_session):
    architecture = VARIANTS[name]
    model = _model("tiny", architecture=architecture, seed=4)
    margin = architecture.margin
    block = _block((2 * margin + 9, 2 * margin + 4, 2 * margin + 3), seed=11)
    expected = _keras_logits(model, block)
    assert np.abs(expected).max() > 0.1, "the test model must give non-trivial logits"
    result = streaming.SlabStreamer(model, slab=3, architecture=architecture)(block)
    assert result.shape == expected.shape == (1, 9, 4, 3, 5)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_only_the_weights_are_read_so_a_same_padding_model_streams_the_same(tiny_model, streamer):
    from densenet3d_keras.models.builder import build_model

    same = build_model("tiny", 38, padding="same")
    same.set_weights(tiny_model.get_weights())
    block = _block(BLOCK, seed=4)
    np.testing.assert_allclose(streaming.SlabStreamer(same, slab=4)(block), streamer(block),
                               rtol=1e-6, atol=1e-6)


def test_bf16_convolutions_stay_close_to_float32(tiny_model, streamer):
    block = _block(BLOCK, seed=5)
    exact = streamer(block)
    bf16 = streaming.SlabStreamer(tiny_model, slab=4, precision="bf16")(block)
    scale = np.abs(exact).max()
    assert np.abs(bf16 - exact).max() < 0.05 * scale
    assert np.abs(bf16 - exact).max() > 0, "bf16 must round somewhere"
    assert np.mean(bf16.argmax(-1) == exact.argmax(-1)) > 0.95


@pytest.mark.parametrize("planes, slab, expected", [
    (27, 8, (27, 0, 0)),
    (40, 8, (27, 7, 2)),     # 13 planes: 2 x 7, one to spare (2 x 8 would leave 3)
    (209, 16, (27, 14, 13)),  # 182 = 13 x 14
    (209, 1, (27, 1, 182)),
    (100, 16, (27, 15, 5)),   # 73 planes: 5 x 15, 2 to spare
])
def test_the_plan_covers_the_planes_with_the_fewest_to_spare(planes, slab, expected):
    first, step, count = streaming.SlabStreamer.plan_for(planes, slab)
    assert (first, step, count) == expected
    assert slab // 2 <= step <= slab or count == 0
    assert first + step * count >= planes


def test_a_given_step_is_kept():
    assert streaming.SlabStreamer.plan_for(40, 8, step=5) == (27, 5, 3)   # 13 planes: 3 x 5
    assert streaming.SlabStreamer.plan_for(27, 8, step=5) == (27, 5, 0)


def _traces(streamer):
    return streamer._step.experimental_get_tracing_count()


def test_a_block_within_reuse_runs_on_the_compiled_shape_of_an_earlier_one(tiny_model):
    streamer = streaming.SlabStreamer(tiny_model, slab=4, reuse=8)
    first = _block((46, 34, 30), seed=6)
    np.testing.assert_allclose(streamer(first), _keras_logits(tiny_model, first), rtol=1e-4, atol=1e-4)
    # 34 x 30 rounded up to the grid of 8 for later, larger boxes; one trace each for the
    # first slab and the steady ones.
    assert streaming.SHAPE_GRID == 8
    assert streamer.shapes == {(40, 32): 4} and _traces(streamer) == 2
    # Larger by 2 and 1 voxels, and 40 planes (alone: steps of 2): zero-padded to 40 x 32,
    # steps of 4, nothing traced again, and its own outputs are the Keras model's.
    assert streaming.SlabStreamer.plan_for(40, 4)[1] == 2
    larger = _block((40, 36, 31), seed=7)
    expected = _keras_logits(tiny_model, larger)
    result = streamer(larger)
    assert result.shape == expected.shape == (1, 14, 10, 5, 5)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert streamer.shapes == {(40, 32): 4} and _traces(streamer) == 2
    assert streamer.last_shape == (27 + 4 * 4, 40, 32)
    # 13 voxels narrower than 40, more than reuse (8) allows: a shape of its own.
    narrow = _block((46, 27, 30), seed=8)
    np.testing.assert_allclose(streamer(narrow), _keras_logits(tiny_model, narrow), rtol=1e-4, atol=1e-4)
    assert streamer.shapes == {(40, 32): 4, (32, 32): 4} and _traces(streamer) == 4


def test_reuse_0_streams_every_block_at_its_own_shape(tiny_model):
    streamer = streaming.SlabStreamer(tiny_model, slab=4, reuse=0)
    for shape in ((46, 34, 32), (40, 33, 32)):
        block = _block(shape, seed=9)
        np.testing.assert_allclose(streamer(block), _keras_logits(tiny_model, block), rtol=1e-4, atol=1e-4)
    assert streamer.shapes == {(34, 32): 4, (33, 32): 2} and _traces(streamer) == 4


def test_only_the_slab_functions_retracing_warning_is_filtered(tiny_model):
    import logging

    streaming.SlabStreamer(tiny_model, slab=4)
    streaming.SlabStreamer(tiny_model, slab=4)
    from densenet3d_keras.core.compat import tf

    filters = [f for f in tf.get_logger().filters if isinstance(f, streaming._ShapeRetracingFilter)]
    assert len(filters) == 1

    def record(message):
        return logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, message, None, None)

    ours = ("5 out of the last 9 calls to <bound method SlabStreamer._forward of <...>> triggered "
            "tf.function retracing. Tracing is expensive")
    assert not filters[0].filter(record(ours))
    assert filters[0].filter(record("5 out of the last 9 calls to <function train_step> triggered "
                                    "tf.function retracing."))
    assert filters[0].filter(record("SlabStreamer._forward: something else"))


@pytest.mark.parametrize("kwargs, message", [
    ({"slab": 0}, "slab"),
    ({"slab": 2.5}, "slab"),
    ({"reuse": -1}, "reuse"),
    ({"precision": "float64"}, "precision"),
])
def test_bad_options_are_refused(tiny_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        streaming.SlabStreamer(tiny_model, **kwargs)


def test_blocks_without_output_and_models_without_the_layers_are_refused(streamer):
    from densenet3d_keras.core.compat import keras

    with pytest.raises(ValueError, match="every side > 26"):
        streamer(_block((26, 40, 40)))
    with pytest.raises(ValueError, match=r"\(N, D, H, W, C\)"):
        streamer(np.zeros((30, 30, 30, 4), np.float32))
    inputs = keras.layers.Input((None, None, None, 4))
    other = keras.Model(inputs, keras.layers.Conv3D(5, 3)(inputs), name="other")
    with pytest.raises(ValueError, match="cannot be streamed"):
        streaming.SlabStreamer(other)
