"""Layer construction, config round-trips and output shapes."""
import numpy as np
import pytest

from densenet3d_keras.nn import ops as ops_module
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.nn.layers import (ChannelSlice,
                                        DenseBlock3D,
                                        HierarchicalHead,
                                        PlainBlock3D,
                                        TransitionDown)
from densenet3d_keras.nn.batchnorm import PaddedBatchNormalization

CASES = [
    # (layer factory, input shape without batch, expected output shape without batch)
    (lambda: DenseBlock3D(3, 4), (10, 10, 10, 6), (10, 10, 10, 18)),
    (lambda: DenseBlock3D(3, 4, padding="valid"), (10, 10, 10, 6), (4, 4, 4, 18)),
    (lambda: DenseBlock3D(2, 5, padding="valid", kernel_size=5), (12, 12, 12, 1), (4, 4, 4, 11)),
    (lambda: PlainBlock3D([4, 6, 8]), (9, 9, 9, 2), (9, 9, 9, 8)),
    (lambda: PlainBlock3D([4, 6, 8], padding="valid"), (9, 9, 9, 2), (3, 3, 3, 8)),
    (lambda: TransitionDown(7), (6, 6, 6, 3), (6, 6, 6, 7)),
    (lambda: TransitionDown(7, crop=2), (8, 8, 8, 3), (4, 4, 4, 7)),
    (lambda: TransitionDown(7, pool=True, post_activation=False), (8, 8, 8, 3), (4, 4, 4, 7)),
    (lambda: ChannelSlice(2, 4), (5, 5, 5, 4), (5, 5, 5, 2)),
]


@pytest.mark.parametrize("factory, input_shape, output_shape", CASES)
def test_output_shape_and_compute_output_shape(keras_session, factory, input_shape, output_shape):
    layer = factory()
    x = np.random.RandomState(0).randn(2, *input_shape).astype(np.float32)
    y = layer(tf.constant(x), training=False) if not isinstance(layer, ChannelSlice) else layer(tf.constant(x))
    assert tuple(y.shape) == (2,) + output_shape
    assert tuple(layer.compute_output_shape((2,) + input_shape).as_list()) == (2,) + output_shape


@pytest.mark.parametrize("factory, input_shape, output_shape", CASES)
def test_config_round_trip(keras_session, factory, input_shape, output_shape):
    layer = factory()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


def test_dense_block_concatenates_input_first(keras_session):
    layer = DenseBlock3D(2, 3)
    x = np.random.RandomState(1).randn(1, 6, 6, 6, 4).astype(np.float32)
    y = layer(tf.constant(x), training=False).numpy()
    np.testing.assert_array_equal(y[..., :4], x)


