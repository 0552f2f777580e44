"""Slab streaming through OpenVINO or ONNX Runtime: the streamed slab function as ONNX graphs.

:class:`~densenet3d_keras.inference.streaming.SlabStreamer` runs each slab as a TensorFlow
function of the slab's input planes and the planes every layer kept from the previous slab.
That function is pure, so it can be written as an ONNX graph too: :func:`slab_graph` walks the
same pathway description with :class:`OnnxOps` instead of TensorFlow's ops (the same pieces,
windows, crops and kept planes), and :class:`EngineStreamer` runs the graphs slab after slab,
feeding each one's kept planes to the next. Each voxel of each layer is computed once, as in
TensorFlow's streaming, where tiles recompute their 26-voxel overlaps.

The graphs are channels-first (``NCDHW``, planes on axis 2) with static shapes: one per
signature (the slab's planes and cross-section and the kept planes' shapes), which is three
for a box: the first slab, the second (whose kept planes are still short) and every later one.
OpenVINO compiles a signature in about a second here; the streamer keeps the last
:data:`COMPILED_SIGNATURES` and pads a box to an earlier cross-section as
:class:`~densenet3d_keras.inference.streaming.BlockStreamer` describes, so a cohort reuses them.

In the graph:

- a dense unit's or tap's batch norm + ReLU is ``Relu(x * scale + shift)`` per piece, then the
  pieces are concatenated; a batch norm after a convolution (plain units, taps) is folded into
  that convolution's kernel and bias;
- a piece's window is a ``Slice`` of its new planes, of its kept planes, or of their
  ``Concat`` where it spans both;
- the head's two scales are one 1x1x1 ``Conv`` over the four concatenated taps.

Inputs: ``slab`` float32 ``(1, 4, planes, H, W)`` and ``kept_<i>``; outputs ``logits``
``(1, 5, planes out, H - 26, W - 26)`` and ``new_<i>``, the planes kept for the next slab.
"""
from collections import OrderedDict, namedtuple

import numpy as np

from densenet3d_keras.inference.engines import ENGINE_SLABS, OPENVINO_PRECISIONS
from densenet3d_keras.inference.onnx_graph import OPSET, Graph, conv_weights_of
from densenet3d_keras.inference.streaming import (DEFAULT_REUSE, BlockStreamer, SlabCarry, numpy_constant,
                                                  streamed_pathways, value as _value)

#: Signatures (slab and kept shapes) an engine keeps compiled: a box needs three.
COMPILED_SIGNATURES = 6

#: A tensor of the graph being written: its name and static NCDHW shape.
Tensor = namedtuple("Tensor", ["name", "shape"])


class OnnxOps(object):
    """The operations of :class:`~densenet3d_keras.inference.streaming.TensorOps`, written into
    an ONNX graph (``NCDHW``; planes on axis 2) instead of run.

    Args:
        graph: the :class:`~densenet3d_keras.inference.onnx_graph.Graph` being written.
    """

    def __init__(self, graph):
        self.graph = graph
        self._count = 0

    def _name(self, kind):
        self._count += 1
        return "%s_%d" % (kind, self._count)

    def node(self, op, inputs, shape, kind=None, **attributes):
        """A node ``op`` over the tensors ``inputs``; returns its :data:`Tensor` of ``shape``
        (its name: ``kind`` or the op's, numbered)."""
        name = self._name(kind or op.lower())
        return Tensor(self.graph.node(op, [x.name if isinstance(x, Tensor) else x for x in inputs], name,
                                      **attributes), tuple(shape))

    def constant(self, array, dtype=np.float32):
        """An initializer holding ``array``; its name."""
        return self.graph.constant(self._name("const"), array, dtype)

    def slice(self, x, starts, stops, axes):
        """``x[starts:stops]`` along ``axes``; ``x`` itself where that is all of it."""
        shape = list(x.shape)
        if all(start == 0 and stop == shape[axis] for start, stop, axis in zip(starts, stops, axes)):
            return x
        for start, stop, axis in zip(starts, stops, axes):
            shape[axis] = stop - start
        kind = "slice_" + "".join("dhw"[axis - 2] if axis > 1 else "c" for start, stop, axis in zip(starts, stops, axes)
                                  if (start, stop) != (0, x.shape[axis]))
        return self.node("Slice", [x, self.constant(starts, np.int64), self.constant(stops, np.int64),
                                   self.constant(axes, np.int64)], shape, kind)

    def concat(self, parts, axis):
        """``parts`` concatenated along ``axis``."""
        if len(parts) == 1:
            return parts[0]
        shape = list(parts[0].shape)
        shape[axis] = sum(part.shape[axis] for part in parts)
        return self.node("Concat", parts, shape, "concat_%s" % "ncdhw"[axis], axis=axis)

    @staticmethod
    def planes(x):
        return 0 if x is None else x.shape[2]

    @staticmethod
    def empty(x):
        return None

    def last(self, x, count):
        if x is None or count <= 0:
            return None
        planes = x.shape[2]
        return self.slice(x, [max(0, planes - count)], [planes], [2])

    def join(self, kept, x):
        return x if kept is None else self.concat([kept, x], 2)

    def window(self, kept, new, start, count, crop):
        """Planes ``[start, start + count)`` of ``kept`` then ``new``, ``crop`` voxels off each
        side of the other two axes."""
        held = self.planes(kept)
        if start >= held:
            x, start = new, start - held
        elif start + count <= held:
            x = kept
        else:
            x = self.join(kept, new)
        height, width = x.shape[3:]
        return self.slice(x, [start, crop, crop], [start + count, height - crop, width - crop], [2, 3, 4])

    def norm_relu(self, x, scale, shift):
        """``Relu(x * scale + shift)`` per channel."""
        shape = (-1, 1, 1, 1)
        scaled = self.node("Mul", [x, self.constant(scale.reshape(shape))], x.shape)
        return self.node("Relu", [self.node("Add", [scaled, self.constant(shift.reshape(shape))], x.shape)],
                         x.shape)

    def conv(self, x, kernel, bias, relu=False):
        """An unpadded stride-1 convolution with an ONNX-layout ``kernel`` [and ``bias``], then
        ReLU if asked."""
        inputs = [x, self.constant(kernel)] + ([] if bias is None else [self.constant(bias)])
        size = kernel.shape[2:]
        shape = (x.shape[0], kernel.shape[0]) + tuple(s - k + 1 for s, k in zip(x.shape[2:], size))
        y = self.node("Conv", inputs, shape, kernel_shape=list(size), pads=[0] * 6, strides=[1, 1, 1])
        return self.node("Relu", [y], shape) if relu else y

    def run(self, step, kept, new, starts, crops, count):
        """One streamed step (see :meth:`~densenet3d_keras.inference.streaming.TensorOps.run`):
        the pieces' windows concatenated, then one batch norm + ReLU over them all (OpenVINO
        runs that as one fused kernel into the convolution; normalising each piece on its own
        and concatenating the results took twice as long)."""
        x = self.concat([self.window(piece_kept, piece_new, start, count, crop)
                         for piece_kept, piece_new, start, crop in zip(kept, new, starts, crops)], 1)
        if step.before is not None:
            x = self.norm_relu(x, *step.before)
        if step.kernel is None:
            return x
        kernel, bias = conv_weights_of(step.kernel, step.bias, step.after)
        return self.conv(x, kernel, bias, relu=step.after is not None)


