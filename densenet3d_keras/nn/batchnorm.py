"""Batch normalization of inputs that carry extra zero channels (the dense blocks' padding)."""
from densenet3d_keras.core.compat import keras, tf


class PaddedBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization over the last axis of an input that may carry extra zero channels.

    ``channels`` (set before the first call; default: the input's channel count) is the number
    of channels the layer normalises and holds variables for. An input with more channels
    than that must have zeros in the extra trailing ones: they are normalised with scale and
    offset 0, so they stay 0, and they do not touch the moving statistics. The result is the
    same as normalising the first ``channels`` channels alone and appending the zeros, and the
    weights are those of a plain ``BatchNormalization`` over ``channels`` channels.

    Why: oneDNN's batch-norm kernels on the CPU run several times faster when the channel count
    is a multiple of 16, and a dense block can append the zero channels to the concatenation it
    writes anyway (docs/performance.md). Only the fused 4-D path with default options is
    implemented for padded inputs; anything else goes to ``BatchNormalization`` unchanged.
    """

    def __init__(self, channels=None, **kwargs):
        super(PaddedBatchNormalization, self).__init__(**kwargs)
        self.channels = None if channels is None else int(channels)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape).as_list()
        if self.channels is None:
            self.channels = shape[-1]
        elif shape[-1] is not None and shape[-1] < self.channels:
            raise ValueError("%s: input has %d channels, fewer than the %d it normalises"
                             % (self.name, shape[-1], self.channels))
        super(PaddedBatchNormalization, self).build(shape[:-1] + [self.channels])
        # The input may be wider than the variables: check the rank only.
        self.input_spec = keras.layers.InputSpec(ndim=len(shape))

    def call(self, inputs, training=None):
        extra = inputs.shape.as_list()[-1] - self.channels
        if extra == 0:
            return super(PaddedBatchNormalization, self).call(inputs, training=training)
        if inputs.shape.rank != 4 or self.axis not in ([3], [-1], 3, -1):
            raise ValueError("%s: padded inputs must be 4-D with channels last" % self.name)
        if training is None:
            training = keras.backend.learning_phase()
        if isinstance(training, int):
            training = bool(training)
        if not self.trainable:
            training = False
        inputs = tf.cast(inputs, getattr(self, "compute_dtype", None) or self.dtype)
        zeros = tf.zeros([extra], dtype=self.gamma.dtype)
        gamma = tf.concat([self.gamma, zeros], axis=0)
        beta = tf.concat([self.beta, zeros], axis=0)

        def normalise_with_batch_statistics():
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True)[:3]
            return outputs, mean[:self.channels], variance[:self.channels]

        def normalise_with_moving_statistics():
            mean = tf.concat([self.moving_mean, zeros], axis=0)
            variance = tf.concat([self.moving_variance, tf.ones([extra], self.gamma.dtype)], axis=0)
            outputs = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=mean, variance=variance, epsilon=self.epsilon,
                is_training=False)[0]
            return outputs, self.moving_mean, self.moving_variance

        if isinstance(training, bool):
            branch = normalise_with_batch_statistics if training else normalise_with_moving_statistics
            outputs, mean, variance = branch()
        else:
            outputs, mean, variance = tf.cond(
                tf.cast(training, tf.bool), normalise_with_batch_statistics,
                normalise_with_moving_statistics)
        if training is not False:
            # variance is the unbiased batch variance, as in BatchNormalization's fused path.
            nonempty = tf.shape(inputs)[0] > 0

            def moving_average(variable, value):
                def update():
                    blended = variable * self.momentum + value * (1.0 - self.momentum)
                    return tf.compat.v1.assign(variable, tf.compat.v1.where(nonempty, blended, variable))
                return update

            self.add_update(moving_average(self.moving_mean, mean))
            self.add_update(moving_average(self.moving_variance, variance))
        return outputs

    def get_config(self):
        config = super(PaddedBatchNormalization, self).get_config()
        config["channels"] = self.channels
        return config
