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

A pathway is streamed as its architecture description says
(:mod:`densenet3d_keras.models.architecture`): every convolution's output is kept as a tensor
of its own; each dense unit and tap reads the pieces it needs (cropped to its own extent)
straight into its batch norm + ReLU and concatenates the normalised parts, so a dense block's
growing state is never copied from unit to unit (:class:`_Pathway`).

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
from collections import namedtuple

import numpy as np

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.core.geometry import MARGIN
from densenet3d_keras.models.architecture import block_name, init_name, tap_name
from densenet3d_keras.models.presets import PATHWAYS, architecture_of

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


#: One operation of a streamed pathway: a convolution (``radius`` 1: 3x3x3) or a scale tap
#: (``radius`` 0, read at the pathway's full depth). ``before``: ``(scale, shift)`` of the batch
#: norm + ReLU that each input piece goes through, or ``None`` (read as it is, cast to ``dtype``);
#: ``kernel``: the convolution's (``None``: a tap that is the features themselves); ``bias``;
#: ``after``: the batch norm + ReLU of the output, or ``None``; ``appends``: the output is
#: appended to the features (dense unit) rather than replacing them (``None`` for a tap).
_Step = namedtuple("_Step", ["radius", "before", "kernel", "bias", "after", "appends", "dtype"])


def _steps(model, architecture, prefix, dtype):
    """The operations of the pathway ``prefix`` of ``model``, in order, from its description.

    Raises:
        ValueError: a layer of the description is missing, or holds another number of units.
    """
    steps = []
    if architecture.init_filters:
        init = model.get_layer(init_name(prefix))
        steps.append(_Step(1, None, _kernel(init, tf.float32), tf.constant(_value(init.bias)), None, False,
                           tf.float32))
    for index, (block, radius) in enumerate(zip(architecture.blocks, architecture.tap_radii), 1):
        layer = model.get_layer(block_name(prefix, index))
        if len(getattr(layer, "convs", ())) != len(block.unit_filters):
            raise ValueError("layer %s does not hold the %d units of %r" % (layer.name, len(block.unit_filters), block))
        for norm, conv in zip(layer.norms, layer.convs):
            if block.dense:  # BN -> ReLU -> conv, appended
                steps.append(_Step(1, _affine(norm), _kernel(conv, dtype), None, None, True, dtype))
            else:  # conv -> BN -> ReLU, replacing
                steps.append(_Step(1, None, _kernel(conv, dtype), None, _affine(norm), False, dtype))
        if block.tap_filters is None:
            steps.append(_Step(0, None, None, None, None, None, tf.float32))
        else:
            tap = model.get_layer(tap_name(prefix, radius))
            steps.append(_Step(0, _affine(tap.norm_in), _kernel(tap.conv, dtype), None, _affine(tap.norm_out),
                               None, dtype))
    return steps


def _keep(steps, depth):
    """Planes each piece keeps for the next slab: how far back its deepest reader reaches.

    Piece 0 is the pathway's input, then one piece per convolution in order. A reader at lag
    ``L`` (a tap reads at ``depth``) with radius ``r`` takes from a piece of lag ``l`` its last
    planes but ``L - l``, plus ``2 r`` of halo."""
    lags, keep, live, lag = [0], [0], [0], 0
    for step in steps:
        reader = depth if step.appends is None else lag
        for piece in live:
            keep[piece] = max(keep[piece], reader - lags[piece] + 2 * step.radius)
        if step.appends is None:
            continue
        lag += step.radius
        lags.append(lag)
        keep.append(0)
        live = live + [len(lags) - 1] if step.appends else [len(lags) - 1]
    return keep


def _raw(kept, new, starts, crops, count, dtype):
    """A layer's input read as it is: each piece's window (see :func:`_norm_relu_pieces_ops`)
    cast to ``dtype``, concatenated."""
    parts = [tf.cast(_window(piece_kept, piece_new, start, start + count, crop), dtype)
             for piece_kept, piece_new, start, crop in zip(kept, new, starts, crops)]
    return tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]


