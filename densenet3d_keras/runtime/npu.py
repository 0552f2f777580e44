"""Ascend NPU training (TensorFlow 1.15 with Huawei's ``npu_bridge``), as the reference port ran it.

When ``npu_bridge`` imports, training runs in a Keras session whose ``ConfigProto`` adds the
custom Grappler optimizer ``NpuOptimizer`` (``use_off_line = True`` runs the graph on the NPU,
``precision_mode`` from ``--precision-mode``) and switches graph remapping off; the session is
closed when training ends, also on error.

Multi-device runs (``RANK_SIZE`` > 1; HCCL reads ``RANK_TABLE_FILE``) use npu_bridge's Keras
recipe: ``npu_distributed_optimizer_wrapper`` makes the Keras optimizer average gradients over
the ranks (all-reduce), and ``NPUBroadcastGlobalVariablesCallback(0)`` copies rank 0's initial
variables to all ranks before the first step. ``--loss-scale`` trains with
``NPULossScaleOptimizer`` around ``tf.train.AdamOptimizer`` (npu_bridge's loss-scale optimizer
wraps TensorFlow optimizers, not Keras ones); without it there is no loss scaling.

Patient shares, learning-rate scaling and chief-only checkpoints are those of
:mod:`densenet3d_keras.runtime.strategy`, with ``RANK_ID`` as the worker index.
"""
from densenet3d_keras.core import compat
from densenet3d_keras.runtime.base import Runtime
from densenet3d_keras.runtime.cluster import SINGLE

#: Ascend's default: fp16 matrix operators, fp32 kept where an operator supports it.
DEFAULT_PRECISION_MODE = "allow_fp32_to_fp16"
#: ``precision_mode`` values of the TF Adapter (``must_keep_origin_dtype`` = pure FP32).
PRECISION_MODES = ("allow_fp32_to_fp16", "must_keep_origin_dtype", "force_fp16", "force_fp32",
                   "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16",
                   "allow_fp32_to_bf16", "cube_fp16in_fp32out")
#: Dynamic loss scaling as Ascend's TF1 samples configure it.
DYNAMIC_LOSS_SCALE = {"init_loss_scale": 2 ** 32, "incr_every_n_steps": 1000,
                      "decr_every_n_nan_or_inf": 2, "decr_ratio": 0.5}


def available():
    """Whether ``npu_bridge`` (the Ascend TF Adapter for TensorFlow 1.15) imports."""
    try:
        import npu_bridge.npu_init  # noqa: F401
    except ImportError:
        return False
    return True


def _npu_init():
    import npu_bridge.npu_init

    return npu_bridge.npu_init


def parse_loss_scale(text):
    """``--loss-scale``: ``None`` (off), ``"dynamic"`` or a fixed scale >= 1 (npu_bridge's
    ``FixedLossScaleManager`` refuses a smaller one).

    Raises:
        ValueError: anything else.
    """
    if text is None or str(text).strip().lower() in ("", "none", "off"):
        return None
    if str(text).strip().lower() == "dynamic":
        return "dynamic"
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1:
        raise ValueError("--loss-scale must be 'dynamic', 'off' or a number >= 1, got %r" % (text,))
    return value


def session_config(precision_mode=DEFAULT_PRECISION_MODE):
    """The ``ConfigProto`` of an Ascend training session.

    Raises:
        ValueError: an unknown ``precision_mode``.
    """
    if precision_mode not in PRECISION_MODES:
        raise ValueError("--precision-mode must be one of %s, got %r"
                         % (", ".join(PRECISION_MODES), precision_mode))
    config = compat.session_config()
    custom_op = config.graph_options.rewrite_options.custom_optimizers.add()
    custom_op.name = "NpuOptimizer"
    custom_op.parameter_map["use_off_line"].b = True
    custom_op.parameter_map["precision_mode"].s = compat.tf.compat.as_bytes(precision_mode)
    config.graph_options.rewrite_options.remapping = compat.rewriter_off()
    return config


def loss_scale_optimizer(learning_rate, loss_scale, distributed):
    """``NPULossScaleOptimizer`` around ``tf.train.AdamOptimizer`` (all-reduced when ``distributed``).

    Args:
        learning_rate: Adam learning rate.
        loss_scale: ``"dynamic"`` or a fixed scale (see :func:`parse_loss_scale`).
        distributed: several ranks: average the gradients and the overflow status over them.
    """
    npu_init = _npu_init()
    if loss_scale == "dynamic":
        manager = npu_init.ExponentialUpdateLossScaleManager(**DYNAMIC_LOSS_SCALE)
    else:
        manager = npu_init.FixedLossScaleManager(loss_scale=loss_scale)
    optimizer = compat.v1_adam(learning_rate)
    if distributed:
        optimizer = npu_init.npu_distributed_optimizer_wrapper(optimizer)
    return npu_init.NPULossScaleOptimizer(optimizer, manager, is_distributed=distributed)


class NpuRuntime(Runtime):
    """A rank of an Ascend NPU run (see the module docstring).

    Args:
        worker: :data:`~densenet3d_keras.runtime.cluster.Worker` from ``RANK_ID`` / ``RANK_SIZE``.
        log_id: id of the training log (``ASCEND_DEVICE_ID``).
        precision_mode: one of :data:`PRECISION_MODES`.
        loss_scale: ``--loss-scale`` text or value (``None``: off).

    Raises:
        ValueError: a bad precision mode or loss scale.
    """

    kind = "Ascend NPU (npu_bridge)"

    def __init__(self, worker=SINGLE, log_id="0", precision_mode=DEFAULT_PRECISION_MODE, loss_scale=None):
        super(NpuRuntime, self).__init__(worker, log_id)
        self.config = session_config(precision_mode)
        self.precision_mode = precision_mode
        self.loss_scale = parse_loss_scale(loss_scale)
        self.session = None

    @property
    def distributed(self):
        return self.worker.count > 1

    def __enter__(self):
        self.session = compat.new_session(self.config)
        compat.set_keras_session(self.session)
        return self

    def __exit__(self, *exc_info):
        if self.session is not None:
            self.session.close()
            self.session = None
        return False

    def describe(self, batch_size):
        lines = super(NpuRuntime, self).describe(batch_size)
        lines.append("ascend: rank %d of %d, device %s, precision_mode %s, loss scale %s"
                     % (self.worker.index, self.worker.count, self.log_id, self.precision_mode,
                        self.loss_scale if self.loss_scale is not None else "off"))
        return lines

    def prepare_model(self, model, learning_rate=None):
        """Average gradients over the ranks (or recompile for loss scaling) and set the rate."""
        from densenet3d_keras.models.objectives import compile_model

        if self.loss_scale is not None:
            rate = learning_rate if learning_rate is not None else compat.get_learning_rate(model.optimizer)
            optimizer = loss_scale_optimizer(rate, self.loss_scale, self.distributed)
            return compile_model(model, optimizer=optimizer)
        model = super(NpuRuntime, self).prepare_model(model, learning_rate)
        if self.distributed:
            # Patches the optimizer's gradient functions in place, so a resumed optimizer keeps
            # its state; the Keras training function is built at the first fit.
            _npu_init().npu_distributed_optimizer_wrapper(model.optimizer)
        return model

    def callbacks(self, sequence):
        if not self.distributed:
            return []
        return [_npu_init().NPUBroadcastGlobalVariablesCallback(0)]
