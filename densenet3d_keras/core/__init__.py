"""The lowest layer: the TensorFlow / Keras compat shim, geometry, labels, atomic file output."""
