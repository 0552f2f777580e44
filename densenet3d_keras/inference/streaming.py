"""Slab-streaming inference: the network over a whole box, each layer's voxels computed once.

Tiles (:func:`~densenet3d_keras.inference.predict.predict_fcn` with a tile size) recompute in
every tile the layers' voxels that a neighbouring tile computes too: their inputs overlap by
2 x 13 voxels, about a third of a case's work with the default tiles (docs/performance.md).
:class:`SlabStreamer` instead feeds the box to the valid-padding network a slab of planes at a
time along its first axis. Every layer keeps from one slab to the next the last planes of its
input that its next output planes still need: 2 before a 3x3x3 convolution (also what the
dense unit's crop of its input needs), the crop before a delayed tap. Each voxel of each
layer is then computed once, the box's full cross-section stays in one piece (no overlaps in
the other two axes either), and memory grows with a slab, not with the box.

The first slab is the network's valid output of ``2 margin + 1`` input planes (nothing is kept
yet): one output plane; every later slab adds up to ``slab`` input planes and gives as many
output planes.

In inference mode the arithmetic is that of the Keras model: batch norm as ``x * scale +
shift`` with ``scale = gamma / sqrt(variance + epsilon)``, ReLU, convolutions with the model's
kernels. Where TensorFlow 2 has XLA, each unit's batch norm + ReLU (with the kept planes put in
front) and its concatenation are each one compiled kernel; the convolutions are TensorFlow's
(oneDNN on the CPU). With ``precision="bf16"`` the convolutions take bfloat16 inputs and
kernels (oneDNN accumulates in float32); the features between them stay float32.

Streaming needs TensorFlow 2 eager execution (``tf.function``); graph mode (TensorFlow 1.x)
uses tiles (:func:`streaming_supported`).
"""
import time

import numpy as np

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.core.geometry import MARGIN
from densenet3d_keras.models.presets import PATHWAYS

#: Output planes per slab after the first (memory: docs/performance.md).
DEFAULT_SLAB = 16
#: ``--precision`` -> the convolutions' input dtype (the features between them stay float32).
CONV_DTYPES = {"float32": "float32", "bf16": "bfloat16", "mixed_float16": "float16"}


def streaming_supported():
    """``None`` if :class:`SlabStreamer` can run here, else the reason it cannot (one line)."""
    if compat.graph_mode() or compat.IS_TF1:
        return "slab streaming needs TensorFlow 2 eager execution (graph mode uses tiles)"
    return None


def _value(variable):
    return np.asarray(keras.backend.get_value(variable), dtype=np.float32)


def _affine(norm):
    """``(scale, shift)`` of a batch-norm layer in inference mode, float32 constants."""
    gamma, beta = _value(norm.gamma), _value(norm.beta)
    mean, variance = _value(norm.moving_mean), _value(norm.moving_variance)
    scale = (gamma / np.sqrt(variance + np.float32(norm.epsilon))).astype(np.float32)
    return tf.constant(scale), tf.constant((beta - mean * scale).astype(np.float32))


def _kernel(conv, dtype):
    return tf.constant(_value(conv.kernel), dtype=dtype)


# The fused pieces. ``kept`` holds the previous slab's last planes of ``x`` (none on the first
# slab); ``E`` below is the extended input's plane count, ``kept + x``.

def _extend_ops(kept, x, keep):
    extended = tf.concat([kept, x], axis=1)
    return extended, extended[:, extended.shape[1] - keep:]


def _norm_relu_ops(kept, x, scale, shift, start, stop, crop, dtype, keep):
    """``relu(x * scale + shift)`` of the extended input's planes ``[start, stop)`` cropped by
    ``crop`` in the other two axes, cast to ``dtype``; and the last ``keep`` planes to keep."""
    extended, new_kept = _extend_ops(kept, x, keep)
    part = extended[:, start:stop]
    if crop:
        part = part[:, :, crop:-crop, crop:-crop]
    return tf.cast(tf.nn.relu(part * scale + shift), dtype), new_kept


def _unit_concat_ops(kept, x, y):
    """A dense unit's new state: its extended input without its outer voxels, then ``y``."""
    extended = tf.concat([kept, x], axis=1)
    inner = extended[:, 1:-1, 1:-1, 1:-1]
    return tf.concat([inner, tf.cast(y, inner.dtype)], axis=-1)


def _post_norm_relu_ops(y, scale, shift):
    return tf.nn.relu(tf.cast(y, tf.float32) * scale + shift)


def _delay_ops(kept, x, start, stop, crop, keep):
    extended, new_kept = _extend_ops(kept, x, keep)
    part = extended[:, start:stop]
    if crop:
        part = part[:, :, crop:-crop, crop:-crop]
    return part, new_kept


def _compiled(function):
    return compat.xla_function(function) or function


_norm_relu = _compiled(_norm_relu_ops)
_unit_concat = _compiled(_unit_concat_ops)
_post_norm_relu = _compiled(_post_norm_relu_ops)
_delay = _compiled(_delay_ops)
_extend = _compiled(_extend_ops)


