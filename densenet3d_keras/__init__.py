"""Hierarchical densely connected 3-D CNN for brain-tumour segmentation, in tf.keras.

Chen et al., "MRI tumor segmentation with densely connected 3D CNN", SPIE Medical Imaging
2018, arXiv:1802.02427.

Sub-packages, lowest layer first (each imports only from those below it; ``make lint``
checks it for whole packages):

- ``core``: the TensorFlow / Keras compat shim, geometry, labels, the brain mask, atomic file
  output;
- ``nn``: the Keras layers and their fused tensor operations;
- ``models`` (beside ``generators``, the data): the architecture description and presets, the
  model builder, FLOP counts, objectives, checkpoints and loading;
- ``runtime`` (beside ``callbacks``, the Keras training callbacks): where training runs:
  tf.distribute strategies, Ascend NPU sessions, threads, GPUs;
- ``inference``: prediction (its configuration, the case loop, one inferer per method);
- ``evaluation``: BraTS metrics and reports;
- ``training``: its configuration, the ``Trainer``, the demo;
- ``cli``: the command lines (``train_keras.py``, ``predict_keras.py``, ``evaluate_keras.py``,
  ``export_keras.py``, ``python -m generators.n4``).

The names below are imported lazily, so that modules which need no TensorFlow (metrics,
evaluation, geometry) load without it.
"""
import importlib

_EXPORTS = {
    "ChannelSlice": "densenet3d_keras.nn.layers",
    "DenseBlock3D": "densenet3d_keras.nn.layers",
    "PaddedBatchNormalization": "densenet3d_keras.nn.batchnorm",
    "PlainBlock3D": "densenet3d_keras.nn.layers",
    "TransitionDown": "densenet3d_keras.nn.layers",
    "HierarchicalHead": "densenet3d_keras.nn.layers",
    "ARCHITECTURES": "densenet3d_keras.models.presets",
    "MODEL_NAMES": "densenet3d_keras.models.presets",
    "build_model": "densenet3d_keras.models.builder",
    "resolve_model_name": "densenet3d_keras.models.presets",
    "accuracy_percent": "densenet3d_keras.models.objectives",
    "compile_model": "densenet3d_keras.models.objectives",
    "softmax_cross_entropy": "densenet3d_keras.models.objectives",
    "CUSTOM_OBJECTS": "densenet3d_keras.models.objectives",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError("module 'densenet3d_keras' has no attribute %r" % (name,))
