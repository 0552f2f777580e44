"""Version differences between TensorFlow 1.15 (Ascend NPU) and TensorFlow 2.x, in one place.

Everything else in the project imports ``tf`` and ``keras`` from here. On TensorFlow 2.x the
Keras 2 API comes from the ``tf-keras`` package (``TF_USE_LEGACY_KERAS=1`` is set before
TensorFlow is imported, so ``tf.keras`` is Keras 2 as well); on TensorFlow 1.15 it is the
built-in ``tf.keras``.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

try:  # TensorFlow >= 2.16: Keras 2 lives in the tf-keras distribution.
    import tf_keras as keras  # noqa: E402
except ImportError:  # TensorFlow 1.15 .. 2.15: tf.keras is Keras 2.
    keras = tf.keras

TF_VERSION = tuple(int(part) for part in tf.__version__.split(".")[:2])
IS_TF1 = TF_VERSION[0] == 1


def clear_session():
    """Free the graph and layer-name counters of earlier models."""
    keras.backend.clear_session()


def get_learning_rate(optimizer):
    """Return the optimizer's current learning rate as a Python float."""
    return float(keras.backend.get_value(optimizer.learning_rate if hasattr(optimizer, "learning_rate") else optimizer.lr))


def set_learning_rate(optimizer, value):
    """Set the optimizer's learning rate (works before and after the first step)."""
    variable = optimizer.learning_rate if hasattr(optimizer, "learning_rate") else optimizer.lr
    keras.backend.set_value(variable, value)


def optimizer_iterations(optimizer):
    """Return how many update steps the optimizer has applied."""
    return int(keras.backend.get_value(optimizer.iterations))


def run_eagerly_supported():
    """Whether ``Model.compile(run_eagerly=...)`` exists (TF >= 2.0)."""
    return not IS_TF1


def new_session(config=None):
    """A TensorFlow 1.x-style session with ``config`` (``tf.Session``; ``tf.compat.v1`` on 2.x)."""
    return tf.compat.v1.Session(config=config)


def set_keras_session(session):
    """Make ``session`` the session graph-mode Keras runs in (TensorFlow 1.x; no effect on eager 2.x)."""
    setter = getattr(keras.backend, "set_session", None) or tf.compat.v1.keras.backend.set_session
    setter(session)


def session_config():
    """An empty ``ConfigProto`` (``tf.ConfigProto`` on 1.x)."""
    return tf.compat.v1.ConfigProto()


def rewriter_off():
    """``RewriterConfig.OFF``: the value that switches a Grappler pass off."""
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    return RewriterConfig.OFF


def v1_adam(learning_rate):
    """``tf.train.AdamOptimizer`` (graph-mode TensorFlow optimizer, e.g. for Ascend loss scaling)."""
    return tf.compat.v1.train.AdamOptimizer(learning_rate=learning_rate)
