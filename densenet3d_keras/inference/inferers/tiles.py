"""The fully convolutional network over overlapping tiles of the brain's box."""
from densenet3d_keras.inference.inferers.keras_model import KerasInferer
from densenet3d_keras.inference.predict import predict_fcn
from densenet3d_keras.inference.tiling import DEFAULT_TILE_SIZE


class TileInferer(KerasInferer):
    """``--method fcn --tiles`` (and graph mode):
    :func:`~densenet3d_keras.inference.predict.predict_fcn` over tiles of at most
    ``tile_size`` voxels per edge (other arguments: :class:`~densenet3d_keras.inference.inferers.keras_model.KerasInferer`;
    ``batch_size`` ``None``: as many tiles as fit one ``tile_size``^3 tile)."""

    method = "fcn"
    unit = "tiles"
    pass_name = "tile"

    def __init__(self, checkpoint, model_name, padding="valid", precision="float32", batch_size=None,
                 member=None, tile_size=DEFAULT_TILE_SIZE):
        super(TileInferer, self).__init__(checkpoint, model_name, padding, precision, batch_size, member)
        self.tile_size = tile_size

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        """The inferer of one checkpoint of a resolved run (with its ``tile_size``)."""
        return cls(checkpoint, config.model_name, config.padding, config.precision, config.batch_size, member,
                   config.tile_size)

    def run(self, predictor, volumes, progress=None):
        """The case's box in tiles (see :meth:`PredictorInferer.run
        <densenet3d_keras.inference.inferers.base.PredictorInferer.run>`)."""
        return predict_fcn(predictor, volumes.image, volumes.background, margin=self.margin,
                           tile_size=self.tile_size, batch_size=self.batch_size, progress=progress)
