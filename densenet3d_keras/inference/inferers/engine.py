"""The fully convolutional network run by OpenVINO or ONNX Runtime instead of TensorFlow.

The checkpoint is loaded into the float32 valid-padding Keras model as for TensorFlow; its
weights are written as ONNX graphs in memory and handed to the engine; the Keras model is
dropped. :class:`EngineSlabInferer` (the default) streams the box in slabs
(:class:`~densenet3d_keras.inference.engine_streaming.EngineStreamer`: each voxel of each layer
computed once); :class:`EngineInferer` (``--tiles``) runs the whole network's graph
(:func:`~densenet3d_keras.inference.engines.engine_predictor`) over the tiles of
:class:`~densenet3d_keras.inference.inferers.tiles.TileInferer`, in less memory.
"""
from densenet3d_keras.core.compat import clear_session
from densenet3d_keras.inference.engine_streaming import EngineStreamer
from densenet3d_keras.inference.engines import ENGINE_TILE_SIZES, engine_predictor
from densenet3d_keras.inference.inferers.slabs import SlabInferer
from densenet3d_keras.inference.inferers.tiles import TileInferer
from densenet3d_keras.inference.streaming import DEFAULT_REUSE
from densenet3d_keras.models.presets import architecture_of


class _OnEngine(object):
    """What both engine inferers share: the engine named in the log and the description; the
    Keras model freed once the engine holds the weights."""

    engine = engine_precision = None

    def how(self):
        """How the passes run, for the log line."""
        raise NotImplementedError

    def load(self, log=print):
        """Load the checkpoint, hand its weights to the engine, then free the Keras model."""
        super(_OnEngine, self).load(log)
        self.model = None
        clear_session()
        line = "engine %s (%s): the network's ONNX graph %s" % (self.engine, self.engine_precision, self.how())
        if self.engine_precision == "bf16" and not getattr(self.predictor, "bf16", True):
            line += "; warning: this CPU has no bfloat16 instructions, OpenVINO computes in float32"
        log(line)

    def describe(self):
        """``"<model name> fcn <engine> <precision>"``, e.g. ``"dense24 fcn openvino bf16"``."""
        return "%s %s %s %s" % (self.model_name, self.method, self.engine, self.engine_precision)


class EngineSlabInferer(_OnEngine, SlabInferer):
    """``--method fcn --engine openvino|onnxruntime`` (default): the box streamed in slabs of
    ``slab`` input planes, each slab a compiled graph.

    Args:
        checkpoint, model_name, batch_size, member, shape_reuse: as
            :class:`~densenet3d_keras.inference.inferers.slabs.SlabInferer`.
        engine: ``"openvino"`` or ``"onnxruntime"``.
        precision: what the engine computes in (``"float32"``; OpenVINO also ``"bf16"``).
        slab: input planes per slab (``None``: the engine's).
    """

    def __init__(self, checkpoint, model_name, engine, precision="float32", batch_size=None, member=None,
                 slab=None, shape_reuse=DEFAULT_REUSE):
        # The Keras model is float32 and valid-padding: the graphs are written from its weights.
        super(EngineSlabInferer, self).__init__(checkpoint, model_name, "valid", "float32", batch_size, member,
                                                slab, shape_reuse)
        self.engine = engine
        self.engine_precision = precision

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        """The inferer of one checkpoint of a resolved run (its engine, precision, slab)."""
        return cls(checkpoint, config.model_name, config.engine, config.precision, config.batch_size, member,
                   config.slab, config.shape_reuse)

    def make_predictor(self, model):
        """The engine's streamer of the loaded model (it reads the weights once)."""
        streamer = EngineStreamer(model, self.engine, self.engine_precision, self.slab, self.shape_reuse,
                                  architecture=architecture_of(self.model_name))
        self.slab = streamer.slab
        return streamer

    def how(self):
        return "streamed in slabs of %d planes" % self.slab


class EngineInferer(_OnEngine, TileInferer):
    """``--method fcn --engine openvino|onnxruntime --tiles``: tiles of at most ``tile_size``
    voxels per edge through the engine's compiled graph of the whole network.

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

    def how(self):
        return "over tiles of at most %d voxels per edge" % self.tile_size
