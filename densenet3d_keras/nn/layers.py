"""Keras layers of the hierarchical densely connected 3-D CNN.

Tensors are ``(batch, depth, height, width, channels)``.

Every layer stores its constructor arguments and round-trips through ``get_config``;
:data:`CUSTOM_OBJECTS` maps the class names for ``keras.models.load_model``.
"""
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.nn.batchnorm import PaddedBatchNormalization
from densenet3d_keras.nn.ops import centre_crop, crop_concat, norm_relu

PADDINGS = ("same", "valid")
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
#: Channel multiple the dense blocks pad their batch-norm inputs to (with zero channels).
#: oneDNN's batch-norm kernels are several times faster on channel counts that are multiples
#: of 16 (docs/performance.md); 1 turns the padding off.
CHANNEL_ALIGNMENT = 16

def _sublayer_kwargs(layer):
    """Keyword arguments giving a sub-layer its parent's dtype policy (mixed precision).

    Without them a sub-layer takes the global policy, which differs from the parent's when a
    model saved under one precision is loaded under another.
    """
    return {"dtype": compat.layer_dtype(layer)}


def _aligned(channels, alignment):
    """``channels`` rounded up to a multiple of ``alignment``."""
    return -(-channels // alignment) * alignment


def _batch_norm(layer, name):
    """The batch norm sub-layer ``name`` of ``layer`` (which has ``bn_momentum``, ``bn_epsilon``).

    Under the ``mixed_bfloat16`` policy it computes in float32: batch norm is memory-bound,
    so bfloat16 saves it nothing, and oneDNN's bfloat16 batch-norm kernels are slower
    than its float32 ones on the CPU (docs/performance.md). Its variables are float32 anyway.
    """
    dtype = compat.layer_dtype(layer)
    if getattr(layer, "compute_dtype", None) == "bfloat16":
        dtype = "float32"
    return PaddedBatchNormalization(momentum=layer.bn_momentum, epsilon=layer.bn_epsilon,
                                    name=name, dtype=dtype)


def _check_padding(padding):
    if padding not in PADDINGS:
        raise ValueError("padding must be one of %s, got %r" % (PADDINGS, padding))


def _check_positive(name, value):
    if int(value) != value or value < 1:
        raise ValueError("%s must be a positive integer, got %r" % (name, value))


class ChannelSlice(keras.layers.Layer):
    """Select channels ``[start, stop)`` of a 5-D tensor.

    Args:
        start: first channel.
        stop: one past the last channel.
    """

    def __init__(self, start, stop, **kwargs):
        super(ChannelSlice, self).__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError("need 0 <= start < stop, got start=%r stop=%r" % (start, stop))
        self.start = int(start)
        self.stop = int(stop)

    def call(self, inputs):
        return inputs[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape(shape[:-1] + [self.stop - self.start])

    def get_config(self):
        config = super(ChannelSlice, self).get_config()
        config.update({"start": self.start, "stop": self.stop})
        return config


class DenseBlock3D(keras.layers.Layer):
    """Densely connected block: units of BN -> ReLU -> Conv 3x3x3, each output concatenated.

    With ``padding="valid"`` every convolution is unpadded and the block input is centre-cropped
    by one voxel per side before each concatenation, so the kept voxels equal those of the
    ``"same"`` block (in inference mode) at a fraction of the cost.

    Args:
        num_units: number of BN-ReLU-Conv units.
        growth_rate: filters of each unit's convolution.
        padding: ``"same"`` or ``"valid"``.
        kernel_size: odd convolution size (3 in the paper).
        bn_momentum: batch-normalisation momentum.
        bn_epsilon: batch-normalisation epsilon.
        channel_alignment: the concatenations inside the block get zero channels appended up
            to a multiple of this, for faster batch norm (:class:`PaddedBatchNormalization`);
            the convolutions and the block's output see only the real channels. 1: no padding.
            Same weights and results either way.

    Input: ``(batch, D, H, W, C)``. Output: ``(batch, D', H', W', C + num_units * growth_rate)``
    with ``D' = D`` for same padding and ``D - num_units * (kernel_size - 1)`` for valid.
    """

    def __init__(self, num_units, growth_rate, padding="same", kernel_size=3,
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON,
                 channel_alignment=CHANNEL_ALIGNMENT, **kwargs):
        super(DenseBlock3D, self).__init__(**kwargs)
        _check_positive("num_units", num_units)
        _check_positive("growth_rate", growth_rate)
        _check_positive("channel_alignment", channel_alignment)
        _check_padding(padding)
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd, got %r" % (kernel_size,))
        self.num_units = int(num_units)
        self.growth_rate = int(growth_rate)
        self.padding = padding
        self.kernel_size = int(kernel_size)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.channel_alignment = int(channel_alignment)
        sub = _sublayer_kwargs(self)
        self.norms = []
        self.convs = []
        for index in range(1, self.num_units + 1):
            self.norms.append(_batch_norm(self, "unit%d_bn" % index))
            self.convs.append(keras.layers.Conv3D(
                self.growth_rate, self.kernel_size, padding=self.padding, use_bias=False,
                kernel_initializer="glorot_normal", name="unit%d_conv" % index, **sub))

    def build(self, input_shape):
        channels = tf.TensorShape(input_shape).as_list()[-1]
        if channels is None:
            raise ValueError("%s needs a known channel count" % self.name)
        for index, norm in enumerate(self.norms):
            norm.channels = channels + index * self.growth_rate
        super(DenseBlock3D, self).build(input_shape)

    def call(self, inputs, training=None):
        # x holds the real channels first, then (after the first unit) zeros up to the alignment.
        x = inputs
        channels = inputs.shape.as_list()[-1]
        crop = (self.kernel_size - 1) // 2 if self.padding == "valid" else 0
        for index, (norm, conv) in enumerate(zip(self.norms, self.convs)):
            y = conv(norm_relu(norm, x, training, channels))
            real = channels
            channels += self.growth_rate
            extra = _aligned(channels, self.channel_alignment) - channels
            if index + 1 == self.num_units:
                extra = 0
            x = crop_concat(x, y, crop, real, extra)
        return x

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        shrink = self.num_units * (self.kernel_size - 1) if self.padding == "valid" else 0
        spatial = [None if s is None else s - shrink for s in shape[1:4]]
        return tf.TensorShape([shape[0]] + spatial + [shape[4] + self.num_units * self.growth_rate])

    def get_config(self):
        config = super(DenseBlock3D, self).get_config()
        config.update({"num_units": self.num_units, "growth_rate": self.growth_rate,
                       "padding": self.padding, "kernel_size": self.kernel_size,
                       "bn_momentum": self.bn_momentum, "bn_epsilon": self.bn_epsilon,
                       "channel_alignment": self.channel_alignment})
        return config


class PlainBlock3D(keras.layers.Layer):
    """A chain of Conv 3x3x3 (no bias, He-normal) -> BN -> ReLU units: the "no-dense" pathway.

    Args:
        filters: list with the number of filters of each unit.
        padding: ``"same"`` or ``"valid"``.
        kernel_size: odd convolution size.
        bn_momentum: batch-normalisation momentum.
        bn_epsilon: batch-normalisation epsilon.

    Input: ``(batch, D, H, W, C)``. Output: ``(batch, D', H', W', filters[-1])``.
    """

    def __init__(self, filters, padding="same", kernel_size=3,
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super(PlainBlock3D, self).__init__(**kwargs)
        filters = [int(f) for f in filters]
        if not filters:
            raise ValueError("filters must list at least one unit")
        for value in filters:
            _check_positive("filters", value)
        _check_padding(padding)
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd, got %r" % (kernel_size,))
        self.filters = filters
        self.padding = padding
        self.kernel_size = int(kernel_size)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        sub = _sublayer_kwargs(self)
        self.convs = []
        self.norms = []
        for index, count in enumerate(filters, 1):
            self.convs.append(keras.layers.Conv3D(
                count, self.kernel_size, padding=self.padding, use_bias=False,
                kernel_initializer="he_normal", name="unit%d_conv" % index, **sub))
            self.norms.append(_batch_norm(self, "unit%d_bn" % index))

    def call(self, inputs, training=None):
        x = inputs
        for conv, norm in zip(self.convs, self.norms):
            x = norm_relu(norm, conv(x), training)
        return x

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        shrink = len(self.filters) * (self.kernel_size - 1) if self.padding == "valid" else 0
        spatial = [None if s is None else s - shrink for s in shape[1:4]]
        return tf.TensorShape([shape[0]] + spatial + [self.filters[-1]])

    def get_config(self):
        config = super(PlainBlock3D, self).get_config()
        config.update({"filters": list(self.filters), "padding": self.padding,
                       "kernel_size": self.kernel_size, "bn_momentum": self.bn_momentum,
                       "bn_epsilon": self.bn_epsilon})
        return config


class TransitionDown(keras.layers.Layer):
    """DenseNet transition: BN -> ReLU -> Conv 1x1x1 (no bias, He-normal) [-> BN -> ReLU] [-> pool].

    The paper's scale taps use it with ``post_activation=True`` and no pooling. ``crop`` removes
    voxels from each side first (pointwise layers commute with cropping, so this is how the
    valid-padding model keeps only the voxels that reach the kept outputs).

    Args:
        filters: output channels of the 1x1x1 convolution.
        post_activation: add BN -> ReLU after the convolution.
        pool: 2x2x2 average pooling at the end (classic DenseNet; off in the paper's models).
        crop: voxels removed from each side before the first layer.
        bn_momentum: batch-normalisation momentum.
        bn_epsilon: batch-normalisation epsilon.

    Input: ``(batch, D, H, W, C)``. Output: ``(batch, D - 2 crop, ..., filters)``, halved if pooling.
    """

    def __init__(self, filters, post_activation=True, pool=False, crop=0,
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super(TransitionDown, self).__init__(**kwargs)
        _check_positive("filters", filters)
        if crop < 0:
            raise ValueError("crop must be >= 0, got %r" % (crop,))
        self.filters = int(filters)
        self.post_activation = bool(post_activation)
        self.pool = bool(pool)
        self.crop = int(crop)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        sub = _sublayer_kwargs(self)
        self.norm_in = _batch_norm(self, "bn_in")
        self.conv = keras.layers.Conv3D(self.filters, 1, use_bias=False,
                                        kernel_initializer="he_normal", name="conv", **sub)
        self.norm_out = None
        if self.post_activation:
            self.norm_out = _batch_norm(self, "bn_out")
        self.pooling = keras.layers.AveragePooling3D(2, name="pool", **sub) if self.pool else None

    def call(self, inputs, training=None):
        x = centre_crop(inputs, self.crop)
        x = self.conv(norm_relu(self.norm_in, x, training))
        if self.norm_out is not None:
            x = norm_relu(self.norm_out, x, training)
        if self.pooling is not None:
            x = self.pooling(x)
        return x

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        spatial = []
        for size in shape[1:4]:
            if size is not None:
                size -= 2 * self.crop
                if self.pool:
                    size //= 2
            spatial.append(size)
        return tf.TensorShape([shape[0]] + spatial + [self.filters])

    def get_config(self):
        config = super(TransitionDown, self).get_config()
        config.update({"filters": self.filters, "post_activation": self.post_activation,
                       "pool": self.pool, "crop": self.crop, "bn_momentum": self.bn_momentum,
                       "bn_epsilon": self.bn_epsilon})
        return config


class HierarchicalHead(keras.layers.Layer):
    """Two-scale, two-task head: whole-tumour logits from flair+t2, label logits from all.

    Inputs (a list, in this order): ``flair_15, flair_27, t1_15, t1_27`` — the scale taps of
    the flair+t2 and t1+t1ce pathways. The t1+t1ce taps are concatenated with the flair+t2 taps
    of the same scale (t1 first). Each scale gets 1x1x1 convolutions with bias (``num_wt_classes``
    on the flair tap, ``num_label_classes`` on the concatenation); each score map is
    centre-cropped by ``crop`` voxels per side and the two scales are summed.

    Args:
        num_wt_classes: channels of the whole-tumour output (2: rest, tumour).
        num_label_classes: channels of the label output (5: labels 0..4).
        crop: voxels removed from each side of every score map (13 with same padding, 0 when
            the taps were already cropped by the valid-padding model).

    Returns:
        ``[wt_logits, label_logits]``, ``(batch, D - 2 crop, H - 2 crop, W - 2 crop, classes)``.
    """

    def __init__(self, num_wt_classes=2, num_label_classes=5, crop=13, **kwargs):
        super(HierarchicalHead, self).__init__(**kwargs)
        _check_positive("num_wt_classes", num_wt_classes)
        _check_positive("num_label_classes", num_label_classes)
        if crop < 0:
            raise ValueError("crop must be >= 0, got %r" % (crop,))
        self.num_wt_classes = int(num_wt_classes)
        self.num_label_classes = int(num_label_classes)
        self.crop = int(crop)
        sub = _sublayer_kwargs(self)
        self.wt_conv_15 = keras.layers.Conv3D(self.num_wt_classes, 1, name="wt_conv_15", **sub)
        self.wt_conv_27 = keras.layers.Conv3D(self.num_wt_classes, 1, name="wt_conv_27", **sub)
        self.label_conv_15 = keras.layers.Conv3D(self.num_label_classes, 1, name="label_conv_15", **sub)
        self.label_conv_27 = keras.layers.Conv3D(self.num_label_classes, 1, name="label_conv_27", **sub)

    def call(self, inputs):
        if len(inputs) != 4:
            raise ValueError("HierarchicalHead takes [flair_15, flair_27, t1_15, t1_27], got %d inputs"
                             % len(inputs))
        # Cropping before the pointwise convolutions equals cropping the score maps.
        flair_15, flair_27, t1_15, t1_27 = [centre_crop(x, self.crop) for x in inputs]
        wt = self.wt_conv_15(flair_15) + self.wt_conv_27(flair_27)
        labels = (self.label_conv_15(tf.concat([t1_15, flair_15], axis=-1))
                  + self.label_conv_27(tf.concat([t1_27, flair_27], axis=-1)))
        return [wt, labels]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape[1]).as_list()
        spatial = [None if s is None else s - 2 * self.crop for s in shape[1:4]]
        return [tf.TensorShape([shape[0]] + spatial + [self.num_wt_classes]),
                tf.TensorShape([shape[0]] + spatial + [self.num_label_classes])]

    def get_config(self):
        config = super(HierarchicalHead, self).get_config()
        config.update({"num_wt_classes": self.num_wt_classes,
                       "num_label_classes": self.num_label_classes, "crop": self.crop})
        return config
