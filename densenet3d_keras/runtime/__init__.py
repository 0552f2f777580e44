"""Where training runs: one process, ``tf.distribute`` strategies, Ascend NPU sessions, threads."""
