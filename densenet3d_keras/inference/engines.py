"""Inference engines other than TensorFlow: the network's ONNX graph run by OpenVINO or ONNX Runtime.

Training is always TensorFlow's. For inference, ``predict_keras.py --engine`` chooses what runs
the network: ``tensorflow`` (the Keras model or slab streaming; GPUs and Ascend NPUs),
``openvino`` (CPUs; with ``--precision bf16`` it computes in bfloat16 on CPUs with AVX-512 BF16
or AMX, fusing batch norm + ReLU into the convolutions) or ``onnxruntime`` (portable, float32
only: it has no bfloat16 convolution). Both run the graph of
:func:`densenet3d_keras.inference.onnx_graph.onnx_model`, built in memory from the loaded
Keras model's weights. Each is an optional dependency, imported when it is asked for:
``pip install 'densenet3d-keras[openvino]'`` or ``[onnx]``.

A predictor (:func:`engine_predictor`) is a callable from a batch ``(N, D, H, W, 4)`` to label
logits ``(N, D - 26, H - 26, W - 26, 5)``, float32, like the Keras model's
(:func:`densenet3d_keras.inference.predict.model_predictor`), so tiles, test-time mirroring and
ensembles place and average it as they do the Keras model.
"""
import importlib
from collections import OrderedDict

import numpy as np

from densenet3d_keras.inference.tiling import DEFAULT_TILE_SIZE

#: ``--engine`` -> ``(packages it imports, the extra that installs them)``; TensorFlow needs none.
ENGINES = OrderedDict([
    ("tensorflow", ((), None)),
    ("openvino", (("openvino", "onnx"), "openvino")),
    ("onnxruntime", (("onnxruntime", "onnx"), "onnx")),
])
#: ``--precision`` values each engine other than TensorFlow computes in.
ENGINE_PRECISIONS = {"openvino": ("float32", "bf16"), "onnxruntime": ("float32",)}
#: OpenVINO's ``INFERENCE_PRECISION_HINT`` of each ``--precision``.
OPENVINO_PRECISIONS = {"float32": "f32", "bf16": "bf16"}
#: Default largest tile edge (``--tile-size``) per engine. OpenVINO's is larger than
#: TensorFlow's: larger tiles recompute less of their overlaps and it needs less memory per
#: tile (dense24, a 240 x 240 x 155 case, bf16: 8 tiles of 99 x 114 x 99 in 2.0 GB, 1.18x
#: faster than 27 tiles of 75 x 85 x 75; 2 tiles of 172 x 114 x 172 took 4 GB more for 0-5%
#: less time); ONNX Runtime took 5.7 GB with 128, 2.5 GB with 88.
ENGINE_TILE_SIZES = {"tensorflow": DEFAULT_TILE_SIZE, "openvino": 128, "onnxruntime": DEFAULT_TILE_SIZE}
#: Input shapes an OpenVINO predictor keeps compiled (a case's tiles share one; cases differ).
COMPILED_SHAPES = 2


def require_package(package, extra):
    """Import an optional package, or say in one line which extra installs it.

    Args:
        package: the module to import (``"openvino"``).
        extra: the project's extra that installs it (``"openvino"``).

    Returns:
        the module.

    Raises:
        ValueError: ``package`` is not installed (the message names it and the extra).
    """
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ValueError("%s is not installed: pip install 'densenet3d-keras[%s]' "
                         "(in a checkout: pip install -e '.[%s]')" % (package, extra, extra))


def check_engine(engine, precision="float32"):
    """Check that ``engine`` exists, computes in ``precision`` and is installed.

    Raises:
        ValueError: an unknown engine, a precision it does not offer, or a missing package
            (one line naming the package and the extra to install).
    """
    if engine not in ENGINES:
        raise ValueError("unknown --engine %r (choose from %s)" % (engine, ", ".join(ENGINES)))
    if engine != "tensorflow" and precision not in ENGINE_PRECISIONS[engine]:
        raise ValueError("--engine %s computes in %s, not --precision %s%s"
                         % (engine, " or ".join(ENGINE_PRECISIONS[engine]), precision,
                            " (it has no bfloat16 convolution; --engine openvino has)"
                            if engine == "onnxruntime" and precision == "bf16" else ""))
    packages, extra = ENGINES[engine]
    for package in packages:
        require_package(package, extra)


class OpenVinoPredictor(object):
    """An ONNX graph compiled by OpenVINO for the CPU, once per input shape.

    Args:
        proto: ``onnx.ModelProto`` (input ``input``, outputs ``wt_logits``, ``labels_logits``).
        precision: ``"float32"`` or ``"bf16"`` (OpenVINO's inference precision hint; on a CPU
            without bfloat16 instructions OpenVINO computes in float32: see :attr:`bf16`).

    Attributes:
        bf16: whether the CPU has bfloat16 instructions (``BF16`` among OpenVINO's
            optimisation capabilities).
    """

    def __init__(self, proto, precision="float32"):
        import openvino

        self._core = openvino.Core()
        self._model = self._core.read_model(proto.SerializeToString())
        self._config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[precision],
                        "PERFORMANCE_HINT": "LATENCY"}
        self.bf16 = "BF16" in self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self._compiled = OrderedDict()

    def _compile(self, shape):
        if shape not in self._compiled:
            while len(self._compiled) >= COMPILED_SHAPES:
                self._compiled.popitem(last=False)
            self._model.reshape(list(shape))
            self._compiled[shape] = self._core.compile_model(self._model, "CPU", self._config)
        return self._compiled[shape]

    def __call__(self, batch):
        """Label logits ``(N, D - 26, ..., 5)`` float32 of a batch ``(N, D, H, W, 4)``."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        compiled = self._compile(batch.shape)
        outputs = compiled({0: batch})
        return np.array(outputs[compiled.output("labels_logits")], dtype=np.float32)


class OnnxRuntimePredictor(object):
    """An ONNX graph run by ONNX Runtime's CPU provider (any input shape).

    Args:
        proto: ``onnx.ModelProto`` (input ``input``, outputs ``wt_logits``, ``labels_logits``).
    """

    def __init__(self, proto):
        import onnxruntime

        self._session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                                     providers=["CPUExecutionProvider"])

    def __call__(self, batch):
        """Label logits ``(N, D - 26, ..., 5)`` float32 of a batch ``(N, D, H, W, 4)``."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return np.asarray(self._session.run(["labels_logits"], {"input": batch})[0], dtype=np.float32)


def engine_predictor(model, model_name, engine, precision="float32"):
    """The predictor of a loaded valid-padding Keras model run by ``engine``.

    Args:
        model: the Keras model (``padding="valid"``, any input size), float32 weights.
        model_name: its preset name.
        engine: ``"openvino"`` or ``"onnxruntime"``.
        precision: ``"float32"`` or (OpenVINO) ``"bf16"``.

    Returns:
        :class:`OpenVinoPredictor` or :class:`OnnxRuntimePredictor`.

    Raises:
        ValueError: see :func:`check_engine`; ``"tensorflow"`` (the Keras model is its own
            predictor).
    """
    from densenet3d_keras.inference.onnx_graph import onnx_model

    check_engine(engine, precision)
    if engine == "tensorflow":
        raise ValueError("the tensorflow engine runs the Keras model itself, not an ONNX graph")
    proto = onnx_model(model, model_name)
    if engine == "openvino":
        return OpenVinoPredictor(proto, precision)
    return OnnxRuntimePredictor(proto)
