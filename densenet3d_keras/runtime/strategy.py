"""Data-parallel training on ``tf.distribute`` (TensorFlow 2.x).

Several workers described by ``TF_CONFIG`` train under ``MultiWorkerMirroredStrategy``; one
worker with several local GPUs trains under ``MirroredStrategy``. The global batch is the
per-worker batch (``--batch-size``) times the number of workers; who reads which patients is
decided in :mod:`densenet3d_keras.runtime.cluster`.
"""
import copy
import shutil
import tempfile

from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.runtime.base import Runtime
from densenet3d_keras.runtime.cluster import SINGLE

_STRATEGY_NAMES = {"default": "tf.distribute default strategy",
                   "mirrored": "tf.distribute.MirroredStrategy",
                   "multiworker": "tf.distribute.MultiWorkerMirroredStrategy"}

def local_gpu_count():
    """Number of GPUs TensorFlow sees in this process."""
    return len(tf.config.list_physical_devices("GPU"))


def create_strategy(name):
    """A ``tf.distribute`` strategy for a name of :func:`choose_strategy` (TensorFlow 2.x)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError("unknown strategy %r" % (name,))


def _epochs_of_batches(sequence):
    """Yield the batches of ``sequence`` epoch after epoch, from its current epoch on.

    Works on a copy, so that the training log can keep reading the original's batch plan.
    """
    view = copy.copy(sequence)
    epoch = view.epoch
    while True:
        for index in range(len(view)):
            yield view[index]
        epoch += 1
        view.set_epoch(epoch)


def distribute_sequence(strategy, sequence):
    """Feed a per-worker :class:`~generators.sequence.PatchSequence` to every replica of ``strategy``.

    Each worker reads only its own sequence (its patients), so nothing may be sharded again:
    the ``tf.data`` dataset is built per worker with ``distribute_datasets_from_function``
    (auto-sharding off) and a worker's batch is split among its local replicas. (Handing the
    Sequence to ``fit`` directly would let ``experimental_distribute_dataset`` treat each
    worker's batch as the global batch and keep only a slice of it on every worker.)

    Returns:
        A distributed dataset that never ends; fit it with ``steps_per_epoch=len(sequence)``.
        Batches are made on one thread (``--workers`` applies to single-replica runs only).

    Raises:
        ValueError: the batch size is not a multiple of the worker's local replicas.
    """
    x, y = sequence[0]
    signature = (tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)),
                 tuple(tf.TensorSpec(t.shape, tf.as_dtype(t.dtype)) for t in y))

    def batches():
        for inputs, targets in _epochs_of_batches(sequence):
            yield inputs, tuple(targets)

    def dataset_fn(input_context):
        local_replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        if sequence.batch_size % local_replicas:
            raise ValueError("batch size %d is not a multiple of the %d replicas of this worker"
                             % (sequence.batch_size, local_replicas))
        dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
        if local_replicas > 1:
            dataset = dataset.unbatch().batch(sequence.batch_size // local_replicas, drop_remainder=True)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(2)

    return strategy.distribute_datasets_from_function(dataset_fn)


class StrategyRuntime(Runtime):
    """A worker training under a ``tf.distribute`` strategy (TensorFlow 2.x).

    Args:
        strategy: the ``tf.distribute.Strategy``.
        name: its :func:`choose_strategy` name.
        worker, log_id: see :class:`Runtime`.
    """

    def __init__(self, strategy, name, worker=SINGLE, log_id="0"):
        super(StrategyRuntime, self).__init__(worker, log_id)
        self.strategy = strategy
        self.kind = _STRATEGY_NAMES[name]
        self._scratch = None

    def __exit__(self, *exc_info):
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        return False

    def checkpoint_dir(self, save_path):
        """On the chief ``save_path``; on other workers of a multi-worker run a scratch folder
        removed at exit: saving reads the variables through collective ops that every worker
        must join (the ``tf.distribute`` multi-worker saving recipe)."""
        if self.is_chief or self.worker.count == 1:
            return super(StrategyRuntime, self).checkpoint_dir(save_path)
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="densenet3d_worker%d_" % self.worker.index)
        return self._scratch

    @property
    def num_replicas(self):
        return int(self.strategy.num_replicas_in_sync)

    @property
    def distributed(self):
        return self.num_replicas > 1 or self.worker.count > 1

    def scope(self):
        return self.strategy.scope()

    def describe(self, batch_size):
        lines = super(StrategyRuntime, self).describe(batch_size)
        if self.distributed:
            lines.append("per-worker batches are split among %d local replica(s); logged loss and "
                         "accuracy are means over all replicas"
                         % (self.num_replicas // self.worker.count))
        return lines

    def prepare_model(self, model, learning_rate=None):
        model = super(StrategyRuntime, self).prepare_model(model, learning_rate)
        if self.distributed:
            # Keras' default ("auto" = "sum") adds up the replicas' metric results, which are
            # already global means under these strategies; "first" reports the mean itself.
            model.distribute_reduction_method = "first"
        return model

    def callbacks(self, sequence):
        if not self.distributed:
            return []
        # The dataset of distribute_sequence runs ahead on a copy; keep the original's batch
        # plan (read by the training log) on the epoch being trained.
        return [keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: sequence.on_epoch_end())]

    def fit_arguments(self, sequence, workers=1):
        if not self.distributed:
            return super(StrategyRuntime, self).fit_arguments(sequence, workers)
        return {"x": distribute_sequence(self.strategy, sequence), "steps_per_epoch": len(sequence)}
