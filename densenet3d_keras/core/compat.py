"""Version differences between TensorFlow 1.15 (Ascend NPU) and TensorFlow 2.x, in one place.

Everything else in the project imports ``tf`` and ``keras`` from here. On TensorFlow 2.x the
Keras 2 API comes from the ``tf-keras`` package (``TF_USE_LEGACY_KERAS=1`` is set before
TensorFlow is imported, so ``tf.keras`` is Keras 2 as well); on TensorFlow 1.15 it is the
built-in ``tf.keras``.

Graph mode (:func:`enable_graph_mode`): TensorFlow 1.x graphs and sessions, with Keras's v1
training loop, as TensorFlow 1.15 (Ascend) runs. Always on with TensorFlow 1.x; on 2.x by
``--graph-mode`` or ``DENSENET3D_GRAPH_MODE=1`` (which applies at import, before anything runs).
"""
import importlib
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


#: Environment variable that turns graph mode on for the whole process.
GRAPH_MODE_ENV = "DENSENET3D_GRAPH_MODE"


def graph_mode_requested(environ=None):
    """Whether ``DENSENET3D_GRAPH_MODE`` asks for graph mode (1/true/yes/on)."""
    value = (os.environ if environ is None else environ).get(GRAPH_MODE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


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
        if graph_mode_requested() and not module.__version__.startswith("1."):
            module.compat.v1.disable_v2_behavior()  # before anything runs
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


def keras_session():
    """The session graph-mode Keras runs in for the current graph (creating one if needed)."""
    getter = getattr(keras.backend, "get_session", None) or tf.compat.v1.keras.backend.get_session
    return getter()


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


def graph_mode():
    """Whether this process runs TensorFlow 1.x graphs and sessions (always on TensorFlow 1.x)."""
    return IS_TF1 or not tf.compat.v1.executing_eagerly_outside_functions()


def enable_graph_mode():
    """Run this process in TensorFlow 1.x graph mode (``tf.compat.v1.disable_v2_behavior``).

    Keras then builds v1 graphs and trains with its v1 loop (the descendant of TensorFlow
    1.15's) in a ``tf.compat.v1.Session``. The mode is per process: it must be set before
    TensorFlow runs any op. A no-op when already in graph mode (and on TensorFlow 1.x).

    Raises:
        ValueError: TensorFlow already ran eagerly in this process.
    """
    if graph_mode():
        return
    if _eager_context_started():
        raise ValueError("graph mode must be chosen before TensorFlow runs anything in this "
                         "process (set %s=1 or pass --graph-mode)" % GRAPH_MODE_ENV)
    try:
        tf.compat.v1.disable_v2_behavior()
    except (ValueError, RuntimeError) as error:
        raise ValueError("graph mode must be chosen before TensorFlow runs: %s" % error)
    if not graph_mode():
        raise ValueError("graph mode must be chosen before TensorFlow runs")


def _eager_context_started():
    """Whether the eager runtime of this process has started (ops ran, devices listed)."""
    try:
        from tensorflow.python.eager import context
    except ImportError:
        return False
    return bool(getattr(context.context(), "_initialized", False))


def adam(learning_rate):
    """The Keras Adam optimizer of this engine.

    TensorFlow 2 eager: ``keras.optimizers.Adam``; graph mode on 2.x: the graph-capable
    ``keras.optimizers.legacy.Adam`` (the new optimizers need eager execution); 1.x:
    ``tf.keras.optimizers.Adam``. All three apply the same update.
    """
    if graph_mode() and not IS_TF1:
        return keras.optimizers.legacy.Adam(learning_rate=learning_rate)
    return keras.optimizers.Adam(learning_rate=learning_rate)


#: ``--precision`` choices and the Keras dtype policy each one sets.
PRECISION_POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16",
                      "mixed_float16": "mixed_float16"}


def check_precision(precision, graph=False):
    """Check a ``--precision`` value for this engine (``graph``: a graph-mode run).

    Raises:
        ValueError: an unknown precision, or a 16-bit one in graph mode or on TensorFlow 1.x
            (Keras mixed precision needs TensorFlow 2 eager).
    """
    if precision not in PRECISION_POLICIES:
        raise ValueError("unknown --precision %r (choose from %s)"
                         % (precision, ", ".join(sorted(PRECISION_POLICIES))))
    if precision != "float32" and (IS_TF1 or graph or graph_mode()):
        raise ValueError("--precision %s needs TensorFlow 2 eager (Keras mixed precision); "
                         "graph mode (TensorFlow %s) runs in float32" % (precision, tf.__version__))


