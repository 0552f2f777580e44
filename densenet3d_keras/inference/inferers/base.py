"""The inferer interface: load once, segment case after case, say what it is.

:class:`Inferer` is what the prediction pipeline calls. :class:`PredictorInferer` is an
inferer that feeds a *predictor* (a callable from a batch ``(N, D, H, W, 4)`` to label logits
``(N, D', H', W', 5)``) through one placement of passes over a case (windows, tiles, the
box); :class:`~densenet3d_keras.inference.inferers.averaged.AveragedInferer` runs that
placement with the averaged predictor of several such inferers.
"""


class Inferer(object):
    """Segments one case at a time. Subclasses implement the three methods.

    Attributes:
        unit: what its progress counts (``"windows"``, ``"tiles"``, ``"planes"``).
    """

    unit = "passes"

    def load(self, log=print):
        """Load what segmenting needs (weights, compiled functions), once, before any case.

        Args:
            log: callable taking one line (what was loaded from where).

        Raises:
            FileNotFoundError, ValueError: something to load is missing or does not fit.
        """
        raise NotImplementedError

    def segment(self, volumes, progress=None):
        """Segment one case.

        Args:
            volumes: the case's :class:`generators.volumes.CaseVolumes` (``image``,
                ``background``).
            progress: ``None`` or a callable ``(done, total)`` in :attr:`unit`.

        Returns:
            :class:`~densenet3d_keras.inference.predict.Segmentation`.
        """
        raise NotImplementedError

    def describe(self):
        """What segments, for the output files' headers: ``"dense24 fcn"``."""
        raise NotImplementedError

    def describe_passes(self, segmentation):
        """The passes of one case, for its log line: ``"18 tiles of 87x84x83 voxels"``.

        Args:
            segmentation: what :meth:`segment` returned for the case.

        Returns:
            str.
        """
        return "%d %s of %s voxels" % (segmentation.num_passes, self.unit,
                                       "x".join(str(s) for s in segmentation.pass_shape))


class PredictorInferer(Inferer):
    """An inferer that runs a predictor over one placement of passes.

    After :meth:`load`, :attr:`predictor` is the loaded predictor; :meth:`segment` is
    :meth:`run` with it, and a wrapping inferer may :meth:`run` another predictor of the same
    kind (e.g. an average of several) over the same placement.

    Attributes:
        predictor: the callable a batch goes through (set by :meth:`load`).
        pass_name: what one pass covers (``"window"``, ``"tile"``, ``"box"``).
    """

    predictor = None
    pass_name = "pass"

    def run(self, predictor, volumes, progress=None):
        """Segment one case with ``predictor`` placed as this inferer places its passes.

        Args:
            predictor: a callable like :attr:`predictor` (or a Keras model).
            volumes: the case's :class:`generators.volumes.CaseVolumes`.
            progress: ``None`` or a callable ``(done, total)`` in :attr:`unit`.

        Returns:
            :class:`~densenet3d_keras.inference.predict.Segmentation`.
        """
        raise NotImplementedError

    def segment(self, volumes, progress=None):
        """:meth:`run` with :attr:`predictor` (see :meth:`Inferer.segment`)."""
        return self.run(self.predictor, volumes, progress)