def test_dense_block_valid_equals_same_in_the_centre(keras_session):
    same = DenseBlock3D(3, 4, padding="same")
    valid = DenseBlock3D(3, 4, padding="valid")
    x = tf.constant(np.random.RandomState(2).randn(1, 11, 11, 11, 5).astype(np.float32))
    same(x, training=False)
    valid(x, training=False)
    valid.set_weights(same.get_weights())
    a = same(x, training=False).numpy()[:, 3:-3, 3:-3, 3:-3]
    b = valid(x, training=False).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_head_crops_sums_scales_and_orders_t1_first(keras_session):
    head = HierarchicalHead(2, 5, crop=1)
    rng = np.random.RandomState(3)
    flair_15, flair_27, t1_15, t1_27 = [tf.constant(rng.randn(1, 5, 5, 5, c).astype(np.float32))
                                        for c in (3, 4, 2, 6)]
    wt, labels = head([flair_15, flair_27, t1_15, t1_27])
    assert tuple(wt.shape) == (1, 3, 3, 3, 2) and tuple(labels.shape) == (1, 3, 3, 3, 5)
    # The label convolution of the 15-voxel scale reads [t1_15, flair_15]: 2 + 3 channels.
    assert head.label_conv_15.kernel.shape[-2] == 5
    assert head.label_conv_27.kernel.shape[-2] == 10
    kernel, bias = [w.numpy() for w in head.wt_conv_15.weights]
    kernel27, bias27 = [w.numpy() for w in head.wt_conv_27.weights]
    expected = (np.einsum("bzyxc,ck->bzyxk", flair_15.numpy()[:, 1:-1, 1:-1, 1:-1], kernel[0, 0, 0]) + bias
                + np.einsum("bzyxc,ck->bzyxk", flair_27.numpy()[:, 1:-1, 1:-1, 1:-1], kernel27[0, 0, 0]) + bias27)
    np.testing.assert_allclose(wt.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("factory, message", [
    (lambda: DenseBlock3D(0, 12), "num_units"),
    (lambda: DenseBlock3D(6, 12, padding="full"), "padding"),
    (lambda: DenseBlock3D(6, 12, kernel_size=2), "odd"),
    (lambda: PlainBlock3D([]), "at least one"),
    (lambda: TransitionDown(0), "filters"),
    (lambda: TransitionDown(4, crop=-1), "crop"),
    (lambda: HierarchicalHead(crop=-2), "crop"),
    (lambda: ChannelSlice(3, 2), "start < stop"),
])
def test_bad_arguments_raise_value_error(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


def test_hierarchical_sub_layer_names(keras_session):
    from densenet3d_keras.models.builder import build_model

    model = build_model("tiny")
    names = [w.name for w in model.weights]
    assert any(n.startswith("flair_t2_block1/unit3_conv/kernel") for n in names)
    assert any(n.startswith("t1_t1ce_tap27/bn_out/moving_mean") for n in names)
    assert any(n.startswith("head/label_conv_15/bias") for n in names)
    assert len(set(names)) == len(names)


def _trained_like(layer_weights, seed):
    """Non-trivial values for batch-norm weights (gamma, beta, moving mean, moving variance)."""
    rng = np.random.RandomState(seed)
    return [rng.uniform(0.5, 2.0, w.shape).astype(np.float32) if i % 4 in (0, 3)
            else rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for i, w in enumerate(layer_weights)]


@pytest.mark.parametrize("training", [True, False])
def test_padded_batch_norm_matches_keras_batch_norm(keras_session, training):
    """Extra zero channels: same output on the real ones, zeros on the rest, same updates."""
    rng = np.random.RandomState(0)
    x = (rng.randn(2, 5, 7, 6) * 3 + 1).astype(np.float32)
    padded_x = np.concatenate([x, np.zeros((2, 5, 7, 10), np.float32)], axis=-1)
    reference = keras.layers.BatchNormalization(momentum=0.9)
    padded = PaddedBatchNormalization(channels=6, momentum=0.9)
    reference.build((None, 5, 7, 6))
    padded.build((None, 5, 7, 16))
    assert [tuple(w.shape) for w in padded.weights] == [tuple(w.shape) for w in reference.weights]
    start = _trained_like(reference.get_weights(), seed=1)
    reference.set_weights(start)
    padded.set_weights(start)
    with tf.GradientTape(persistent=True) as tape:
        inputs = [tf.constant(x), tf.constant(padded_x)]
        tape.watch(inputs)
        expected = reference(inputs[0], training=training)
        got = padded(inputs[1], training=training)
        weights = tf.sin(tf.range(6, dtype=tf.float32))
        losses = [tf.reduce_sum(expected * weights), tf.reduce_sum(got[..., :6] * weights)]
    assert got.shape == (2, 5, 7, 16)
    np.testing.assert_allclose(got[..., :6].numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(got[..., 6:].numpy() == 0)
    for a, b in zip(reference.get_weights(), padded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    if training:  # the moving statistics moved
        assert not np.allclose(reference.get_weights()[2], start[2])
    grads = [tape.gradient(loss, [x_, layer.gamma, layer.beta])
             for loss, x_, layer in zip(losses, inputs, (reference, padded))]
    np.testing.assert_allclose(grads[1][0].numpy()[..., :6], grads[0][0].numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(grads[0][1:], grads[1][1:]):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_padded_batch_norm_rejects_too_few_channels(keras_session):
    with pytest.raises(ValueError, match="fewer than"):
        PaddedBatchNormalization(channels=8).build((None, 4, 4, 6))


def _block_results(padding, alignment, x):
    """Outputs, gradients, updated weights and inference outputs of a fresh block on ``x``."""
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, DenseBlock3D(3, 6, padding=padding,
                                             channel_alignment=alignment)(inputs))
    model.set_weights(_trained_like_block(model))
    start = model.get_weights()
    with tf.GradientTape() as tape:
        inputs = tf.constant(x)
        tape.watch(inputs)
        outputs = model(inputs, training=True)
        loss = tf.reduce_sum(outputs * tf.cos(tf.range(outputs.shape[-1], dtype=tf.float32)))
    grads = tape.gradient(loss, [inputs] + model.trainable_weights)
    return (outputs.numpy(), [g.numpy() for g in grads], model.get_weights(),
            model(x, training=False).numpy(), start)


def _trained_like_block(model):
    rng = np.random.RandomState(5)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape.as_list())
        if "kernel" in weight.name:
            values.append(rng.randn(*shape).astype(np.float32) * 0.2)
        elif "gamma" in weight.name or "moving_variance" in weight.name:
            values.append(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        else:
            values.append(rng.uniform(-0.5, 0.5, shape).astype(np.float32))
    return values


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("fuse", [False, True])
def test_dense_block_channel_padding_and_fusion_change_nothing(keras_session, monkeypatch,
                                                               padding, fuse):
    """Zero channels appended for batch norm, and the XLA-fused copies, give the plain results.

    Reference: no padding, TensorFlow ops only. Compared: outputs in training and inference
    mode, the gradients of the input and of every weight, the moving statistics after a step.
    """
    x = np.random.RandomState(2).randn(2, 12, 12, 12, 10).astype(np.float32)
    monkeypatch.setattr(ops_module, "FUSE_COPIES", False)
    reference = _block_results(padding, 1, x)
    if fuse:
        assert ops_module._crop_concat_xla is not None  # TensorFlow 2: XLA is there
        calls = []
        for name in ("_crop_concat_xla", "_crop_concat_gradient_xla", "_relu_slice_xla",
                     "_relu_slice_gradient_xla"):
            original = getattr(ops_module, name)
            monkeypatch.setattr(ops_module, name,
                                lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    monkeypatch.setattr(ops_module, "FUSE_COPIES", fuse)
    result = _block_results(padding, 16, x)
    if fuse:
        assert set(calls) == {"_crop_concat_xla", "_crop_concat_gradient_xla",
                              "_relu_slice_xla", "_relu_slice_gradient_xla"}
    (out_a, grads_a, weights_a, infer_a, start), (out_b, grads_b, weights_b, infer_b, _) = \
        reference, result
    assert out_a.shape == out_b.shape == (2,) + ((6,) * 3 if padding == "valid" else (12,) * 3) + (28,)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(infer_b, infer_a, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.max(np.abs(a)))
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    assert any(not np.allclose(a, s) for a, s in zip(weights_a, start))  # moving statistics moved


def test_dense_block_pads_its_batch_norm_inputs(keras_session, monkeypatch):
    """Units whose channel count is not a multiple of 16 get zero channels up to one."""
    seen = []
    original = PaddedBatchNormalization.call

    def recording_call(self, inputs, training=None):
        seen.append((self.name, inputs.shape.as_list()[-1]))
        return original(self, inputs, training=training)

    monkeypatch.setattr(PaddedBatchNormalization, "call", recording_call)
    block = DenseBlock3D(3, 12, padding="valid")
    y = block(tf.zeros((1, 10, 10, 10, 24)), training=True)
    assert y.shape == (1, 4, 4, 4, 60)
    assert [norm.channels for norm in block.norms] == [24, 36, 48]
    # 36 real channels arrive as 48 (12 zeros appended); 24 (the block input) and 48 as they are.
    assert seen == [("unit1_bn", 24), ("unit2_bn", 48), ("unit3_bn", 48)]
    assert [tuple(conv.kernel.shape) for conv in block.convs] == [
        (3, 3, 3, 24, 12), (3, 3, 3, 36, 12), (3, 3, 3, 48, 12)]
    assert block.get_config()["channel_alignment"] == 16
