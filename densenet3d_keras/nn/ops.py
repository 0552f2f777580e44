"""Tensor operations of the dense units: centre crops, a unit's copies and batch norm + ReLU.

Tensors are ``(batch, depth, height, width, channels)``. A dense unit's copies (crop +
concatenation, ReLU + channel slice) and their gradients are compiled into single XLA kernels
where TensorFlow 2 has XLA, in eager mode; ``DENSENET3D_XLA_COPIES=0`` in the environment turns that off
(plain TensorFlow ops, the same results). Why each form was chosen: docs/performance.md.
"""
import os

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import tf

#: Compile a dense unit's copies and their gradients into XLA kernels (``DENSENET3D_XLA_COPIES``).
FUSE_COPIES = os.environ.get("DENSENET3D_XLA_COPIES", "1") != "0"

def centre_crop(x, crop, channels=None):
    """Remove ``crop`` voxels from each side of the three spatial axes [and keep ``channels``].

    ``tf.slice`` rather than ``x[:, c:-c, ...]``: the gradient of a slice is a ``Pad``, that of
    a strided slice a ``StridedSliceGrad``, which on the CPU took a quarter of the
    valid-padding train step (docs/performance.md). Same values either way.

    Args:
        x: ``(batch, D, H, W, C)``.
        crop: voxels removed from each side.
        channels: keep the first ``channels`` channels (default all).
    """
    shape = x.shape.as_list()
    if channels is None or channels == shape[4]:
        if crop == 0:
            return x
        channels = -1
    spatial = [None if s is None else s - 2 * crop for s in shape[1:4]]
    if None not in spatial:
        return tf.slice(x, [0, crop, crop, crop, 0], [-1] + spatial + [channels])
    # Fully convolutional model: sizes known only at run time; keep the static channels.
    cropped = tf.slice(x, [0, crop, crop, crop, 0],
                       tf.concat([[-1], tf.shape(x)[1:4] - 2 * crop, [channels]], axis=0))
    cropped.set_shape([shape[0]] + spatial + [shape[4] if channels == -1 else channels])
    return cropped


def _zero_channels(like, count):
    """``count`` all-zero channels shaped like ``like`` (batch and spatial sizes, dtype)."""
    shape = like.shape.as_list()
    if None in shape[:4]:
        zeros = tf.zeros(tf.concat([tf.shape(like)[:4], [count]], axis=0), dtype=like.dtype)
        zeros.set_shape(shape[:4] + [count])
        return zeros
    return tf.zeros(shape[:4] + [count], dtype=like.dtype)


def _crop_concat_ops(x, y, crop, channels, extra):
    parts = [centre_crop(x, crop, channels), y]
    if extra:
        parts.append(_zero_channels(y, extra))
    return tf.concat(parts, axis=-1)


def _crop_concat_gradient_ops(grad, crop, channels, x_channels, y_channels):
    spatial = [[crop, crop]] * 3
    grad_x = tf.pad(grad[..., :channels], [[0, 0]] + spatial + [[0, x_channels - channels]])
    return grad_x, grad[..., channels:channels + y_channels]


_crop_concat_xla = compat.xla_function(_crop_concat_ops)
_crop_concat_gradient_xla = compat.xla_function(_crop_concat_gradient_ops)

def _fused(forward, backward, *inputs):
    """``forward(*inputs)`` with the gradient ``backward(grad, output)``, both XLA kernels."""
    @tf.custom_gradient
    def fused(*inputs):
        output = forward(*inputs)
        return output, lambda grad: backward(grad, output)

    return fused(*inputs)


def fusing():
    """Whether the copies run as XLA kernels (TensorFlow 2 eager and ``FUSE_COPIES``).

    Off in graph mode (TensorFlow 1.x sessions; frozen graphs for export must hold plain ops).
    """
    return FUSE_COPIES and _crop_concat_xla is not None and not compat.graph_mode()


def crop_concat(x, y, crop, channels, extra):
    """``concat([crop(x)[..., :channels], y, extra zero channels])``: a dense unit's new state.

    Where XLA is available (TensorFlow 2) this and its gradient are each one compiled kernel
    that reads its inputs once and writes its outputs once; TensorFlow's own ops write the
    crop, the concatenation, the gradient slices and their padding separately
    (docs/performance.md).
    """
    if not fusing():
        return _crop_concat_ops(x, y, crop, channels, extra)
    x_channels = x.shape.as_list()[-1]
    y_channels = y.shape.as_list()[-1]
    return _fused(lambda x, y: _crop_concat_xla(x, y, crop, channels, extra),
                  lambda grad, _: _crop_concat_gradient_xla(grad, crop, channels,
                                                            x_channels, y_channels),
                  x, y)


def _relu_slice_ops(x, channels):
    rank = x.shape.rank
    # tf.slice: see centre_crop.
    return tf.nn.relu(tf.slice(x, [0] * rank, [-1] * (rank - 1) + [channels]))


def _relu_slice_gradient_ops(grad, y, extra):
    grad = tf.where(y > 0, grad, tf.zeros_like(grad))
    return tf.pad(grad, [[0, 0]] * (grad.shape.rank - 1) + [[0, extra]])


_relu_slice_xla = compat.xla_function(_relu_slice_ops)
_relu_slice_gradient_xla = compat.xla_function(_relu_slice_gradient_ops)

def relu_slice(x, channels):
    """``relu(x[..., :channels])``, with its gradient, each one XLA kernel where available."""
    if not fusing():
        return _relu_slice_ops(x, channels)
    extra = x.shape.as_list()[-1] - channels
    return _fused(lambda x: _relu_slice_xla(x, channels),
                  lambda grad, y: _relu_slice_gradient_xla(grad, y, extra), x)


def norm_relu(norm, x, training, channels=None):
    """``relu(norm(x))[..., :channels]`` for a 5-D ``x``, the batch norm applied to a 4-D view.

    Batch norm over every axis but the channels is the same on ``(batch, D, H * W, C)``
    (a reshape, no copy), and TensorFlow's oneDNN build has batch-norm kernels for 4-D
    tensors only: on the CPU they are faster than the generic 5-D ones (docs/performance.md).
    ``channels`` (default all) keeps the first channels of a zero-padded input.
    """
    shape = x.shape.as_list()
    if channels is None:
        channels = shape[4]
    if None in shape[1:4]:
        dynamic = tf.shape(x)
        flat = tf.reshape(x, tf.stack([-1, dynamic[1], dynamic[2] * dynamic[3], shape[4]]))
        dynamic = tf.concat([dynamic[:4], [channels]], axis=0)
    else:
        flat = tf.reshape(x, [-1, shape[1], shape[2] * shape[3], shape[4]])
        dynamic = [-1] + shape[1:4] + [channels]
    normalised = norm(flat, training=training)
    if channels == shape[4]:
        y = tf.nn.relu(normalised)
    else:
        y = relu_slice(normalised, channels)
    y = tf.reshape(y, dynamic)
    y.set_shape(shape[:4] + [channels])
    return y
