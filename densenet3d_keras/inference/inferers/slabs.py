"""The fully convolutional network over the brain's box in one pass, streamed in slabs."""
from densenet3d_keras.inference.inferers.keras_model import KerasInferer
from densenet3d_keras.inference.predict import predict_box
from densenet3d_keras.inference.streaming import DEFAULT_REUSE, DEFAULT_SLAB, SlabStreamer
from densenet3d_keras.models.presets import architecture_of


class SlabInferer(KerasInferer):
    """``--method fcn`` (default): the box through a
    :class:`~densenet3d_keras.inference.streaming.SlabStreamer` of ``slab`` planes per slab,
    reusing compiled shapes up to ``shape_reuse`` voxels larger (other arguments:
    :class:`~densenet3d_keras.inference.inferers.keras_model.KerasInferer`). Progress counts
    planes, reported by the streamer within its pass."""

    method = "fcn"
    unit = "planes"
    pass_name = "box"

    def __init__(self, checkpoint, model_name, padding="valid", precision="float32", batch_size=None,
                 member=None, slab=DEFAULT_SLAB, shape_reuse=DEFAULT_REUSE):
        super(SlabInferer, self).__init__(checkpoint, model_name, padding, precision, batch_size, member)
        self.slab = slab
        self.shape_reuse = shape_reuse

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        """The inferer of one checkpoint of a resolved run (with its ``slab`` and ``shape_reuse``)."""
        return cls(checkpoint, config.model_name, config.padding, config.precision, config.batch_size, member,
                   config.slab, config.shape_reuse)

    def make_predictor(self, model):
        """The streamer of the loaded model (it reads the weights once)."""
        return SlabStreamer(model, self.slab, self.precision, self.shape_reuse,
                            architecture=architecture_of(self.model_name))

    def run(self, predictor, volumes, progress=None):
        """The case's box in one streamed pass; ``predictor`` reports the planes to ``progress``
        through its ``progress`` attribute (a streamer's, or an average's that passes it on)."""
        predictor.progress = progress
        try:
            return predict_box(predictor, volumes.image, volumes.background, margin=self.margin)
        finally:
            predictor.progress = None

    def describe_passes(self, segmentation):
        """``"box of DxHxW voxels streamed in slabs of N planes"``."""
        return "box of %s voxels streamed in slabs of %d planes" % (
            "x".join(str(s) for s in segmentation.pass_shape), self.slab)