def set_precision(precision):
    """Set the global Keras dtype policy of ``--precision`` (before building a model).

    ``bf16`` and ``mixed_float16`` compute in 16 bits and keep the variables in float32
    (Keras mixed precision, TensorFlow 2 only).

    Raises:
        ValueError: an unknown precision, or a 16-bit one on TensorFlow 1.x.
    """
    check_precision(precision)
    if graph_mode():
        return
    keras.mixed_precision.set_global_policy(PRECISION_POLICIES[precision])


def precision_policy(model=None):
    """Name of the dtype policy ``model`` computes with, or the global one (``"float32"`` on 1.x).

    A model's is that of its first layer with weights: a model loaded from a file keeps the
    policies its layers were saved with, whatever the global policy.
    """
    if graph_mode():
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
    if graph_mode():
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
    if graph_mode():
        raise ValueError("jit_compile needs TensorFlow 2 eager; graph mode (TensorFlow %s) has "
                         "no compile(jit_compile=...)" % tf.__version__)
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
        create_optimizer_weights(fresh, var_list)
        source, target = optimizer.weights, fresh.weights
    else:
        fresh.build(var_list)
        source, target = optimizer.variables, fresh.variables
    if values is None:
        values = keras.backend.batch_get_value(source)
    values = adam_state_in_order(values, var_list, legacy)
    shapes = [tuple(getattr(v, "shape", ())) for v in values]
    if shapes != [tuple(v.shape.as_list()) for v in target]:
        raise ValueError("optimizer state of %d variables does not fit the rebuilt model (%d)"
                         % (len(values), len(target)))
    keras.backend.batch_set_value(list(zip(target, values)))
    return fresh


def create_optimizer_weights(optimizer, var_list):
    """Create a graph-mode Keras optimizer's step count, hyper-parameters and slots for
    ``var_list`` (as its first update would), so that its state can be set before it trains.

    TensorFlow 2's legacy optimizer does it in ``_create_all_weights``; TensorFlow 1.15's
    ``OptimizerV2`` has no such method (it came in 2.2): there the three steps of its
    ``apply_gradients`` are taken (:func:`_create_optimizer_weights_tf1`).
    """
    if IS_TF1:
        _create_optimizer_weights_tf1(optimizer, var_list)
        return
    optimizer._create_all_weights(var_list)


def _create_optimizer_weights_tf1(optimizer, var_list):
    """TensorFlow 1.15's ``OptimizerV2.apply_gradients`` creating its weights: the step count,
    the hyper-parameter variables, then the slots (Adam: every ``m``, then every ``v``)."""
    _ = optimizer.iterations  # the property creates the step-count variable
    optimizer._create_hypers()
    optimizer._create_slots(var_list)


def adam_state_in_order(values, var_list, legacy):
    """Adam state saved by either optimizer family, in the order of the ``legacy`` one or not.

    The legacy Keras Adam (graph mode, TensorFlow 1.x) stores ``[iterations, m..., v...]``,
    the new one (TensorFlow 2 eager) ``[iterations, m, v, m, v, ...]``: the same numbers, in
    another order. The layout of ``values`` is recognised from the shapes of ``var_list`` (the
    trainable variables, in order); values of any other form are returned unchanged.
    """
    count = len(var_list)
    if values is None or len(values) != 2 * count + 1:
        return values
    shapes = [tuple(v.shape.as_list()) for v in var_list]
    blocked = (values[1:1 + count], values[1 + count:])
    interleaved = (values[1::2], values[2::2])
    for moments, velocities in ((blocked, interleaved) if legacy else (interleaved, blocked)):
        if all([tuple(getattr(x, "shape", ())) for x in part] == shapes
               for part in (moments, velocities)):
            break
    else:
        return values
    if legacy:
        return [values[0]] + list(moments) + list(velocities)
    return [values[0]] + [x for pair in zip(moments, velocities) for x in pair]


def tensorboard_callback(log_dir):
    """Keras's TensorBoard callback writing epoch scalars to ``log_dir``: the TensorFlow 2
    one in eager mode (it needs the ``tensorboard`` package), the TensorFlow 1 one (summaries
    run in the Keras session) in graph mode.

    Raises:
        ImportError: TensorFlow 2 without the ``tensorboard`` package (one line saying so).
    """
    if not IS_TF1:
        try:
            importlib.import_module("tensorboard")
        except ImportError:
            raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard")
    if graph_mode() and not IS_TF1:
        callbacks_v1 = importlib.import_module(keras.__name__ + ".api._v1.keras.callbacks")
        return callbacks_v1.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False,
                                        update_freq="epoch", profile_batch=0)
    return keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=0, write_graph=False,
                                       update_freq="epoch", profile_batch=0)
