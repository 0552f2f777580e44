"""Version differences between TensorFlow 1.15 (Ascend NPU) and TensorFlow 2.x, in one place.

Everything else in the project imports ``tf`` and ``keras`` from here. On TensorFlow 2.x the
Keras 2 API comes from the ``tf-keras`` package (``TF_USE_LEGACY_KERAS=1`` is set before
TensorFlow is imported, so ``tf.keras`` is Keras 2 as well); on TensorFlow 1.15 it is the
built-in ``tf.keras``.
"""
import importlib
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_and_keras():
    """Import TensorFlow and the Keras 2 API, holding back the start-up banners.

    TensorFlow 2.x prints absl/oneDNN notices on file descriptor 2 before its logging is set
    up, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; command-line tools promise one-line errors, so
    the descriptor is pointed at a temporary file during the import. If the import fails, what
    was printed is replayed before the exception propagates. ``TF_CPP_MIN_LOG_LEVEL=0`` keeps
    the banners.
    """
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0")
    saved = None
    sink = None
    if quiet:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
            sink = tempfile.TemporaryFile()
            os.dup2(sink.fileno(), 2)
        except (OSError, ValueError):
            saved = None
    try:
        module = importlib.import_module("tensorflow")
        try:  # TensorFlow >= 2.16: Keras 2 lives in the tf-keras distribution.
            keras_module = importlib.import_module("tf_keras")
        except ImportError:  # TensorFlow 1.15 .. 2.15: tf.keras is Keras 2.
            keras_module = module.keras
    except BaseException:
        if saved is not None:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
        raise
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            sink.close()
    return module, keras_module


tf, keras = _import_tensorflow_and_keras()

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


#: ``--precision`` choices and the Keras dtype policy each one sets.
PRECISION_POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16",
                      "mixed_float16": "mixed_float16"}


def set_precision(precision):
    """Set the global Keras dtype policy of ``--precision`` (before building a model).

    ``bf16`` and ``mixed_float16`` compute in 16 bits and keep the variables in float32
    (Keras mixed precision, TensorFlow 2 only).

    Raises:
        ValueError: an unknown precision, or a 16-bit one on TensorFlow 1.x.
    """
    if precision not in PRECISION_POLICIES:
        raise ValueError("precision must be one of %s, got %r"
                         % (", ".join(sorted(PRECISION_POLICIES)), precision))
    if IS_TF1:
        if precision != "float32":
            raise ValueError("--precision %s needs Keras mixed precision (TensorFlow 2); "
                             "TensorFlow %s trains in float32 only" % (precision, tf.__version__))
        return
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])


def precision_policy(model=None):
    """Name of the dtype policy ``model`` computes with, or the global one (``"float32"`` on 1.x).

    A model's is that of its first layer with weights: a model loaded from a file keeps the
    policies its layers were saved with, whatever the global policy.
    """
    if IS_TF1:
        return "float32"
    if model is None:
        return keras.mixed_precision.global_policy().name
    layers = [layer for layer in getattr(model, "layers", [model]) if layer.weights] or [model]
    return layers[0].dtype_policy.name


def loss_scale_optimizer(optimizer, policy=None):
    """Wrap ``optimizer`` for dynamic loss scaling under the ``mixed_float16`` policy.

    float16 gradients underflow without it; bfloat16 has float32's range and needs none.
    Under any other policy a wrapped optimizer is unwrapped (a model rebuilt in another
    precision from a checkpoint).

    Args:
        optimizer: a Keras optimizer.
        policy: dtype policy name of the model (default: the global policy).
    """
    if IS_TF1:
        return optimizer
    wrapped = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    if (policy or precision_policy()) != "mixed_float16":
        return optimizer.inner_optimizer if wrapped else optimizer
    return optimizer if wrapped else keras.mixed_precision.LossScaleOptimizer(optimizer)


def jit_compile_kwargs(jit_compile):
    """``Model.compile`` keywords for XLA compilation of the train step (TensorFlow 2 only).

    Raises:
        ValueError: ``jit_compile`` on TensorFlow 1.x.
    """
    if not jit_compile:
        return {}
    if IS_TF1:
        raise ValueError("jit_compile needs TensorFlow 2; TensorFlow %s has no "
                         "compile(jit_compile=...)" % tf.__version__)
    return {"jit_compile": True}


def xla_function(function):
    """``function`` as a ``tf.function`` that XLA compiles into fused kernels, or ``None``.

    ``None`` on TensorFlow 1.x and before 2.5 (no ``jit_compile``). Python arguments of the
    function are part of its signature: each distinct value compiles once.
    """
    if IS_TF1 or TF_VERSION < (2, 5):
        return None
    return tf.function(function, jit_compile=True)






def layer_dtype(layer):
    """What to pass as ``dtype`` to give another layer the same dtype policy as ``layer``."""
    return getattr(layer, "dtype_policy", None) or layer.dtype


def moved_optimizer(optimizer, var_list, values=None):
    """A copy of ``optimizer`` (configuration, step count, slots) for other variables.

    For a model rebuilt with another padding or precision: ``var_list`` must be the new model's
    trainable variables, in the order of those ``optimizer`` was built for (the same network).
    A loss-scale wrapper is dropped (:func:`loss_scale_optimizer` adds one where needed).

    Args:
        optimizer: the optimizer of the loaded model.
        var_list: trainable variables of the rebuilt model.
        values: the state to give the copy (e.g. read from the checkpoint file), in the
            order of the optimizer's variables; default ``optimizer``'s own.

    Raises:
        ValueError: the optimizer state does not match ``var_list``.
    """
    if not IS_TF1 and isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    fresh = optimizer.__class__.from_config(optimizer.get_config())
    legacy = IS_TF1 or isinstance(optimizer, keras.optimizers.legacy.Optimizer)
    if legacy:
        fresh._create_all_weights(var_list)
        source, target = optimizer.weights, fresh.weights
    else:
        fresh.build(var_list)
        source, target = optimizer.variables, fresh.variables
    if values is None:
        values = keras.backend.batch_get_value(source)
    shapes = [tuple(getattr(v, "shape", ())) for v in values]
    if shapes != [tuple(v.shape.as_list()) for v in target]:
        raise ValueError("optimizer state of %d variables does not fit the rebuilt model (%d)"
                         % (len(values), len(target)))
    keras.backend.batch_set_value(list(zip(target, values)))
    return fresh
