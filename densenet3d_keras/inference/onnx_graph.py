"""The valid-padding network as an ONNX graph, written from the architecture description.

The graph is built node by node from the pathway description
(:mod:`densenet3d_keras.models.architecture`) and the weights of a loaded Keras model, the way
slab streaming reads them (:mod:`densenet3d_keras.inference.streaming`), instead of being
converted from a TensorFlow graph: a converter sees the Keras model's CPU-speed devices
(batch norm on 4-D views, zero channels appended to multiples of 16, XLA-fused copies) and
leaves Transposes around every one of them and the zero padding as constants. Here:

- the layout is channels-first inside (ONNX's ``Conv``), with one ``Transpose`` at the input and
  one per output, so the graph reads and writes NDHWC like the Keras model;
- a batch norm before a ReLU and a convolution is ``x * scale + shift`` (``Mul``, ``Add``) with
  its inference-mode constants; one after a convolution (the taps', the plain blocks') is
  folded into that convolution's kernel and bias;
- crops are ``Slice`` with constant starts and negative ends, so the spatial axes may be
  dynamic;
- a dense block keeps its input apart from the channels its units add: each unit's
  convolution is the sum of one over the (cropped) input and one over the added channels,
  only the added channels are concatenated unit by unit, and the input joins them once at the
  end of the block (the same sums without a copy of the input per unit);
- the head's pointwise convolutions are one 1x1x1 ``Conv`` per tap, summed (a convolution
  over a concatenation is the sum of one per part): the taps are never concatenated, which
  halves the peak memory of a tile.

Operators: Transpose, Slice, Conv, Mul, Add, Relu, Concat only. The ``onnx`` package is an
optional dependency (``pip install .[onnx]``), imported when a graph is built.
"""
import numpy as np

from densenet3d_keras.core.compat import keras
from densenet3d_keras.models.architecture import KERNEL, block_name, init_name, tap_name
from densenet3d_keras.models.presets import NUM_CHANNELS, PATHWAYS, architecture_of

INPUT_NAME = "input"
OUTPUT_NAMES = ("wt_logits", "labels_logits")
#: ONNX operator set of the graph (every operator used has had its current form since 13).
OPSET = 17
#: Names of the dynamic axes of the input (batch, depth, height, width).
DYNAMIC_AXES = ("batch", "depth", "height", "width")


def _value(variable):
    return np.asarray(keras.backend.get_value(variable), dtype=np.float32)


def batch_norm_affine(norm):
    """``(scale, shift)`` of a Keras batch-norm layer in inference mode, float32 vectors."""
    gamma, beta = _value(norm.gamma), _value(norm.beta)
    mean, variance = _value(norm.moving_mean), _value(norm.moving_variance)
    scale = gamma / np.sqrt(variance + np.float32(norm.epsilon))
    return scale.astype(np.float32), (beta - mean * scale).astype(np.float32)


def conv_weights(conv, after=None):
    """A Keras ``Conv3D``'s ``(kernel, bias)`` in ONNX layout ``(out, in, kd, kh, kw)``, with the
    batch norm ``after`` it (``(scale, shift)`` or ``None``) folded in; bias ``None`` when
    there is neither a bias nor a folded batch norm."""
    kernel = np.transpose(_value(conv.kernel), (4, 3, 0, 1, 2))
    bias = _value(conv.bias) if getattr(conv, "use_bias", False) else None
    if after is not None:
        scale, shift = after
        kernel = kernel * scale[:, None, None, None, None]
        bias = shift if bias is None else bias * scale + shift
    return np.ascontiguousarray(kernel, dtype=np.float32), None if bias is None else bias.astype(np.float32)


