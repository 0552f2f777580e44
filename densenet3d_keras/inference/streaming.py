"""Slab-streaming inference: the network over a whole box, each layer's voxels computed once.

Tiles (:func:`~densenet3d_keras.inference.predict.predict_fcn` with a tile size) recompute in
every tile the layers' voxels that a neighbouring tile computes too: their inputs overlap by
2 x 13 voxels, about a third of a case's work with the default tiles (docs/performance.md).
:class:`SlabStreamer` instead feeds the box to the valid-padding network a slab of planes at a
time along its first axis. Every layer keeps from one slab to the next the last planes that
its readers still need (2 before a 3x3x3 convolution, more for the dense features that deeper
units and the taps read cropped), so each voxel of each layer is computed once, the box's
cross-section stays in one piece (no overlaps in the other two axes either), and memory grows
with a slab, not with the box.

The first slab is the network's valid output of ``2 margin + 1`` input planes (nothing is kept
yet): one output plane; every later slab adds up to ``slab`` input planes and gives as many
output planes.

A dense pathway keeps every layer's new features as a tensor of its own; each unit and tap
reads the pieces it needs (cropped to its own extent) straight into its batch norm + ReLU and
concatenates the normalised parts, so a dense block's growing state is never copied from
unit to unit (:class:`_DensePathway`).

In inference mode the arithmetic is that of the Keras model: batch norm as ``x * scale +
shift`` with ``scale = gamma / sqrt(variance + epsilon)``, ReLU, convolutions with the model's
kernels. Where TensorFlow 2 has XLA, each reader's batch norm + ReLU of its pieces (with their
crops and kept planes) is one compiled kernel, compiled once per box shape (the first case of
a shape pays about 10-15 s on a 2-core CPU); the concatenations and convolutions are
TensorFlow's (oneDNN convolutions on the CPU). With
``precision="bf16"`` the dense units' and taps' convolutions take bfloat16 inputs and kernels
(oneDNN accumulates in float32) and give bfloat16 features; batch norm computes in float32.

Each new shape of slab (its planes and cross-section) is traced and compiled once, about 10 s
on a 2-core CPU, and TensorFlow keeps the compiled kernels for the life of the process (about
100 MB per shape). Over a cohort, where every brain's box differs, that would grow without
bound; so a block runs zero-padded on the cross-section of an earlier one when that is at most
``reuse`` voxels larger per axis, with the same step, and new cross-sections are rounded up to
a multiple of :data:`SHAPE_GRID` so that later, slightly larger boxes fit them too. Padding
changes none of the block's own outputs (a valid convolution's output depends only on the
input within its reach); it costs the padded voxels' arithmetic.

Streaming needs TensorFlow 2 eager execution (``tf.function``); graph mode (TensorFlow 1.x)
uses tiles (:func:`streaming_supported`).
"""
import logging
import time

import numpy as np

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.core.geometry import MARGIN
from densenet3d_keras.models.presets import PATHWAYS

#: Output planes per slab after the first (memory: docs/performance.md).
DEFAULT_SLAB = 12
#: A block runs on an already compiled cross-section up to this many voxels larger per axis
#: (zero-padded, outputs cropped) instead of compiling its own (docs/performance.md).
DEFAULT_REUSE = 16
#: With reuse, a new cross-section is rounded up to a multiple of this, so that slightly larger
#: boxes of later cases fit it too.
SHAPE_GRID = 8
#: ``--precision`` -> the dtype of the convolutions' inputs, kernels and outputs.
CONV_DTYPES = {"float32": "float32", "bf16": "bfloat16", "mixed_float16": "float16"}


def streaming_supported():
    """``None`` if :class:`SlabStreamer` can run here, else the reason it cannot (one line)."""
    if compat.graph_mode() or compat.IS_TF1:
        return "slab streaming needs TensorFlow 2 eager execution (graph mode uses tiles)"
    return None


