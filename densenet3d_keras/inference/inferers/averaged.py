"""Test-time mirroring and ensembles: an inferer averaging other inferers of one method."""
from densenet3d_keras.inference.averaging import averaged_predictor, passes_per_batch
from densenet3d_keras.inference.inferers.base import Inferer


class AveragedInferer(Inferer):
    """Averages the softmax probabilities of its members' predictors, batch by batch, over the
    8 mirror images too with ``flips``
    (:func:`~densenet3d_keras.inference.averaging.averaged_predictor`), placed as the first
    member places its passes: the labels are those of the average, window by window, tile by
    tile or box by box.

    Args:
        members: :class:`~densenet3d_keras.inference.inferers.base.PredictorInferer` objects
            of one kind (one per checkpoint).
        flips: average over the 8 mirror images (``--tta``).

    Raises:
        ValueError: no member.
    """

    def __init__(self, members, flips=False):
        if not members:
            raise ValueError("an averaged inferer needs at least one member")
        self.members = list(members)
        self.flips = bool(flips)
        self.unit = self.members[0].unit
        self.predictor = None

    def load(self, log=print):
        """Load every member, then log how many passes a batch costs."""
        for member in self.members:
            member.load(log)
        self.predictor = averaged_predictor([member.predictor for member in self.members], flips=self.flips)
        log("averaging softmax probabilities over %d model(s) x %d mirror image(s): %d forward "
            "passes per %s" % (len(self.members), passes_per_batch(1, self.flips),
                               passes_per_batch(len(self.members), self.flips), self.members[0].pass_name))

    def segment(self, volumes, progress=None):
        """The case through the average, placed as the first member places its passes."""
        return self.members[0].run(self.predictor, volumes, progress)

    def describe(self):
        """The first member's, then ``tta`` and ``ensemble of N``: ``"dense24 fcn tta ensemble of 3"``."""
        parts = [self.members[0].describe()]
        if self.flips:
            parts.append("tta")
        if len(self.members) > 1:
            parts.append("ensemble of %d" % len(self.members))
        return " ".join(parts)

    def describe_passes(self, segmentation):
        """As the first member describes them."""
        return self.members[0].describe_passes(segmentation)