def _conv(x, kernel):
    return tf.nn.conv3d(x, kernel, strides=[1, 1, 1, 1, 1], padding="VALID")


class _Slab(object):
    """The kept planes of one slab step: read in layer order, the new ones collected."""

    def __init__(self, kept=None):
        self._kept = None if kept is None else iter(kept)
        self.new = []

    def take(self, x):
        """The planes kept before ``x`` by the previous slab: none (``x[:, :0]``) on the first."""
        return x[:, :0] if self._kept is None else next(self._kept)

    def keep(self, planes):
        self.new.append(planes)


class _InitConv(object):
    """The dense pathway's first convolution (with bias)."""

    def __init__(self, conv):
        self.kernel = _kernel(conv, tf.float32)
        self.bias = tf.constant(_value(conv.bias))

    def __call__(self, x, slab):
        extended, kept = _extend(slab.take(x), x, 2)
        slab.keep(kept)
        return tf.nn.bias_add(_conv(extended, self.kernel), self.bias)


class _DenseUnit(object):
    """BN -> ReLU -> Conv 3x3x3, the output concatenated to the unit's (cropped) input."""

    def __init__(self, norm, conv, dtype):
        self.scale, self.shift = _affine(norm)
        self.kernel = _kernel(conv, dtype)
        self.dtype = dtype

    def __call__(self, x, slab):
        kept = slab.take(x)
        planes = kept.shape[1] + x.shape[1]
        normalised, new_kept = _norm_relu(kept, x, self.scale, self.shift, 0, planes, 0, self.dtype, 2)
        slab.keep(new_kept)
        return _unit_concat(kept, x, _conv(normalised, self.kernel))


class _PlainUnit(object):
    """Conv 3x3x3 -> BN -> ReLU (the no-dense pathway)."""

    def __init__(self, conv, norm, dtype):
        self.kernel = _kernel(conv, dtype)
        self.scale, self.shift = _affine(norm)
        self.dtype = dtype

    def __call__(self, x, slab):
        extended, kept = _extend(slab.take(x), x, 2)
        slab.keep(kept)
        return _post_norm_relu(_conv(tf.cast(extended, self.dtype), self.kernel), self.scale, self.shift)


class _Tap(object):
    """A scale tap: ``crop`` voxels off each side (a delay of ``crop`` planes along the slab
    axis), then BN -> ReLU -> Conv 1x1x1 -> BN -> ReLU, or nothing more for a plain pathway."""

    def __init__(self, crop, layer=None, dtype=tf.float32):
        self.crop = int(crop)
        self.dtype = dtype
        self.layer = layer is not None
        if self.layer:
            self.scale, self.shift = _affine(layer.norm_in)
            self.kernel = _kernel(layer.conv, dtype)
            self.scale_out, self.shift_out = _affine(layer.norm_out)

    def __call__(self, x, slab):
        crop = self.crop
        if crop:
            kept = slab.take(x)
            start, stop = crop - kept.shape[1], kept.shape[1] + x.shape[1] - crop
        if not self.layer:
            if not crop:
                return x
            x, new_kept = _delay(kept, x, start, stop, crop, crop)
            slab.keep(new_kept)
            return x
        if not crop:
            kept, start, stop = x[:, :0], 0, x.shape[1]
        normalised, new_kept = _norm_relu(kept, x, self.scale, self.shift, start, stop, crop, self.dtype,
                                          crop)
        if crop:
            slab.keep(new_kept)
        return _post_norm_relu(_conv(normalised, self.kernel), self.scale_out, self.shift_out)


def _pathway(model, prefix, dtype):
    """``(first, tap_15, second, tap_27)``: the pathway's layers as streaming stages."""
    block1, block2 = model.get_layer(prefix + "_block1"), model.get_layer(prefix + "_block2")
    if hasattr(block1, "growth_rate"):
        first = [_InitConv(model.get_layer(prefix + "_init_conv"))]
        first += [_DenseUnit(n, c, dtype) for n, c in zip(block1.norms, block1.convs)]
        second = [_DenseUnit(n, c, dtype) for n, c in zip(block2.norms, block2.convs)]
        tap_15 = _Tap(block2.num_units, model.get_layer(prefix + "_tap15"), dtype)
        tap_27 = _Tap(0, model.get_layer(prefix + "_tap27"), dtype)
    else:
        first = [_PlainUnit(c, n, dtype) for c, n in zip(block1.convs, block1.norms)]
        second = [_PlainUnit(c, n, dtype) for c, n in zip(block2.convs, block2.norms)]
        tap_15, tap_27 = _Tap(len(second)), _Tap(0)
    return first, tap_15, second, tap_27


def _run_pathway(stages, x, slab):
    first, tap_15, second, tap_27 = stages
    for stage in first:
        x = stage(x, slab)
    scale_15 = tap_15(x, slab)
    for stage in second:
        x = stage(x, slab)
    return scale_15, tap_27(x, slab)