class _Pathway(object):
    """A pathway of the description streamed as pieces: every convolution's output stays a
    tensor of its own (with the planes kept from the previous slab), and each reader takes the
    pieces it needs, cropped to its own extent: a dense unit or transition tap straight into
    its batch norm + ReLU (then the normalised parts are concatenated, so a dense block's
    growing input is never copied as it is), a plain unit or the init convolution as they are.

    A piece's ``lag`` is the number of 3x3x3 convolutions behind it: its planes end ``lag``
    planes before the slab's input does, and it is ``lag`` voxels narrower on each side. A
    reader at lag ``d`` takes from a piece of lag ``l`` its planes ending ``d - l`` before the
    piece's last, cropped by ``d - l`` voxels; taps read at the full depth (the margin), so both
    scales come out on the same grid. Each piece keeps as many planes for the next slab as its
    deepest reader reaches back (:func:`_keep`).

    Args:
        model: a model of :func:`~densenet3d_keras.models.builder.build_model`.
        architecture: its :class:`~densenet3d_keras.models.architecture.Architecture`.
        prefix: the pathway's layer-name prefix (:data:`~densenet3d_keras.models.presets.PATHWAYS`).
        dtype: the convolutions' dtype (``tf.float32``, ``tf.bfloat16``, ``tf.float16``).
    """

    def __init__(self, model, architecture, prefix, dtype):
        self.steps = _steps(model, architecture, prefix, dtype)
        self.depth = architecture.margin
        self.keep = _keep(self.steps, self.depth)

    def __call__(self, x, slab):
        planes = x.shape[1]

        def new_planes(lag):
            return planes if not slab.first else planes - 2 * lag

        pieces = [self._piece(x, 0, slab)]
        taps = []
        for step in self.steps:
            if step.appends is None:
                taps.append(self._run(step, pieces, self.depth, new_planes(self.depth)))
                continue
            lag = pieces[-1][2]
            output = self._run(step, pieces, lag, new_planes(lag + step.radius) + 2 * step.radius)
            piece = self._piece(output, lag + step.radius, slab)
            pieces = pieces + [piece] if step.appends else [piece]
        return taps

    def _piece(self, new, lag, slab):
        """A piece of lag ``lag``: its planes kept from the previous slab, ``new``, ``lag``.
        Pieces are made in the order of :func:`_keep` (one per lag)."""
        keep = self.keep[lag]
        return (slab.carry(new, keep) if keep else new[:, :0]), new, lag

    @staticmethod
    def _run(step, pieces, lag, count):
        """One step on the pieces, reading at ``lag`` ``count`` planes of each (see the class)."""
        kept, new, starts, crops = [], [], [], []
        for piece_kept, piece_new, piece_lag in pieces:
            behind = lag - piece_lag
            kept.append(piece_kept)
            new.append(piece_new)
            starts.append(piece_kept.shape[1] + piece_new.shape[1] - behind - count)
            crops.append(behind)
        if step.before is not None:
            x = _gather_norm_relu(tuple(kept), tuple(new), tuple(starts), tuple(crops), count,
                                  step.before[0], step.before[1], step.dtype)
        else:
            x = _raw(kept, new, starts, crops, count, step.dtype)
        if step.kernel is None:
            return x
        y = _conv(x, step.kernel)
        if step.bias is not None:
            y = tf.nn.bias_add(y, step.bias)
        return y if step.after is None else _post_norm_relu(y, step.after[0], step.after[1])


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
        architecture: the model's :class:`~densenet3d_keras.models.architecture.Architecture`
            (default: the preset of the model's name), whose layers are read.

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

    def __init__(self, model, slab=DEFAULT_SLAB, precision="float32", reuse=DEFAULT_REUSE, architecture=None):
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
            architecture = architecture or architecture_of(model.name)
            self.pathways = [(start, stop, _Pathway(model, architecture, prefix, dtype))
                             for prefix, start, stop in PATHWAYS]
            head = model.get_layer("head")
        except ValueError as error:
            raise ValueError("model %r cannot be streamed: %s" % (model.name, error))
        self.heads = [(_kernel(conv, tf.float32), tf.constant(_value(conv.bias)))
                      for conv in (head.label_conv_15, head.label_conv_27)]
        self.margin = architecture.margin
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
