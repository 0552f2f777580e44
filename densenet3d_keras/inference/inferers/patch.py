"""The reference's sliding windows: every 38^3 window, its logits into its 12^3 centre."""
from densenet3d_keras.core.geometry import PATCH_SIZE
from densenet3d_keras.inference.inferers.keras_model import KerasInferer
from densenet3d_keras.inference.predict import PATCH_BATCH_SIZE, predict_patch


class PatchInferer(KerasInferer):
    """``--method patch``: :func:`~densenet3d_keras.inference.predict.predict_patch` with a
    38^3 model (see :class:`~densenet3d_keras.inference.inferers.keras_model.KerasInferer` for
    the arguments; ``batch_size`` ``None``: 4 windows per call)."""

    method = "patch"
    input_size = PATCH_SIZE
    unit = "windows"
    pass_name = "window"

    def run(self, predictor, volumes, progress=None):
        """Every window of the case (see :meth:`PredictorInferer.run
        <densenet3d_keras.inference.inferers.base.PredictorInferer.run>`)."""
        return predict_patch(predictor, volumes.image, volumes.background, margin=self.margin,
                             batch_size=self.batch_size or PATCH_BATCH_SIZE, progress=progress)
