"""Inferers of a Keras checkpoint: load its weights into the network its model name asks for.

:class:`KerasInferer` is what the patch, tile and slab inferers share: the checkpoint (a file,
or a run folder for its newest), the model name, padding and precision, and the one log line
naming the model loaded. As a member of an ensemble (:class:`Member`) its errors name
``--ensemble`` and a checkpoint trained on other data (N4 correction) is warned about.
"""
from collections import namedtuple

from densenet3d_keras.core import compat
from densenet3d_keras.inference.inferers.base import PredictorInferer
from densenet3d_keras.models.checkpoints import read_run_config
from densenet3d_keras.models.presets import architecture_of

#: A model's place in an ensemble: ``index`` (from 1: the ``-m`` checkpoint) of ``count``, and
#: the run's ``n4correction`` (a member recorded as trained otherwise is warned about).
Member = namedtuple("Member", ["index", "count", "n4correction"])


class KerasInferer(PredictorInferer):
    """Loads a checkpoint into a Keras model; subclasses place its passes.

    Args:
        checkpoint: checkpoint file, or a folder (its newest checkpoint).
        model_name: a model name of :data:`densenet3d_keras.models.presets.MODEL_NAMES`.
        padding: ``"same"`` or ``"valid"`` (the same weights and logits).
        precision: ``"float32"``, ``"bf16"`` or ``"mixed_float16"``.
        batch_size: passes per model call (``None``: the method's default).
        member: its :class:`Member` of an ensemble, or ``None``.

    Attributes:
        method: the ``--method`` it implements.
        input_size: the model's cubic input size, or ``None`` for any size.
        margin: the model's receptive-field radius.
        model, path, info: after :meth:`load`, the Keras model, the checkpoint file and its
            recorded ``{"epoch", "model", "padding"}``.
    """

    method = None
    input_size = None

    def __init__(self, checkpoint, model_name, padding="valid", precision="float32", batch_size=None,
                 member=None):
        self.checkpoint = checkpoint
        self.model_name = model_name
        self.padding = padding
        self.precision = precision
        self.batch_size = batch_size
        self.member = member
        self.margin = architecture_of(model_name).margin
        self.model = self.path = self.info = None

    @classmethod
    def from_config(cls, config, checkpoint, member=None):
        """The inferer of one checkpoint of a resolved
        :class:`~densenet3d_keras.inference.config.PredictConfig`."""
        return cls(checkpoint, config.model_name, config.padding, config.precision, config.batch_size, member)

    def make_predictor(self, model):
        """The predictor of the loaded Keras model (the model itself; streaming wraps it)."""
        return model

    def load(self, log=print):
        """Load the checkpoint (see :class:`~densenet3d_keras.inference.inferers.base.Inferer`)."""
        extra = self.member is not None and self.member.index > 1
        try:
            self.model, self.path, self.info = self._load_model()
        except FileNotFoundError as error:
            raise FileNotFoundError("--ensemble: %s" % error) if extra else error
        except ValueError as error:
            raise ValueError("--ensemble: %s" % error) if extra else error
        if extra:
            recorded = read_run_config(self.checkpoint).get("n4correction")
            if isinstance(recorded, bool) and recorded != self.member.n4correction:
                log("warning: %s was trained with n4correction %s; this run reads %s (from -m / -nc)"
                    % (self.path, str(recorded).lower(), str(self.member.n4correction).lower()))
        self.predictor = self.make_predictor(self.model)
        position = ""
        if self.member is not None and self.member.count > 1:
            position = " %d/%d" % (self.member.index, self.member.count)
        log("model %s%s (%s padding) from %s (epoch %s)"
            % (self.model_name, position, self.padding, self.path, self.info["epoch"]))

    def _load_model(self):
        from densenet3d_keras.models.loading import load_model

        compat.set_precision(self.precision)  # the layers' compute dtype, fixed when built
        try:
            return load_model(self.checkpoint, self.model_name, self.input_size, self.padding)
        finally:
            compat.set_precision("float32")  # the global policy only matters while building

    def describe(self):
        """``"<model name> <method>"``, e.g. ``"dense24 fcn"``."""
        return "%s %s" % (self.model_name, self.method)
