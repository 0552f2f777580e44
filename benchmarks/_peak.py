"""The machine's float32 matmul peak, measured with TensorFlow (shared by the benchmarks)."""
import time

import numpy as np


def matmul_peak(tf, size=4096, repeats=7):
    """Median GFLOP/s of two independent ``size``^2 float32 matmuls in one TensorFlow call."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    c = tf.random.normal((size, size))

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