def slab_graph(pathways, head, input_shape, kept_shapes=None):
    """The ONNX graph of one slab of a box streamed as ``pathways`` and ``head`` describe.

    Args:
        pathways: ``[(first channel, stop channel, pathway)]`` of
            :func:`~densenet3d_keras.inference.streaming.streamed_pathways` with
            :func:`~densenet3d_keras.inference.streaming.numpy_constant` weights.
        head: ``[(kernel, bias)]`` of the label head's two scales (Keras layout, numpy).
        input_shape: ``(1, channels, planes, height, width)`` of the slab.
        kept_shapes: the shapes of the planes the previous slab kept (its outputs ``new_<i>``),
            ``None`` for none.

    Returns:
        ``(proto, new_shapes)``: the ``onnx.ModelProto`` and the shapes of its ``new_<i>``.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = Graph(helper, numpy_helper)
    ops = OnnxOps(graph)
    x = Tensor("slab", tuple(input_shape))
    kept = None if kept_shapes is None else [Tensor("kept_%d" % i, tuple(shape)) for i, shape in enumerate(kept_shapes)]
    carry = SlabCarry(kept, ops)
    taps = [stage(ops.slice(x, [start], [stop], [1]), carry) for start, stop, stage in pathways]
    (flair_15, flair_27), (t1_15, t1_27) = taps
    (kernel_15, bias_15), (kernel_27, bias_27) = [conv_weights_of(kernel, bias) for kernel, bias in head]
    features = ops.concat([t1_15, flair_15, t1_27, flair_27], 1)
    logits = ops.conv(features, np.concatenate([kernel_15, kernel_27], axis=1), bias_15 + bias_27)
    graph.node("Identity", [logits.name], "logits")
    outputs = [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, list(logits.shape))]
    new_shapes = []
    for index, tensor in enumerate(carry.new):
        graph.node("Identity", [tensor.name], "new_%d" % index)
        outputs.append(helper.make_tensor_value_info("new_%d" % index, onnx.TensorProto.FLOAT, list(tensor.shape)))
        new_shapes.append(tensor.shape)
    inputs = [helper.make_tensor_value_info(tensor.name, onnx.TensorProto.FLOAT, list(tensor.shape))
              for tensor in [x] + (kept or [])]
    proto = helper.make_model(helper.make_graph(graph.nodes, "slab", inputs, outputs, graph.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="densenet3d_keras")
    proto.ir_version = min(proto.ir_version, 8)
    return proto, new_shapes


class _OpenVinoRunner(object):
    """Compiles a slab graph with OpenVINO for the CPU; runs it on named arrays."""

    def __init__(self, precision):
        import openvino

        self._core = openvino.Core()
        self.config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        self.bf16 = "BF16" in self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")

    def compile(self, proto):
        """A function from the named inputs to the graph's outputs, in order."""
        compiled = self._core.compile_model(self._core.read_model(proto.SerializeToString()), "CPU", self.config)
        request = compiled.create_infer_request()

        def run(inputs):
            results = request.infer(inputs)
            return [np.asarray(results[output]) for output in compiled.outputs]
        return run


