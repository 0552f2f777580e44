"""The runtime base class: one process, one device, no ``tf.distribute`` strategy."""
import contextlib

from densenet3d_keras.core import compat
from densenet3d_keras.runtime.cluster import SINGLE, is_chief, shard


class Runtime(object):
    """How this process takes part in training; the base class is one process, one device.

    Subclasses add a strategy (:class:`StrategyRuntime`) or an Ascend session
    (:class:`densenet3d_keras.runtime.npu.NpuRuntime`). Use as a context manager around model
    building and training: a subclass may install a session on entry and closes it on exit.

    Args:
        worker: :data:`Worker` of this process.
        log_id: id of its ``train_<id>.log``.
    """

    kind = "one process, no tf.distribute strategy"

    def __init__(self, worker=SINGLE, log_id="0"):
        self.worker = worker
        self.log_id = str(log_id)

    @property
    def is_chief(self):
        return is_chief(self.worker)

    @property
    def num_replicas(self):
        return 1

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def scope(self):
        """Context for building, loading and compiling the model."""
        return contextlib.nullcontext()

    def shard(self, cases):
        """``(this worker's cases, dropped cases)`` of the full case list."""
        share = shard(len(cases), self.worker)
        return [cases[i] for i in share.indices], [cases[i] for i in share.dropped]

    def describe(self, batch_size):
        """Log lines naming the strategy, the replicas and the global batch."""
        return ["strategy: %s, %d replica(s) in sync, worker %d of %d%s, global batch %d"
                % (self.kind, self.num_replicas, self.worker.index, self.worker.count,
                   " (chief)" if self.is_chief else "", batch_size * self.worker.count)]

    def checkpoint_dir(self, save_path):
        """Where this worker saves its checkpoints: ``save_path`` on the chief, nowhere (``None``)
        on the others."""
        return save_path if self.is_chief else None

    def prepare_model(self, model, learning_rate=None):
        """Adapt a compiled model to the runtime; set its learning rate unless ``None``."""
        if learning_rate is not None:
            compat.set_learning_rate(model.optimizer, learning_rate)
        return model

    def callbacks(self, sequence):
        """Extra Keras callbacks of the runtime (before the log and checkpoint callbacks)."""
        return []

    def fit_arguments(self, sequence, workers=1):
        """Data arguments of ``model.fit`` for the worker's ``sequence``."""
        return {"x": sequence, "workers": workers, "use_multiprocessing": False,
                "max_queue_size": max(10, 2 * workers)}
