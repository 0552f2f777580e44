"""TensorFlow's thread pools: how many threads per op and how many ops at once.

The default on a CPU-only machine runs the network's two pathways side by side, each op on
half of the cores (docs/performance.md has the measurements).
"""
import os

from densenet3d_keras.core.compat import IS_TF1, tf


def set_thread_counts(intra_op=0, inter_op=0):
    """Threads of TensorFlow's op pools: ``intra_op`` per op, ``inter_op`` ops at once (0: default).

    Must run before TensorFlow executes anything in this process.

    Raises:
        ValueError: a negative count, or TensorFlow already started with other counts.
    """
    for name, value in (("intra_op", intra_op), ("inter_op", inter_op)):
        if int(value) != value or value < 0:
            raise ValueError("%s thread count must be an integer >= 0, got %r" % (name, value))
    try:
        if int(intra_op) != tf.config.threading.get_intra_op_parallelism_threads():
            tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
        if int(inter_op) != tf.config.threading.get_inter_op_parallelism_threads():
            tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
    except RuntimeError as error:
        raise ValueError("cannot set TensorFlow thread counts (%d intra-op, %d inter-op) after "
                         "TensorFlow started: %s" % (intra_op, inter_op, error))


def usable_cores():
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def auto_thread_counts(intra_op=None, inter_op=None, cores=None, gpus=None):
    """Thread counts for :func:`set_thread_counts`, ``None`` meaning "choose".

    On a CPU-only machine with TensorFlow 2 and at least 2 cores the choice is half the cores
    per op and 2 ops at once: the network's two pathways are independent chains until the
    head, so they run side by side, each op on its half of the cores, instead of every op
    being split over all cores (docs/performance.md).
    Elsewhere (GPUs, TensorFlow 1.x for Ascend, 1 core) it is 0: TensorFlow's default.

    Args:
        intra_op, inter_op: counts given by the user (kept), or ``None``.
        cores: usable cores (default :func:`usable_cores`).
        gpus: visible GPUs (default: asked from TensorFlow without starting it).
    """
    if intra_op is not None and inter_op is not None:
        return int(intra_op), int(inter_op)
    cores = usable_cores() if cores is None else cores
    if gpus is None:
        cuda = not IS_TF1 and tf.test.is_built_with_cuda()
        gpus = len(tf.config.list_physical_devices("GPU")) if cuda else 0
    if IS_TF1 or gpus or cores < 2:
        auto = (0, 0)
    else:
        auto = (cores // 2, 2)
    return (auto[0] if intra_op is None else int(intra_op),
            auto[1] if inter_op is None else int(inter_op))


def apply_thread_counts(intra_op=None, inter_op=None):
    """Set the thread counts, choosing any that is ``None`` (:func:`auto_thread_counts`).

    Returns the ``(intra_op, inter_op)`` in force afterwards. If TensorFlow already started
    (a caller in the same process ran it first), chosen counts give way to those in force;
    counts the user gave raise ``ValueError`` as in :func:`set_thread_counts`.
    """
    wanted = auto_thread_counts(intra_op, inter_op)
    try:
        set_thread_counts(*wanted)
    except ValueError:
        if intra_op is not None and inter_op is not None:
            raise
        in_force = thread_counts()
        given = [(given, now) for given, now in zip((intra_op, inter_op), in_force)
                 if given is not None]
        if any(g != now for g, now in given):
            raise
        return in_force
    return wanted


def thread_counts():
    """``(intra_op, inter_op)`` thread counts in force (0: TensorFlow's default, one per core)."""
    return (tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads())