class _Graph(object):
    """Nodes and constants being collected; names are unique and readable."""

    def __init__(self, helper, numpy_helper):
        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.initializers = []
        self._constants = {}

    def constant(self, name, array, dtype=np.float32):
        """An initializer ``name`` holding ``array``; the same integer vector is shared."""
        array = np.asarray(array, dtype=dtype)
        key = None if dtype == np.float32 else (array.dtype.str, tuple(array.ravel().tolist()))
        if key is not None and key in self._constants:
            return self._constants[key]
        self.initializers.append(self.numpy_helper.from_array(array, name))
        if key is not None:
            self._constants[key] = name
        return name

    def node(self, op, inputs, name, **attributes):
        """Append an ``op`` node whose one output is called ``name``; returns ``name``."""
        self.nodes.append(self.helper.make_node(op, list(inputs), [name], name=name, **attributes))
        return name

    def crop(self, x, crop, name):
        """``x`` (NCDHW) without ``crop`` voxels on each side of the three spatial axes."""
        if crop == 0:
            return x
        starts = self.constant("crop%d_starts" % crop, [crop] * 3, np.int64)
        ends = self.constant("crop%d_ends" % crop, [-crop] * 3, np.int64)
        axes = self.constant("spatial_axes", [2, 3, 4], np.int64)
        return self.node("Slice", [x, starts, ends, axes], name)

    def channels(self, x, start, stop, name):
        """Channels ``[start, stop)`` of ``x`` (NCDHW)."""
        starts = self.constant("channels%d_starts" % start, [start], np.int64)
        ends = self.constant("channels%d_ends" % stop, [stop], np.int64)
        axes = self.constant("channel_axis", [1], np.int64)
        return self.node("Slice", [x, starts, ends, axes], name)

    def norm_relu(self, x, affine, name):
        """``relu(x * scale + shift)`` per channel of ``x`` (NCDHW)."""
        scale, shift = affine
        shape = (-1, 1, 1, 1)
        scaled = self.node("Mul", [x, self.constant(name + "_scale", scale.reshape(shape))], name + "_mul")
        shifted = self.node("Add", [scaled, self.constant(name + "_shift", shift.reshape(shape))], name + "_add")
        return self.node("Relu", [shifted], name + "_relu")

    def conv(self, x, weights, name, relu=False):
        """A stride-1 unpadded convolution with ``weights`` ``(kernel, bias)`` [then ReLU]."""
        kernel, bias = weights
        inputs = [x, self.constant(name + "_kernel", kernel)]
        if bias is not None:
            inputs.append(self.constant(name + "_bias", bias))
        y = self.node("Conv", inputs, name, kernel_shape=list(kernel.shape[2:]), pads=[0] * 6,
                      strides=[1, 1, 1])
        return self.node("Relu", [y], name + "_relu") if relu else y


def _block(graph, x, layer, block, name):
    """A block of the description over ``x`` (NCDHW), read from its Keras layer."""
    if len(getattr(layer, "convs", ())) != len(block.unit_filters):
        raise ValueError("layer %s does not hold the %d units of %r" % (layer.name, len(block.unit_filters), block))
    if block.dense:
        return _dense_block(graph, x, layer, name)
    for index, (norm, conv) in enumerate(zip(layer.norms, layer.convs), 1):
        # conv -> BN -> ReLU, the batch norm folded into the conv
        x = graph.conv(x, conv_weights(conv, batch_norm_affine(norm)), "%s_unit%d_conv" % (name, index), relu=True)
    return x