class _ShapeRetracingFilter(logging.Filter):
    """Drops TensorFlow's warning that the slab function retraces often: it traces once per slab
    shape on purpose (a cohort's boxes differ), which is not the mistake the warning suspects."""

    def filter(self, record):
        message = record.getMessage()
        return not ("SlabStreamer._forward" in message and "retracing" in message)


def _quiet_shape_retracing():
    logger = tf.get_logger()
    if not any(isinstance(existing, _ShapeRetracingFilter) for existing in logger.filters):
        logger.addFilter(_ShapeRetracingFilter())


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


def _window(kept, new, start, stop, crop):
    """Planes ``[start, stop)`` of ``kept`` then ``new``, ``crop`` voxels off each side of the
    other two axes."""
    part = tf.concat([kept, new], axis=1)[:, start:stop]
    return part[:, :, crop:-crop, crop:-crop] if crop else part


def _post_norm_relu_ops(y, scale, shift):
    return tf.nn.relu(tf.cast(y, tf.float32) * scale + shift)


def _norm_relu_pieces_ops(kept, new, starts, crops, count, scale, shift, dtype):
    """Each piece's part of a dense layer's input, normalised: ``count`` planes of the piece (its
    kept planes then its new ones) from ``starts[i]``, cropped by ``crops[i]`` in the other two
    axes, through ``relu(x * scale + shift)`` with the piece's channels of ``scale`` and
    ``shift``, cast to ``dtype``. One XLA kernel, one output per piece."""
    parts = []
    offset = 0
    for piece_kept, piece_new, start, crop in zip(kept, new, starts, crops):
        part = _window(piece_kept, piece_new, start, start + count, crop)
        channels = part.shape[-1]
        part = tf.cast(part, tf.float32) * scale[offset:offset + channels] + shift[offset:offset + channels]
        parts.append(tf.cast(tf.nn.relu(part), dtype))
        offset += channels
    return tuple(parts)


def _gather_norm_relu(kept, new, starts, crops, count, scale, shift, dtype):
    """A dense layer's input assembled from its pieces and normalised. The pieces are
    normalised by one XLA kernel and concatenated by TensorFlow: XLA's own channel
    concatenation ran at a third of copy speed here, TensorFlow's at copy speed
    (docs/performance.md)."""
    parts = _norm_relu_pieces(kept, new, starts, crops, count, scale, shift, dtype)
    return tf.concat(list(parts), axis=-1) if len(parts) > 1 else parts[0]


def _compiled(function):
    return compat.xla_function(function) or function


_post_norm_relu = _compiled(_post_norm_relu_ops)
_norm_relu_pieces = _compiled(_norm_relu_pieces_ops)


def _conv(x, kernel):
    return tf.nn.conv3d(x, kernel, strides=[1, 1, 1, 1, 1], padding="VALID")


class _Slab(object):
    """The kept planes of one slab step: read in layer order, the new ones collected."""

    def __init__(self, kept=None):
        self.first = kept is None
        self._kept = None if kept is None else iter(kept)
        self.new = []

    def carry(self, x, keep):
        """The planes the previous slab kept before ``x`` (none, ``x[:, :0]``, on the first);
        the last ``keep`` planes of those and ``x`` are kept for the next slab."""
        kept = x[:, :0] if self._kept is None else next(self._kept)
        planes = x.shape[1]
        if planes >= keep:  # a slice of x alone: a copy of ``keep`` planes
            self.new.append(x[:, planes - keep:])
        else:
            self.new.append(tf.concat([kept[:, kept.shape[1] - (keep - planes):], x], axis=1))
        return kept


