"""The fully convolutional network over tiles, run by OpenVINO or ONNX Runtime instead of TensorFlow.

The checkpoint is loaded into the float32 valid-padding Keras model as for TensorFlow, then
written as an ONNX graph in memory and handed to the engine
(:func:`~densenet3d_keras.inference.engines.engine_predictor`); the Keras model is dropped.
The tiles are those of ``--tiles`` (:class:`~densenet3d_keras.inference.inferers.tiles.TileInferer`):
slab streaming carries planes between TensorFlow functions and stays TensorFlow's.
"""
from densenet3d_keras.core.compat import clear_session
from densenet3d_keras.inference.engines import ENGINE_TILE_SIZES, engine_predictor
from densenet3d_keras.inference.inferers.tiles import TileInferer


class EngineInferer(TileInferer):
    """``--method fcn --engine openvino|onnxruntime``: tiles of at most ``tile_size`` voxels
    per edge through the engine's compiled graph.

    Args:
        checkpoint, model_name, batch_size, member, tile_size: as
            :class:`~densenet3d_keras.inference.inferers.tiles.TileInferer`.
        engine: ``"openvino"`` or ``"onnxruntime"``.
        precision: what the engine computes in (``"float32"``; OpenVINO also ``"bf16"``).
        tile_size: ``None``: the engine's
            (:data:`~densenet3d_keras.inference.engines.ENGINE_TILE_SIZES`).
    """

    def __init__(self, checkpoint, model_name, engine, precision="float32", batch_size=None, member=None,
                 tile_size=None):
        # The Keras model is float32 and valid-padding: the graph is written from its weights.
        super(EngineInferer, self).__init__(checkpoint, model_name, "valid", "float32", batch_size, member,
                                            tile_size or ENGINE_TILE_SIZES[engine])
        self.engine = engine
        self.engine_precision = precision

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        """The inferer of one checkpoint of a resolved run (its ``engine`` and ``precision``)."""
        return cls(checkpoint, config.model_name, config.engine, config.precision, config.batch_size, member,
                   config.tile_size)

    def make_predictor(self, model):
        """The engine's predictor of the loaded model's ONNX graph."""
        return engine_predictor(model, self.model_name, self.engine, self.engine_precision)

    def load(self, log=print):
        """Load the checkpoint, hand its graph to the engine, then free the Keras model."""
        super(EngineInferer, self).load(log)
        self.model = None
        clear_session()
        line = ("engine %s (%s): the network's ONNX graph over tiles of at most %d voxels per edge "
                "(slab streaming is TensorFlow's)" % (self.engine, self.engine_precision, self.tile_size))
        if self.engine_precision == "bf16" and not getattr(self.predictor, "bf16", True):
            line += "; warning: this CPU has no bfloat16 instructions, OpenVINO computes in float32"
        log(line)

    def describe(self):
        """``"<model name> fcn <engine> <precision>"``, e.g. ``"dense24 fcn openvino bf16"``."""
        return "%s %s %s %s" % (self.model_name, self.method, self.engine, self.engine_precision)
