"""The machine's float32 matmul peak, measured with TensorFlow (shared by the benchmarks)."""
import time

import numpy as np


def matmul_peak(tf, size=4096, repeats=7, dtype=None):
    """Median GFLOP/s of two independent ``size``^2 matmuls in one TensorFlow call, float32
    unless ``dtype`` says otherwise (e.g. ``tf.bfloat16``)."""
    a, b, c = [tf.random.normal((size, size), dtype=dtype or tf.float32) for _ in range(3)]

    @tf.function
    def two_products(a, b, c):
        return tf.reduce_sum(tf.matmul(a, b)) + tf.reduce_sum(tf.matmul(c, b))

    two_products(a, b, c).numpy()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        two_products(a, b, c).numpy()
        times.append(time.perf_counter() - started)
    return 2 * 2.0 * size ** 3 / float(np.median(times)) / 1e9