class SlabStreamer(object):
    """A predictor (batch ``(N, D, H, W, 4)`` -> label logits ``(N, D - 2m, H - 2m, W - 2m, 5)``)
    that streams each block through the network in slabs along its first axis.

    Args:
        model: a model of :func:`~densenet3d_keras.models.builder.build_model` with its
            weights (either padding; only the weights are read, once, here).
        slab: output planes per slab after the first; memory grows with it.
        precision: ``"float32"``, ``"bf16"`` (bfloat16 convolutions) or ``"mixed_float16"``
            (float16 convolutions).

    Attributes:
        margin: the network's receptive-field radius (13).
        progress: ``None`` or a callable ``(planes done, planes total)`` called after each slab.

    Raises:
        ValueError: streaming is not supported here (:func:`streaming_supported`), a bad slab
            or precision, or a model without the layers of ``build_model``.
    """

    def __init__(self, model, slab=DEFAULT_SLAB, precision="float32"):
        reason = streaming_supported()
        if reason:
            raise ValueError(reason)
        if int(slab) != slab or slab < 1:
            raise ValueError("slab must be a positive number of planes, got %r" % (slab,))
        if precision not in CONV_DTYPES:
            raise ValueError("precision must be one of %s, got %r" % (", ".join(CONV_DTYPES), precision))
        dtype = tf.as_dtype(CONV_DTYPES[precision])
        try:
            self.pathways = [(start, stop, _pathway(model, prefix, dtype)) for prefix, start, stop in PATHWAYS]
            head = model.get_layer("head")
        except ValueError as error:
            raise ValueError("model %r cannot be streamed: %s" % (model.name, error))
        self.heads = [(_kernel(conv, tf.float32), tf.constant(_value(conv.bias)))
                      for conv in (head.label_conv_15, head.label_conv_27)]
        first, _, second, _ = self.pathways[0][2]
        self.margin = len(first) + len(second)
        self.slab = int(slab)
        self.precision = precision
        self.progress = None
        self._step = tf.function(self._forward)

    def _forward(self, x, kept=None):
        slab = _Slab(kept)
        taps = [_run_pathway(stages, x[..., start:stop], slab) for start, stop, stages in self.pathways]
        (flair_15, flair_27), (t1_15, t1_27) = taps
        logits = None
        for (kernel, bias), features in zip(self.heads, ([t1_15, flair_15], [t1_27, flair_27])):
            scores = tf.nn.bias_add(_conv(tf.concat(features, axis=-1), kernel), bias)
            logits = scores if logits is None else logits + scores
        return logits, slab.new

    def plan(self, planes):
        """``(first, step, count)``: input planes of the first slab, then ``count`` slabs of
        ``step`` more, covering ``planes`` input planes with fewer than ``count`` planes to spare.

        The first slab gives one output plane (``2 margin + 1`` input planes): it is the one
        that holds every layer's planes at once, so it is kept as thin as it can be."""
        margin2 = 2 * self.margin
        if planes <= margin2:
            raise ValueError("a block needs more than %d planes, got %d" % (margin2, planes))
        first = margin2 + 1
        rest = planes - first
        count = -(-rest // self.slab)
        step = -(-rest // count) if count else 0
        return first, step, count

    def predict_block(self, block):
        """Label logits of one ``(D, H, W, 4)`` block: float32 ``(D - 2m, H - 2m, W - 2m, 5)``."""
        block = np.asarray(block, dtype=np.float32)
        margin2 = 2 * self.margin
        if block.ndim != 4 or min(block.shape[:3]) <= margin2:
            raise ValueError("a block must be (D, H, W, C) with every side > %d, got %s"
                             % (margin2, block.shape))
        planes = block.shape[0]
        first, step, count = self.plan(planes)
        total = first + step * count
        if total > planes:  # the spare planes' outputs fall beyond the block's and are dropped
            spare = np.zeros((total - planes,) + block.shape[1:], dtype=np.float32)
            block = np.concatenate([block, spare])
        logits = np.empty((total - margin2,) + tuple(s - margin2 for s in block.shape[1:3])
                          + (self.heads[0][1].shape[0],), dtype=np.float32)
        scores, kept = self._step(block[None, :first])
        logits[:first - margin2] = scores.numpy()[0]
        self._report(first, total)
        for index in range(count):
            start = first + index * step
            scores, kept = self._step(block[None, start:start + step], kept)
            logits[start - margin2:start - margin2 + step] = scores.numpy()[0]
            self._report(start + step, total)
        return logits[:planes - margin2]

    def _report(self, done, total):
        if self.progress is not None:
            self.progress(done, total)

    def __call__(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 5:
            raise ValueError("expected a batch (N, D, H, W, C), got shape %s" % (batch.shape,))
        outputs = []
        for block in batch:
            outputs.append(self.predict_block(block))
        return np.stack(outputs)