def _dense_block(graph, x, layer, name):
    """A dense block over ``x`` (NCDHW), its input and the channels its units add kept apart.

    Unit ``k`` is BN -> ReLU -> conv over the block's input cropped by ``k - 1`` voxels per
    side and the channels added so far, concatenated; here that convolution is the sum of
    one over each part (its kernel and batch norm split by channel), so only the added
    channels are concatenated unit by unit and the input joins them once, at the end. The
    sums are the same; the copies of the input into every unit's concatenation are gone.
    """
    step = (KERNEL - 1) // 2
    inputs = int(layer.convs[0].kernel.shape[-2])  # the block's input channels
    added = None
    for index, (norm, conv) in enumerate(zip(layer.norms, layer.convs), 1):
        unit = "%s_unit%d" % (name, index)
        scale, shift = batch_norm_affine(norm)
        kernel, bias = conv_weights(conv)
        part = graph.crop(x, step * (index - 1), unit + "_input_crop")
        y = graph.conv(graph.norm_relu(part, (scale[:inputs], shift[:inputs]), unit + "_bn_input"),
                       (kernel[:, :inputs], bias), unit + "_conv_input")
        if added is not None:
            y_added = graph.conv(graph.norm_relu(added, (scale[inputs:], shift[inputs:]), unit + "_bn_added"),
                                 (kernel[:, inputs:], None), unit + "_conv_added")
            y = graph.node("Add", [y, y_added], unit + "_sum")
            y = graph.node("Concat", [graph.crop(added, step, unit + "_added_crop"), y], unit + "_concat", axis=1)
        added = y
    x = graph.crop(x, step * len(layer.convs), name + "_input_crop")
    return graph.node("Concat", [x, added], name + "_features", axis=1)


def _tap(graph, model, x, block, name, crop):
    """A block's scale tap over its features ``x``: cropped, then its transition if any."""
    x = graph.crop(x, crop, name + "_crop")
    if block.tap_filters is None:
        return x
    layer = model.get_layer(name)
    x = graph.norm_relu(x, batch_norm_affine(layer.norm_in), name + "_bn_in")
    after = batch_norm_affine(layer.norm_out) if layer.norm_out is not None else None
    return graph.conv(x, conv_weights(layer.conv, after), name + "_conv", relu=after is not None)


def _pathway(graph, model, x, architecture, prefix):
    """One pathway over its input channels ``x``; returns its taps, shallowest first."""
    if architecture.init_filters:
        x = graph.conv(x, conv_weights(model.get_layer(init_name(prefix))), init_name(prefix))
    taps = []
    for index, (block, radius) in enumerate(zip(architecture.blocks, architecture.tap_radii), 1):
        name = block_name(prefix, index)
        x = _block(graph, x, model.get_layer(name), block, name)
        taps.append(_tap(graph, model, x, block, tap_name(prefix, radius), architecture.margin - radius))
    return taps


#: The head's outputs and, in the order its convolutions concatenate them, the pathways whose
#: taps each reads (:class:`~densenet3d_keras.nn.layers.HierarchicalHead`: t1 first).
HEAD_INPUTS = (("wt", ("flair_t2",)), ("labels", ("t1_t1ce", "flair_t2")))


def head_parts(model):
    """The head's pointwise convolutions split by the tap they read.

    The head sums, per output, one 1x1x1 convolution per scale over that scale's taps
    concatenated across pathways; a convolution over a concatenation is the sum of one per
    part (the pathways share one architecture, so the parts are equal in size).

    Returns:
        ``(kernels, biases)``: ``kernels[output][scale]`` a list of ONNX kernels
        ``(classes, tap channels, 1, 1, 1)`` in the order of :data:`HEAD_INPUTS`;
        ``biases[output]`` the sum of the scales' biases, ``None`` when they have none.
    """
    head = model.get_layer("head")
    convs = {"wt": (head.wt_conv_15, head.wt_conv_27), "labels": (head.label_conv_15, head.label_conv_27)}
    kernels, biases = {}, {}
    for output, prefixes in HEAD_INPUTS:
        biases[output] = None
        kernels[output] = []
        for conv in convs[output]:
            kernel, bias = conv_weights(conv)
            if bias is not None:
                biases[output] = bias if biases[output] is None else biases[output] + bias
            kernels[output].append(np.split(kernel, len(prefixes), axis=1))
    return kernels, biases


