"""Choosing the runtime of a training run from its configuration and the environment."""
import os

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import tf
from densenet3d_keras.runtime import npu
from densenet3d_keras.runtime.base import Runtime
from densenet3d_keras.runtime.cluster import choose_strategy, log_id, rank_from_env, worker_from_env
from densenet3d_keras.runtime.strategy import StrategyRuntime, create_strategy, local_gpu_count


def select_runtime(strategy="auto", precision_mode=npu.DEFAULT_PRECISION_MODE, loss_scale=None,
                   environ=None):
    """The :class:`Runtime` for the scale-out options and the environment.

    With ``npu_bridge`` importable: an Ascend runtime (``RANK_SIZE`` / ``RANK_ID``). Otherwise,
    on TensorFlow 2.x, a ``tf.distribute`` strategy chosen by ``--strategy`` and ``TF_CONFIG``
    (create it before any other TensorFlow work: collective ops are configured at start-up).
    In graph mode (TensorFlow 1.x engine) only the one-process runtime or the Ascend one.

    Args:
        strategy: ``--strategy`` (:data:`~densenet3d_keras.runtime.cluster.STRATEGIES`).
        precision_mode: Ascend ``--precision-mode``.
        loss_scale: Ascend ``--loss-scale`` (``None``: off).
        environ: the environment (default ``os.environ``).

    Raises:
        ValueError: a bad environment (see :func:`parse_tf_config`, :func:`rank_from_env`) or
            options that do not apply to it.
    """
    environ = os.environ if environ is None else environ
    requested = strategy
    if npu.available():
        if requested not in ("auto", "default"):
            raise ValueError("--strategy %s is not available with npu_bridge (Ascend): ranks come "
                             "from RANK_SIZE / RANK_ID" % requested)
        worker = rank_from_env(environ)
        return npu.NpuRuntime(worker, log_id(worker, environ),
                              precision_mode=precision_mode or npu.DEFAULT_PRECISION_MODE,
                              loss_scale=loss_scale)
    if loss_scale is not None:
        raise ValueError("--loss-scale %s applies to Ascend NPU runs only (npu_bridge is not importable)"
                         % loss_scale)
    worker = worker_from_env(environ)
    if compat.graph_mode():
        if choose_strategy(requested, worker.count, 0) != "default":
            raise ValueError("--strategy %s needs TensorFlow 2.x eager (this is %s%s)"
                             % (requested, tf.__version__,
                                "" if compat.IS_TF1 else " in graph mode"))
        return Runtime(worker, log_id(worker, environ))
    gpus = local_gpu_count() if requested == "auto" and worker.count == 1 else 0
    name = choose_strategy(requested, worker.count, gpus)
    return StrategyRuntime(create_strategy(name), name, worker, log_id(worker, environ))
