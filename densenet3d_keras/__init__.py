"""Hierarchical densely connected 3-D CNN for brain-tumour segmentation, in tf.keras.

Chen et al., "MRI tumor segmentation with densely connected 3D CNN", SPIE Medical Imaging
2018, arXiv:1802.02427.

The names below are imported lazily, so that modules which need no TensorFlow (metrics,
evaluation, geometry) load without it.
"""
import importlib

_EXPORTS = {
    "ChannelSlice": "densenet3d_keras.layers",
    "DenseBlock3D": "densenet3d_keras.layers",
    "PaddedBatchNormalization": "densenet3d_keras.layers",
    "PlainBlock3D": "densenet3d_keras.layers",
    "TransitionDown": "densenet3d_keras.layers",
    "HierarchicalHead": "densenet3d_keras.layers",
    "ARCHITECTURES": "densenet3d_keras.models",
    "MODEL_NAMES": "densenet3d_keras.models",
    "build_model": "densenet3d_keras.models",
    "resolve_model_name": "densenet3d_keras.models",
    "accuracy_percent": "densenet3d_keras.objectives",
    "compile_model": "densenet3d_keras.objectives",
    "softmax_cross_entropy": "densenet3d_keras.objectives",
    "CUSTOM_OBJECTS": "densenet3d_keras.objectives",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError("module 'densenet3d_keras' has no attribute %r" % (name,))