def _head(graph, model, taps):
    """The two outputs (NCDHW) from the taps ``{prefix: [tap_15, tap_27]}``: per output, one
    1x1x1 conv per tap it reads, summed (the Keras head concatenates the taps of a scale
    across pathways before its conv; without that concatenation of 2 x (96 + 168) channels
    a dense24 tile needs about half the peak memory)."""
    kernels, biases = head_parts(model)
    outputs = []
    for output, prefixes in HEAD_INPUTS:
        scales = []
        for scale, parts in enumerate(kernels[output]):
            shares = [graph.conv(taps[prefix][scale], (kernel, biases[output] if scale == part == 0 else None),
                                 "head_%s_%s_%d" % (output, prefix, scale))
                      for part, (prefix, kernel) in enumerate(zip(prefixes, parts))]
            scales.append(shares[0] if len(shares) == 1 else graph.node(
                "Add", shares, "head_%s_%d" % (output, scale)))
        outputs.append(graph.node("Add", scales, "head_%s_sum" % output))
    return outputs


def _check_model(model, architecture):
    """Refuse a model that is not the valid-padding network (its layers are read by name)."""
    padding = getattr(model.get_layer(block_name(PATHWAYS[0][0], 1)), "padding", None)
    if padding != "valid":
        raise ValueError("the ONNX graph is the valid-padding network; load the model with "
                         "padding='valid' (got %r)" % (padding,))
    if model.get_layer("head").crop != 0:
        raise ValueError("the head of a valid-padding model crops nothing")


def onnx_model(model, model_name, input_size=None, batch_size=None, doc=""):
    """The ONNX graph of a valid-padding Keras model of ``model_name``.

    Args:
        model: the Keras model (``build_model(model_name, padding="valid")`` with weights).
        model_name: its preset name (the description walked).
        input_size: a cubic input edge, or ``None`` for dynamic depth, height and width.
        batch_size: a fixed batch, or ``None`` for a dynamic one.
        doc: the graph's doc string (where the weights came from).

    Returns:
        ``onnx.ModelProto``: input :data:`INPUT_NAME` float32 ``(batch, D, H, W, 4)`` NDHWC
        (channels flair, t2, t1, t1ce, normalised), outputs :data:`OUTPUT_NAMES`
        ``(batch, D - 2 margin, ..., 2)`` and ``(..., 5)`` logits.

    Raises:
        ImportError: the ``onnx`` package is not installed.
        ValueError: ``model`` is not the valid-padding network of ``model_name``.
    """
    import onnx
    from onnx import helper, numpy_helper

    architecture = architecture_of(model_name)
    _check_model(model, architecture)
    graph = _Graph(helper, numpy_helper)
    x = graph.node("Transpose", [INPUT_NAME], "input_ncdhw", perm=[0, 4, 1, 2, 3])
    taps = {}
    for prefix, start, stop in PATHWAYS:
        channels = graph.channels(x, start, stop, prefix + "_channels")
        taps[prefix] = _pathway(graph, model, channels, architecture, prefix)
    outputs = [graph.node("Transpose", [y], name, perm=[0, 2, 3, 4, 1])
               for y, name in zip(_head(graph, model, taps), OUTPUT_NAMES)]
    spatial = [input_size] * 3 if input_size else list(DYNAMIC_AXES[1:])
    out_spatial = ([input_size - 2 * architecture.margin] * 3 if input_size
                   else ["%s_out" % axis for axis in DYNAMIC_AXES[1:]])
    batch = batch_size or DYNAMIC_AXES[0]
    value_info = helper.make_tensor_value_info
    inputs = [value_info(INPUT_NAME, onnx.TensorProto.FLOAT, [batch] + spatial + [NUM_CHANNELS])]
    outs = [value_info(name, onnx.TensorProto.FLOAT, [batch] + out_spatial + [classes])
            for name, classes in zip(outputs, (2, 5))]
    proto = helper.make_model(helper.make_graph(graph.nodes, model_name, inputs, outs, graph.initializers),
                              opset_imports=[helper.make_opsetid("", OPSET)], producer_name="densenet3d_keras",
                              doc_string=doc)
    proto.ir_version = min(proto.ir_version, 8)  # readable by older runtimes
    onnx.checker.check_model(proto)
    return proto