class _OnnxRuntimeRunner(object):
    """An ONNX Runtime CPU session per slab graph."""

    bf16 = False

    def __init__(self, precision="float32"):
        import onnxruntime

        self._onnxruntime = onnxruntime

    def compile(self, proto):
        """A function from the named inputs to the graph's outputs, in order."""
        session = self._onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return lambda inputs: session.run(names, inputs)


RUNNERS = {"openvino": _OpenVinoRunner, "onnxruntime": _OnnxRuntimeRunner}


class EngineStreamer(BlockStreamer):
    """A predictor like :class:`~densenet3d_keras.inference.streaming.SlabStreamer` (batch
    ``(N, D, H, W, 4)`` -> label logits ``(N, D - 2m, H - 2m, W - 2m, 5)``), each slab run as
    a compiled :func:`slab_graph` by ``engine``.

    Args:
        model: a Keras model of ``build_model`` with its weights (read once, here; it can be
            freed afterwards).
        engine: ``"openvino"`` or ``"onnxruntime"``.
        precision: ``"float32"`` or (OpenVINO) ``"bf16"``: OpenVINO's inference precision.
        slab: input planes per slab (``None``: the engine's,
            :data:`~densenet3d_keras.inference.engines.ENGINE_SLABS`); memory grows with it.
        reuse, architecture: as ``SlabStreamer``.

    Attributes:
        bf16: whether the engine computes in bfloat16 here (OpenVINO on a CPU with it).
        compiled: the signatures compiled so far (a count, for the log and the tests).
    """

    def __init__(self, model, engine, precision="float32", slab=None, reuse=DEFAULT_REUSE, architecture=None):
        self.pathways, head, architecture = streamed_pathways(model, architecture, None, numpy_constant)
        self.head = [(_value(conv.kernel), _value(conv.bias)) for conv in (head.label_conv_15, head.label_conv_27)]
        super(EngineStreamer, self).__init__(architecture.margin, self.head[0][1].shape[0],
                                             slab or ENGINE_SLABS[engine], reuse)
        self.runner = RUNNERS[engine](precision)
        self.bf16 = getattr(self.runner, "bf16", False) and precision == "bf16"
        self._graphs = OrderedDict()
        self.compiled = 0

    def plan(self, planes, step=None):
        """``(step, step, count)``: ``count + 1`` slabs of ``step`` input planes cover
        ``planes``; unless given, ``step`` is the one of ``slab // 2 .. slab`` that leaves the
        fewest planes to spare, then the largest. Every slab, the first too, runs the same
        graph: the first starts with zero planes kept, and its outputs that would need planes
        before the block are dropped."""
        if planes <= 2 * self.margin:
            raise ValueError("a block needs more than %d planes, got %d" % (2 * self.margin, planes))
        if step is None:
            step = min(range(max(1, self.slab // 2), self.slab + 1), key=lambda step: (-planes % step, -step))
        return step, step, -(-planes // step) - 1

    def kept_shapes(self, input_shape):
        """The shapes of the planes each slab of ``input_shape`` keeps for the next, once they
        have their full depth (from the second or third slab on)."""
        shapes = None
        while True:
            _, new = slab_graph(self.pathways, self.head, input_shape, shapes)
            if new == shapes:
                return shapes
            shapes = new

    def _graph(self, input_shape):
        """The compiled graph of a slab shape and the shapes of its kept planes (compiled once;
        the oldest dropped beyond :data:`COMPILED_SIGNATURES`)."""
        key = tuple(input_shape)
        if key not in self._graphs:
            while len(self._graphs) >= COMPILED_SIGNATURES:
                self._graphs.popitem(last=False)
            shapes = self.kept_shapes(key)
            proto, _ = slab_graph(self.pathways, self.head, key, shapes)
            self._graphs[key] = self.runner.compile(proto), shapes
            self.compiled += 1
        return self._graphs[key]

    def _begin(self, block):
        """The block channels-first, ``(C, D, H, W)``, as the graphs read it."""
        return np.ascontiguousarray(np.moveaxis(block, -1, 0))

    def _slab(self, block, start, stop, kept):
        x = np.ascontiguousarray(block[None, :, start:stop])
        run, shapes = self._graph(x.shape)
        if kept is None:
            kept = [np.zeros(shape, dtype=np.float32) for shape in shapes]
        inputs = {"slab": x}
        for index, planes in enumerate(kept):
            inputs["kept_%d" % index] = planes
        # In the graph's order: the logits, then new_0, new_1, ...
        outputs = run(inputs)
        logits, new = outputs[0], [np.ascontiguousarray(planes) for planes in outputs[1:]]
        return np.moveaxis(logits[0], 0, -1), new
