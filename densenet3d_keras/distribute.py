"""Data-parallel training: which worker this process is, which patients it reads, which strategy.

One training process is one *worker*. On TensorFlow 2.x the workers are described by
``TF_CONFIG`` and train under ``tf.distribute.MultiWorkerMirroredStrategy``; one worker with
several local GPUs trains under ``MirroredStrategy``. On Ascend NPUs (TensorFlow 1.15 with
``npu_bridge``, see :mod:`densenet3d_keras.npu`) the workers are ranks described by
``RANK_SIZE`` / ``RANK_ID``. Either way:

- every worker reads a disjoint share of the patients (:func:`shard`): patient ``i`` goes to
  worker ``i % num_workers``; the last ``num_patients % num_workers`` patients are left out so
  that every worker runs the same number of steps per epoch;
- the global batch is the per-worker batch (``--batch-size``) times the number of workers;
- ``--scale-lr`` multiplies the learning rate by the number of workers (the reference's rule);
- only the chief (worker 0) writes checkpoints and the saved configuration; every worker
  writes its own ``train_<id>.log``.

The environment parsing, strategy choice and sharding are pure functions; :class:`Runtime`
and :class:`StrategyRuntime` wrap them for :func:`densenet3d_keras.training.train`.
"""
import contextlib
import copy
import json
import os
import shutil
import tempfile
from collections import namedtuple

from densenet3d_keras import compat
from densenet3d_keras.compat import keras, tf

#: Values of ``--strategy``.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")

#: This process's place among the workers: ``index`` in ``[0, count)``; worker 0 is the chief.
Worker = namedtuple("Worker", ["index", "count"])
SINGLE = Worker(0, 1)

#: The patients of one worker: ``indices`` into the full case list, and the ``dropped``
#: indices that no worker reads (the remainder that would make the shares unequal).
Shard = namedtuple("Shard", ["indices", "dropped"])

_CLUSTER_JOBS = ("chief", "worker")
_STRATEGY_NAMES = {"default": "tf.distribute default strategy",
                   "mirrored": "tf.distribute.MirroredStrategy",
                   "multiworker": "tf.distribute.MultiWorkerMirroredStrategy"}


def parse_tf_config(text):
    """Worker index and count of a ``TF_CONFIG`` JSON string.

    The chief (job ``chief``, at most one) is worker 0 and job ``worker`` task ``i`` is worker
    ``i + number of chiefs``, as ``MultiWorkerMirroredStrategy`` numbers them.

    Args:
        text: the ``TF_CONFIG`` value, e.g. ``{"cluster": {"worker": ["host1:2222",
            "host2:2222"]}, "task": {"type": "worker", "index": 1}}``.

    Returns:
        :data:`Worker`.

    Raises:
        ValueError: not JSON, no cluster or task, jobs other than chief and worker, or a task
            that is not in the cluster.
    """
    try:
        spec = json.loads(text)
    except ValueError:
        raise ValueError("TF_CONFIG is not valid JSON: %r" % (text,))
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise ValueError("TF_CONFIG needs a 'cluster' object, got %r" % (text,))
    cluster = spec["cluster"]
    other = sorted(set(cluster) - set(_CLUSTER_JOBS))
    if other:
        raise ValueError("TF_CONFIG cluster has %s jobs; only 'chief' and 'worker' are supported"
                         % ", ".join(repr(job) for job in other))
    sizes = {}
    for job in _CLUSTER_JOBS:
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list):
            raise ValueError("TF_CONFIG cluster %r must be a list of host:port, got %r" % (job, addresses))
        sizes[job] = len(addresses)
    if sizes["chief"] > 1:
        raise ValueError("TF_CONFIG cluster has %d chiefs; at most one is allowed" % sizes["chief"])
    count = sizes["chief"] + sizes["worker"]
    if count == 0:
        raise ValueError("TF_CONFIG cluster lists no chief and no worker: %r" % (text,))
    task = spec.get("task")
    if not isinstance(task, dict):
        raise ValueError("TF_CONFIG needs a 'task' object with 'type' and 'index', got %r" % (text,))
    job, index = task.get("type"), task.get("index", 0)
    if job not in _CLUSTER_JOBS:
        raise ValueError("TF_CONFIG task type must be 'chief' or 'worker', got %r" % (job,))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < sizes[job]:
        raise ValueError("TF_CONFIG task index %r is not in the cluster's %d %s task(s)"
                         % (index, sizes[job], job))
    return Worker(index if job == "chief" else sizes["chief"] + index, count)


def _env_int(environ, name, default, minimum):
    text = environ.get(name, "")
    if text.strip() == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ValueError("%s must be an integer >= %d, got %r" % (name, minimum, text))
    return value


def rank_from_env(environ=None):
    """Worker index and count of an Ascend multi-device run: ``RANK_ID`` of ``RANK_SIZE``.

    Unset variables mean a single device (``RANK_SIZE=1``, ``RANK_ID=0``).

    Raises:
        ValueError: a variable is not an integer, ``RANK_SIZE < 1``, or ``RANK_ID`` is not in
            ``[0, RANK_SIZE)``.
    """
    environ = os.environ if environ is None else environ
    size = _env_int(environ, "RANK_SIZE", 1, 1)
    rank = _env_int(environ, "RANK_ID", 0, 0)
    if rank >= size:
        raise ValueError("RANK_ID=%d must be below RANK_SIZE=%d" % (rank, size))
    return Worker(rank, size)