class _DensePathway(object):
    """A dense pathway as pieces: every layer's new features stay a tensor of their own (with
    the planes kept from the previous slab), and each dense unit and tap reads the pieces it
    needs straight into its batch norm + ReLU, then concatenates the normalised parts: a
    unit's input is never copied as it is, only normalised.

    A piece's ``lag`` is the number of 3x3x3 convolutions behind it: its planes end ``lag``
    planes before the slab's input does, and it is ``lag`` voxels narrower on each side. A
    layer reading at lag ``d`` takes from a piece of lag ``l`` its planes ending ``d - l`` before
    the piece's last, cropped by ``d - l`` voxels; each piece keeps as many planes for the next
    slab as its deepest reader reaches back.
    """

    def __init__(self, model, prefix, dtype):
        init = model.get_layer(prefix + "_init_conv")
        self.init = (_kernel(init, tf.float32), tf.constant(_value(init.bias)))
        blocks = [model.get_layer(prefix + "_block1"), model.get_layer(prefix + "_block2")]
        self.units = [_affine(norm) + (_kernel(conv, dtype),)
                      for block in blocks for norm, conv in zip(block.norms, block.convs)]
        self.taps = [_affine(tap.norm_in) + (_kernel(tap.conv, dtype),) + _affine(tap.norm_out)
                     for tap in (model.get_layer(prefix + "_tap15"), model.get_layer(prefix + "_tap27"))]
        self.split = blocks[0].num_units
        self.depth = 1 + len(self.units)
        self.dtype = dtype
        # Readers of piece j (lag j + 1): the units from j on (at lag i + 1, 2 planes of
        # halo) and the taps at the full depth.
        self.keep = [max([2 + i - j for i in range(j, len(self.units))] + [self.depth - 1 - j])
                     for j in range(len(self.units) + 1)]

    def __call__(self, x, slab):
        planes = x.shape[1]

        def new_planes(lag):
            return planes if not slab.first else planes - 2 * lag

        kernel, bias = self.init
        extended = tf.concat([slab.carry(x, 2), x], axis=1)
        pieces = [self._piece(tf.nn.bias_add(_conv(extended, kernel), bias), 1, slab)]
        taps = []
        for index, (scale, shift, kernel) in enumerate(self.units):
            lag = index + 1
            normalised = self._gather(pieces, lag, new_planes(lag + 1) + 2, scale, shift)
            pieces.append(self._piece(_conv(normalised, kernel), lag + 1, slab))
            if lag == self.split:
                taps.append(self._tap(pieces, self.taps[0], new_planes(self.depth)))
        taps.append(self._tap(pieces, self.taps[1], new_planes(self.depth)))
        return taps

    def _piece(self, new, lag, slab):
        keep = self.keep[lag - 1]
        return (slab.carry(new, keep) if keep else new[:, :0]), new, lag

    def _gather(self, pieces, lag, count, scale, shift):
        kept, new, starts, crops = [], [], [], []
        for piece_kept, piece_new, piece_lag in pieces:
            behind = lag - piece_lag
            kept.append(piece_kept)
            new.append(piece_new)
            starts.append(piece_kept.shape[1] + piece_new.shape[1] - behind - count)
            crops.append(behind)
        return _gather_norm_relu(tuple(kept), tuple(new), tuple(starts), tuple(crops), count, scale, shift,
                                 self.dtype)

    def _tap(self, pieces, weights, count):
        scale, shift, kernel, scale_out, shift_out = weights
        normalised = self._gather(pieces, self.depth, count, scale, shift)
        return _post_norm_relu(_conv(normalised, kernel), scale_out, shift_out)


class _PlainUnit(object):
    """Conv 3x3x3 -> BN -> ReLU (the no-dense pathway)."""

    def __init__(self, conv, norm, dtype):
        self.kernel = _kernel(conv, dtype)
        self.scale, self.shift = _affine(norm)
        self.dtype = dtype

    def __call__(self, x, slab):
        extended = tf.concat([slab.carry(x, 2), x], axis=1)
        return _post_norm_relu(_conv(tf.cast(extended, self.dtype), self.kernel), self.scale, self.shift)


class _Delay(object):
    """The plain pathway's 15-voxel tap: ``crop`` voxels off each side, which along the slab
    axis is a delay of ``crop`` planes."""

    def __init__(self, crop):
        self.crop = int(crop)

    def __call__(self, x, slab):
        kept = slab.carry(x, self.crop)
        start, stop = self.crop - kept.shape[1], kept.shape[1] + x.shape[1] - self.crop
        return _window(kept, x, start, stop, self.crop)


