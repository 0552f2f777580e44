"""Training objective and metric of the reference: softmax cross-entropy per head, accuracy in %."""
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import tf


def softmax_cross_entropy(y_true, y_pred):
    """Mean softmax cross-entropy of one-hot targets and logits, ``(batch, D, H, W, classes)``."""
    y_pred = tf.cast(y_pred, tf.float32)
    y_true = tf.cast(y_true, tf.float32)
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=y_pred))


def accuracy_percent(y_true, y_pred):
    """``100 * mean(argmax(logits) == argmax(target))`` over all voxels of the batch."""
    equal = tf.equal(tf.argmax(y_true, axis=-1), tf.argmax(y_pred, axis=-1))
    return 100.0 * tf.reduce_mean(tf.cast(equal, tf.float32))


def compile_model(model, learning_rate=5e-4, optimizer=None, run_eagerly=None, jit_compile=False):
    """Compile with the reference loss (sum of both heads' cross-entropy) and Adam.

    The Adam is the one this engine can run (:func:`~densenet3d_keras.core.compat.adam`: the
    legacy Keras Adam in graph mode). Under the ``mixed_float16`` policy the optimizer is wrapped for dynamic loss scaling.

    Args:
        model: a model from :func:`densenet3d_keras.models.builder.build_model`.
        learning_rate: Adam learning rate (reference 5e-4).
        optimizer: an optimizer to use instead of a new Adam (e.g. a distributed wrapper).
        run_eagerly: passed to ``compile`` on TensorFlow 2 (debugging only).
        jit_compile: XLA-compile the train step (TensorFlow 2 only; much slower on
            the CPU, docs/performance.md).

    Returns:
        The model.

    Raises:
        ValueError: ``jit_compile`` on TensorFlow 1.x.
    """
    if optimizer is None:
        optimizer = compat.adam(learning_rate)
    optimizer = compat.loss_scale_optimizer(optimizer, compat.precision_policy(model))
    kwargs = compat.jit_compile_kwargs(jit_compile)
    if run_eagerly is not None:
        kwargs["run_eagerly"] = run_eagerly
    model.compile(optimizer=optimizer,
                  loss={"wt": softmax_cross_entropy, "labels": softmax_cross_entropy},
                  metrics={"wt": [accuracy_percent], "labels": [accuracy_percent]},
                  **kwargs)
    return model


def _custom_objects():
    from densenet3d_keras.nn.layers import (ChannelSlice,
                                            DenseBlock3D,
                                            HierarchicalHead,
                                            PlainBlock3D,
                                            TransitionDown)
    from densenet3d_keras.nn.batchnorm import PaddedBatchNormalization

    return {
        "ChannelSlice": ChannelSlice,
        "DenseBlock3D": DenseBlock3D,
        "PlainBlock3D": PlainBlock3D,
        "TransitionDown": TransitionDown,
        "HierarchicalHead": HierarchicalHead,
        "PaddedBatchNormalization": PaddedBatchNormalization,
        "softmax_cross_entropy": softmax_cross_entropy,
        "accuracy_percent": accuracy_percent,
    }


#: Everything ``keras.models.load_model`` needs to rebuild a saved model.
CUSTOM_OBJECTS = _custom_objects()