def worker_from_env(environ=None):
    """Worker index and count on TensorFlow 2.x: from ``TF_CONFIG``, else a single worker.

    Raises:
        ValueError: a malformed ``TF_CONFIG``, or ``RANK_SIZE > 1`` (an Ascend multi-device
            run) without ``npu_bridge``.
    """
    environ = os.environ if environ is None else environ
    ranks = rank_from_env(environ)
    if ranks.count > 1:
        raise ValueError("RANK_SIZE=%d asks for %d Ascend devices, but npu_bridge is not importable; "
                         "on TensorFlow 2 describe the workers with TF_CONFIG" % (ranks.count, ranks.count))
    if environ.get("TF_CONFIG", "").strip():
        return parse_tf_config(environ["TF_CONFIG"])
    return SINGLE


def log_id(worker, environ=None):
    """Id in ``train_<id>.log``: ``ASCEND_DEVICE_ID`` if set, else the worker index."""
    environ = os.environ if environ is None else environ
    return environ.get("ASCEND_DEVICE_ID", "").strip() or str(worker.index)


def is_chief(worker):
    """Whether ``worker`` writes checkpoints and the saved configuration (worker 0)."""
    return worker.index == 0


def choose_strategy(requested, num_workers, num_gpus):
    """Resolve ``--strategy`` into ``default``, ``mirrored`` or ``multiworker``.

    ``auto`` picks ``multiworker`` for a cluster of several workers, ``mirrored`` for one worker
    with several GPUs, else ``default``.

    Raises:
        ValueError: an unknown name, or a single-worker strategy for a multi-worker cluster.
    """
    if requested not in STRATEGIES:
        raise ValueError("--strategy must be one of %s, got %r" % (", ".join(STRATEGIES), requested))
    if requested == "auto":
        if num_workers > 1:
            return "multiworker"
        return "mirrored" if num_gpus > 1 else "default"
    if requested != "multiworker" and num_workers > 1:
        raise ValueError("--strategy %s trains one worker, but TF_CONFIG describes %d; use "
                         "--strategy multiworker (or auto)" % (requested, num_workers))
    return requested


def shard(num_patients, worker):
    """The patients ``worker`` reads: every ``worker.count``-th from ``worker.index`` on.

    The last ``num_patients % worker.count`` patients are dropped, so that all workers get the
    same number of patients and hence run the same number of steps per epoch.

    Returns:
        :data:`Shard` of index lists.

    Raises:
        ValueError: fewer patients than workers, or an index outside ``[0, count)``.
    """
    if worker.count < 1 or not 0 <= worker.index < worker.count:
        raise ValueError("worker index %d is not in [0, %d)" % (worker.index, worker.count))
    if num_patients < worker.count:
        raise ValueError("%d patient(s) cannot be shared by %d workers (each needs at least one)"
                         % (num_patients, worker.count))
    usable = num_patients - num_patients % worker.count
    return Shard(list(range(worker.index, usable, worker.count)), list(range(usable, num_patients)))


def scaled_learning_rate(learning_rate, num_workers, scale):
    """``learning_rate * num_workers`` with ``--scale-lr``, else ``learning_rate``."""
    return learning_rate * num_workers if scale else learning_rate


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


class Runtime(object):
    """How this process takes part in training; the base class is one process, one device.

    Subclasses add a strategy (:class:`StrategyRuntime`) or an Ascend session
    (:class:`densenet3d_keras.npu.NpuRuntime`). Use as a context manager around model
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


def select_runtime(config, environ=None):
    """The :class:`Runtime` for a resolved configuration and the environment.

    With ``npu_bridge`` importable: an Ascend runtime (``RANK_SIZE`` / ``RANK_ID``). Otherwise,
    on TensorFlow 2.x, a ``tf.distribute`` strategy chosen by ``--strategy`` and ``TF_CONFIG``
    (create it before any other TensorFlow work: collective ops are configured at start-up).

    Raises:
        ValueError: a bad environment (see :func:`parse_tf_config`, :func:`rank_from_env`) or
            options that do not apply to it.
    """
    from densenet3d_keras import npu

    environ = os.environ if environ is None else environ
    requested = config.get("strategy", "auto")
    if npu.available():
        if requested not in ("auto", "default"):
            raise ValueError("--strategy %s is not available with npu_bridge (Ascend): ranks come "
                             "from RANK_SIZE / RANK_ID" % requested)
        worker = rank_from_env(environ)
        return npu.NpuRuntime(worker, log_id(worker, environ),
                              precision_mode=config.get("precision_mode") or npu.DEFAULT_PRECISION_MODE,
                              loss_scale=config.get("loss_scale"))
    if config.get("loss_scale") is not None:
        raise ValueError("--loss-scale %s applies to Ascend NPU runs only (npu_bridge is not importable)"
                         % config["loss_scale"])
    worker = worker_from_env(environ)
    if compat.IS_TF1:
        if choose_strategy(requested, worker.count, 0) != "default":
            raise ValueError("--strategy %s needs TensorFlow 2.x (this is %s)" % (requested, tf.__version__))
        return Runtime(worker, log_id(worker, environ))
    gpus = local_gpu_count() if requested == "auto" and worker.count == 1 else 0
    name = choose_strategy(requested, worker.count, gpus)
    return StrategyRuntime(create_strategy(name), name, worker, log_id(worker, environ))