class _PlainPathway(object):
    """A plain (no-dense) pathway: a chain of units, the first chain's output delayed and
    cropped to the second's as the 15-voxel tap."""

    def __init__(self, model, prefix, dtype):
        block1, block2 = model.get_layer(prefix + "_block1"), model.get_layer(prefix + "_block2")
        self.first = [_PlainUnit(c, n, dtype) for c, n in zip(block1.convs, block1.norms)]
        self.second = [_PlainUnit(c, n, dtype) for c, n in zip(block2.convs, block2.norms)]
        self.tap = _Delay(len(self.second))
        self.depth = len(self.first) + len(self.second)

    def __call__(self, x, slab):
        for unit in self.first:
            x = unit(x, slab)
        tap_15 = self.tap(x, slab)
        for unit in self.second:
            x = unit(x, slab)
        return [tap_15, x]


def _pathway(model, prefix, dtype):
    """The pathway ``prefix`` of ``model`` as a streaming stage: ``stage(x, slab)`` -> its two taps."""
    if hasattr(model.get_layer(prefix + "_block1"), "growth_rate"):
        return _DensePathway(model, prefix, dtype)
    return _PlainPathway(model, prefix, dtype)


class SlabStreamer(object):
    """A predictor (batch ``(N, D, H, W, 4)`` -> label logits ``(N, D - 2m, H - 2m, W - 2m, 5)``)
    that streams each block through the network in slabs along its first axis.

    Args:
        model: a model of :func:`~densenet3d_keras.models.builder.build_model` with its
            weights (either padding; only the weights are read, once, here).
        slab: output planes per slab after the first; memory grows with it.
        reuse: a block whose cross-section (its last two axes) is at most ``reuse`` voxels
            smaller per axis than one already streamed runs zero-padded to that one, with its
            slab step, so that it reuses the traced and compiled slab functions (a new shape
            costs about 10 s and 100 MB that TensorFlow keeps for the process); a new
            cross-section is rounded up to a multiple of :data:`SHAPE_GRID` first. 0 streams
            every block at its own shape. The padding reaches none of the block's own outputs.
        precision: ``"float32"``, ``"bf16"`` (bfloat16 convolutions) or ``"mixed_float16"``
            (float16 convolutions).

    Attributes:
        margin: the network's receptive-field radius (13).
        shapes: ``{(height, width): step}``, the cross-sections streamed so far and their step
            (a block of one slab records none).
        last_shape: ``(planes, height, width)`` the last block ran at: with its spare planes
            and on the cross-section it was padded to.
        progress: ``None`` or a callable ``(planes done, planes total)`` called after each slab.

    Raises:
        ValueError: streaming is not supported here (:func:`streaming_supported`), a bad slab
            or precision, or a model without the layers of ``build_model``.
    """

    def __init__(self, model, slab=DEFAULT_SLAB, precision="float32", reuse=DEFAULT_REUSE):
        reason = streaming_supported()
        if reason:
            raise ValueError(reason)
        if int(slab) != slab or slab < 1:
            raise ValueError("slab must be a positive number of planes, got %r" % (slab,))
        if int(reuse) != reuse or reuse < 0:
            raise ValueError("reuse must be a number of voxels >= 0, got %r" % (reuse,))
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
        self.margin = self.pathways[0][2].depth
        self.slab = int(slab)
        self.reuse = int(reuse)
        self.shapes = {}
        self.last_shape = None
        self.progress = None
        self._step = tf.function(self._forward)
        _quiet_shape_retracing()

    def _forward(self, x, kept=None):
        slab = _Slab(kept)
        taps = [stage(x[..., start:stop], slab) for start, stop, stage in self.pathways]
        (flair_15, flair_27), (t1_15, t1_27) = taps
        logits = None
        for (kernel, bias), features in zip(self.heads, ([t1_15, flair_15], [t1_27, flair_27])):
            scores = tf.nn.bias_add(_conv(tf.concat(features, axis=-1), kernel), bias)
            logits = scores if logits is None else logits + scores
        return logits, slab.new

    def plan(self, planes, step=None):
        """:meth:`plan_for` this streamer's slab and margin."""
        return self.plan_for(planes, self.slab, self.margin, step)

    @staticmethod
    def plan_for(planes, slab, margin=MARGIN, step=None):
        """``(first, step, count)``: input planes of the first slab, then ``count`` slabs of
        ``step`` more covering ``planes`` input planes. Unless ``step`` is given, it is the one
        of ``slab // 2 .. slab`` that leaves the fewest planes to spare, then the largest.

        The first slab gives one output plane (``2 margin + 1`` input planes): it is the one
        that holds every layer's planes at once, so it is kept as thin as it can be."""
        margin2 = 2 * margin
        if planes <= margin2:
            raise ValueError("a block needs more than %d planes, got %d" % (margin2, planes))
        first = margin2 + 1
        rest = planes - first
        if step is None:
            if not rest:
                return first, 0, 0
            step = min(range(max(1, slab // 2), slab + 1), key=lambda step: (-rest % step, -step))
        return first, step, -(-rest // step)

    def _shape_for(self, planes, height, width):
        """``(height, width, step)`` to stream a block on: the smallest cross-section streamed
        before that is at most :attr:`reuse` voxels larger per axis, with its step; else the
        block's own (rounded up to :data:`SHAPE_GRID` with reuse), recorded with the step of
        :meth:`plan`."""
        fits = [(h * w, (h, w)) for h, w in self.shapes
                if height <= h <= height + self.reuse and width <= w <= width + self.reuse]
        if fits:
            size = min(fits)[1]
            return size + (self.shapes[size],)
        if self.reuse:
            grid = min(SHAPE_GRID, self.reuse + 1)
            height, width = (-(-height // grid) * grid), (-(-width // grid) * grid)
        step = self.plan(planes)[1]
        if step:  # a one-slab block says nothing about the step
            self.shapes[(height, width)] = step
        return height, width, step

    def predict_block(self, block):
        """Label logits of one ``(D, H, W, 4)`` block: float32 ``(D - 2m, H - 2m, W - 2m, 5)``."""
        block = np.asarray(block, dtype=np.float32)
        margin2 = 2 * self.margin
        if block.ndim != 4 or min(block.shape[:3]) <= margin2:
            raise ValueError("a block must be (D, H, W, C) with every side > %d, got %s"
                             % (margin2, block.shape))
        planes, height, width = block.shape[:3]
        padded_height, padded_width, step = self._shape_for(planes, height, width)
        first, step, count = self.plan(planes, step or None)
        total = first + step * count
        # The spare planes' and columns' outputs fall beyond the block's and are dropped.
        block = np.pad(block, [(0, total - planes), (0, padded_height - height), (0, padded_width - width),
                               (0, 0)])
        self.last_shape = block.shape[:3]
        logits = np.empty((total - margin2,) + tuple(s - margin2 for s in block.shape[1:3])
                          + (self.heads[0][1].shape[0],), dtype=np.float32)
        kept = None
        for start, stop in [(0, first)] + [(first + i * step, first + (i + 1) * step) for i in range(count)]:
            scores, kept = self._step(block[None, start:stop], kept)
            # The first slab gives its planes but 2 margin, the others as many as they take.
            logits[stop - margin2 - scores.shape[1]:stop - margin2] = scores.numpy()[0]
            if self.progress is not None:
                self.progress(stop, total)
        return logits[:planes - margin2, :height - margin2, :width - margin2]

    def __call__(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 5:
            raise ValueError("expected a batch (N, D, H, W, C), got shape %s" % (batch.shape,))
        return np.stack([self.predict_block(block) for block in batch])
