"""Layer construction, config round-trips and output shapes."""
import numpy as np
import pytest

from densenet3d_keras.compat import keras, tf
from densenet3d_keras.layers import (ChannelSlice, DenseBlock3D, HierarchicalHead, PlainBlock3D,
                                     TransitionDown)

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
    from densenet3d_keras.models import build_model

    model = build_model("tiny")
    names = [w.name for w in model.weights]
    assert any(n.startswith("flair_t2_block1/unit3_conv/kernel") for n in names)
    assert any(n.startswith("t1_t1ce_tap27/bn_out/moving_mean") for n in names)
    assert any(n.startswith("head/label_conv_15/bias") for n in names)
    assert len(set(names)) == len(names)
