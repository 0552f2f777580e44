"""Who this training process is among the workers, and which patients it reads (pure functions).

One training process is one *worker*. On TensorFlow 2.x the workers are described by
``TF_CONFIG``; on Ascend NPUs they are ranks described by ``RANK_SIZE`` / ``RANK_ID``. Either way
every worker reads a disjoint share of the patients (:func:`shard`): patient ``i`` goes to
worker ``i % num_workers``, and the last ``num_patients % num_workers`` patients are left out
so that every worker runs the same number of steps per epoch. ``--scale-lr`` multiplies the
learning rate by the number of workers (the reference's rule); only the chief (worker 0)
writes checkpoints and the saved configuration.
"""
import json
import os
from collections import namedtuple

#: Values of ``--strategy``.
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
#: This process's place among the workers: ``index`` in ``[0, count)``; worker 0 is the chief.
Worker = namedtuple("Worker", ["index", "count"])
SINGLE = Worker(0, 1)
#: The patients of one worker: ``indices`` into the full case list, and the ``dropped``
#: indices that no worker reads (the remainder that would make the shares unequal).
Shard = namedtuple("Shard", ["indices", "dropped"])
_CLUSTER_JOBS = ("chief", "worker")

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
