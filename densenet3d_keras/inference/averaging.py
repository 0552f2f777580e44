"""Averaged predictors: test-time mirroring (TTA) and ensembles of checkpoints.

:func:`averaged_predictor` wraps one or more predictors (Keras models or callables, as
:func:`~densenet3d_keras.inference.predict.as_predictor` takes them) into one predictor of the
same kind, so :func:`~densenet3d_keras.inference.predict.predict_fcn` and
:func:`~densenet3d_keras.inference.predict.predict_patch` use it unchanged. For a batch
``(N, D, H, W, 4)`` it runs every predictor on the batch (with ``flips``, on each of the 8
mirror images of the batch over its three spatial axes, the output flipped back), takes the
softmax of each label output over the four BraTS labels (class 3 is none and gets
probability 0), averages those probabilities with equal weights, and returns their log as the
"logits". The softmax of ``log p`` over the four labels is ``p``, so
:func:`~densenet3d_keras.inference.predict.labels_from_logits` and
:func:`~densenet3d_keras.inference.predict.probabilities_from_logits` give the averaged
labels and probabilities: the probabilities written for an ensemble are the mean of those its
members write.

Flipping back is exact for tiles and windows alike: a kept output voxel sees the input within
the margin around it, and the output of a flipped input is the flipped output grid (the
centred crop of the tile, or the whole window with same padding). The network itself is not
flip-equivariant, so the 8 passes give 8 different answers: the cost is 8 forward passes per
tile or window.
"""
import itertools

import numpy as np

from densenet3d_keras.core.labels import LABEL_CLASSES
from densenet3d_keras.inference.predict import as_predictor

#: The spatial axes of a batch ``(N, D, H, W, C)``.
SPATIAL_AXES = (1, 2, 3)
#: Every subset of :data:`SPATIAL_AXES`, the identity first: the 8 mirror images.
FLIPS = tuple(axes for count in range(len(SPATIAL_AXES) + 1)
              for axes in itertools.combinations(SPATIAL_AXES, count))
#: Smallest probability whose log is returned: an averaged probability that underflowed to
#: 0 gives ``log(tiny)`` (about -87) rather than minus infinity.
PROBABILITY_FLOOR = float(np.finfo(np.float32).tiny)


def softmax(logits):
    """Softmax over the last axis, in float32 (the maximum subtracted first).

    Args:
        logits: array ``(..., C)``.

    Returns:
        float32 array of the same shape; each ``[..., :]`` sums to 1.
    """
    values = np.asarray(logits, dtype=np.float32)
    values = values - values.max(axis=-1, keepdims=True)
    np.exp(values, out=values)
    values /= values.sum(axis=-1, keepdims=True)
    return values


def label_softmax(logits):
    """Softmax over the BraTS label classes 0, 1, 2 and 4 of the last axis; class 3 is 0.

    Args:
        logits: array ``(..., 5)``.

    Returns:
        float32 array of the same shape; each ``[..., :]`` sums to 1.
    """
    values = np.asarray(logits, dtype=np.float32)
    out = np.zeros(values.shape, dtype=np.float32)
    out[..., list(LABEL_CLASSES)] = softmax(values[..., list(LABEL_CLASSES)])
    return out


def flip(batch, axes):
    """``batch`` mirrored along ``axes`` (a tuple, possibly empty), as a contiguous array."""
    if not axes:
        return batch
    return np.ascontiguousarray(np.flip(batch, axis=axes))


class PassProgress(object):
    """Progress within the forward passes of one batch, as one count: called as
    ``report(done, total)`` by each pass in turn, it calls ``progress(done over all passes,
    total of all passes)``.

    Args:
        progress: callable ``(done, total)``.
        passes: forward passes per batch (:func:`passes_per_batch`).
    """

    def __init__(self, progress, passes):
        self.progress = progress
        self.passes = passes
        self.finished = 0

    def __call__(self, done, total):
        self.progress(self.finished * total + done, self.passes * total)
        if done == total:
            self.finished += 1


class AveragedPredictor(object):
    """A predictor averaging the softmax probabilities of several, over mirror images too
    (see :func:`averaged_predictor`).

    Attributes:
        members: the predictors averaged.
        flips: whether the 8 mirror images are averaged too.
        passes: forward passes per batch (members x mirror images).
        progress: ``None`` or a callable ``(done, total)``; members that report progress within
            a pass (a ``progress`` attribute, e.g.
            :class:`~densenet3d_keras.inference.streaming.SlabStreamer`) report to it as one
            count over all the batch's passes (:class:`PassProgress`).
    """

    def __init__(self, predictors, flips=False):
        self.members = [as_predictor(p) for p in predictors]
        if not self.members:
            raise ValueError("averaged_predictor needs at least one predictor")
        self.flips = bool(flips)
        self._mirror_images = FLIPS if flips else ((),)
        self.passes = passes_per_batch(len(self.members), flips)
        self._progress = None

    @property
    def progress(self):
        return self._progress

    @progress.setter
    def progress(self, progress):
        self._progress = progress
        report = None if progress is None else PassProgress(progress, self.passes)
        for member in self.members:
            if hasattr(member, "progress"):
                member.progress = report

    def __call__(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        total = None
        for axes in self._mirror_images:
            mirrored = flip(batch, axes)
            for predictor in self.members:
                probabilities = label_softmax(flip(predictor(mirrored), axes))
                if total is None:
                    total = probabilities
                else:
                    total += probabilities
            del mirrored
        total /= float(self.passes)
        return np.log(np.maximum(total, PROBABILITY_FLOOR))


def averaged_predictor(predictors, flips=False):
    """One predictor averaging the softmax probabilities of several, over mirror images too.

    Args:
        predictors: a non-empty sequence of Keras models or callables from a batch
            ``(N, D, H, W, 4)`` to label logits ``(N, D', H', W', 5)``.
        flips: ``True`` also averages over the 8 mirror images (:data:`FLIPS`) of each
            batch, flipping each output back before its softmax.

    Returns:
        :class:`AveragedPredictor`: a callable from a batch to float32 ``log`` of the mean
        probabilities, shape as the predictors' outputs. Each batch costs
        ``len(predictors) x (8 if flips else 1)`` predictor calls. Its attribute ``members``
        lists the predictors.

    Raises:
        ValueError: no predictor, or one that is neither a Keras model nor callable.
    """
    return AveragedPredictor(predictors, flips)


def passes_per_batch(num_models, flips):
    """Forward passes per tile or window: ``num_models`` x 8 with ``flips``, else x 1."""
    return int(num_models) * (len(FLIPS) if flips else 1)
