"""Whole-volume segmentation with a trained model: sliding 38^3 windows or large tiles.

Two methods give the same label at every voxel at least a margin (13 voxels) from the edge:

* :func:`predict_patch`, the reference scheme (docs/spec.md): 38^3 windows every 12 voxels, the
  last one clamped to the volume edge; each window's 5-class logits fill the 12^3 block at its
  centre, overlapping blocks add up, the label is the argmax. Unlike the reference, every
  window is run (the reference skipped windows lying wholly inside the brain). Voxels within
  the margin of the edge get no score (label 0).
* :func:`predict_fcn`, the same network run fully convolutionally over large tiles (or with
  :func:`predict_box`, over the whole box in one pass of a streaming predictor). The
  network's kept outputs are its input minus the margin on each side, and a kept voxel sees
  only input within the margin, so a tile of ``T`` voxels per axis gives the logits of ``T - 26``
  voxels exactly as 38^3 windows centred on them would (in inference mode); neighbouring tiles'
  inputs overlap by 2 x 13 voxels. Only the bounding box of the brain is predicted; each
  tile's input reaches up to 13 voxels beyond it, and where that leaves the volume it is
  filled with each channel's background value (the normalised value of a raw 0).

Both methods label nothing outside the brain (:func:`densenet3d_keras.core.brain.brain_mask`:
voxels where any modality is nonzero, holes filled): skull-stripped scans have no tumour
there, and a network never trained on the empty background must not be asked about it.
Voxels outside the brain are "unscored": label 0, probability 1 for class 0.

Arrays follow the NIfTI voxel order of :class:`generators.volumes.CaseVolumes`: images are
``(X, Y, Z, 4)`` (channels flair, t2, t1, t1ce), label maps ``(X, Y, Z)``, logits
``(X, Y, Z, 5)`` over internal labels 0..4 (enhancing tumour = 4; class 3 is unused). The
model sees the three voxel axes as its ``(depth, height, width)``.

The geometry (tile plans, window plans, padding and cropping) is in
:mod:`densenet3d_keras.inference.tiling`; the two ``predict_*`` functions only feed a
predictor: any callable from a batch ``(N, D, H, W, 4)`` to label logits ``(N, D', H', W', 5)``
(:func:`model_predictor` makes one of a Keras model).
"""
import time
from typing import Callable, Optional, Sequence

import numpy as np

from densenet3d_keras.core.brain import brain_mask
from densenet3d_keras.core.geometry import MARGIN, PATCH_SIZE, output_size
from densenet3d_keras.core.labels import LABEL_CLASSES, NUM_CLASSES
from densenet3d_keras.inference.tiling import (DEFAULT_TILE_SIZE, bounding_box, box_slices, crop_back,
                                               extract_block, pad_to_patch, tile_input_shape,
                                               tile_plan, tiles_per_batch, window_block, window_plan)

#: Windows per model call of :func:`predict_patch` (memory: docs/performance.md).
PATCH_BATCH_SIZE = 4

class Segmentation(object):
    """The result of :func:`predict_fcn` or :func:`predict_patch` for one volume.

    Attributes:
        logits: float32 ``(X, Y, Z, 5)`` label logits; 0 where no score was computed. For
            the patch method, voxels covered by several windows hold the mean of their
            blocks (the same argmax as the reference's sum).
        scored: bool ``(X, Y, Z)``, voxels of the brain that received a score.
        method: ``"fcn"`` or ``"patch"``.
        pass_shape: spatial input shape of one forward pass (tile or window), ``(3,)``.
        num_passes: number of forward passes (tiles or windows run).
        seconds: wall time of the model calls and assembly.
    """

    def __init__(self, logits, scored, method, pass_shape, num_passes, seconds):
        self.logits = logits
        self.scored = scored
        self.method = method
        self.pass_shape = tuple(int(s) for s in pass_shape)
        self.num_passes = int(num_passes)
        self.seconds = float(seconds)

    @property
    def labels(self):
        """uint8 ``(X, Y, Z)`` internal labels (0, 1, 2, 4), 0 where unscored."""
        return labels_from_logits(self.logits, self.scored)

    def probabilities(self):
        """float32 ``(X, Y, Z, 5)`` softmax; one-hot background (class 0) where unscored."""
        return probabilities_from_logits(self.logits, self.scored)


def labels_from_logits(logits, scored=None):
    # type: (np.ndarray, Optional[np.ndarray]) -> np.ndarray
    """Internal label map: the argmax over the BraTS labels 0, 1, 2 and 4.

    Class 3 is not a BraTS label (training never targets it), so it is left out of the
    argmax; a trained model never prefers it, an untrained one might.

    Args:
        logits: ``(X, Y, Z, 5)`` array.
        scored: optional bool ``(X, Y, Z)``; unscored voxels get label 0.

    Returns:
        uint8 ``(X, Y, Z)`` with values in {0, 1, 2, 4}.
    """
    classes = np.asarray(LABEL_CLASSES, dtype=np.uint8)
    labels = np.empty(logits.shape[:3], dtype=np.uint8)
    for x in range(logits.shape[0]):  # slab by slab: no full-size temporaries
        labels[x] = classes[np.argmax(logits[x][..., classes], axis=-1)]
    if scored is not None:
        labels[~scored] = 0
    return labels


def probabilities_from_logits(logits, scored=None):
    # type: (np.ndarray, Optional[np.ndarray]) -> np.ndarray
    """Softmax over the BraTS labels 0, 1, 2 and 4, computed in float32 slab by slab.

    Class 3 is not a label (see :func:`labels_from_logits`): its channel is 0 and the other
    four sum to 1, so the argmax of the probabilities is the label map.

    Args:
        logits: ``(X, Y, Z, 5)`` array.
        scored: optional bool ``(X, Y, Z)``; unscored voxels get probability 1 for class 0.

    Returns:
        float32 ``(X, Y, Z, 5)``.
    """
    classes = list(LABEL_CLASSES)
    out = np.zeros(logits.shape, dtype=np.float32)
    for x in range(logits.shape[0]):
        slab = logits[x][..., classes].astype(np.float32)
        slab = slab - slab.max(axis=-1, keepdims=True)
        np.exp(slab, out=slab)
        slab /= slab.sum(axis=-1, keepdims=True)
        out[x][..., classes] = slab
    if scored is not None:
        out[~scored] = 0.0
        out[..., 0][~scored] = 1.0
    return out


def _label_output_index(model):
    names = list(getattr(model, "output_names", None) or [])
    if "labels" in names:
        return names.index("labels")
    return len(model.outputs) - 1


def model_predictor(model):
    # type: (object) -> Callable[[np.ndarray], np.ndarray]
    """A predictor of a Keras model: batch ``(N, D, H, W, 4)`` -> label logits, float32.

    Args:
        model: a model from :func:`~densenet3d_keras.models.builder.build_model` (its
            ``labels`` output is used) or any model with one output of label logits.
    """
    index = _label_output_index(model)

    def predict(batch):
        outputs = model.predict_on_batch(batch)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[index]
        return np.asarray(outputs, dtype=np.float32)

    return predict


def as_predictor(model_or_predictor):
    """A Keras model becomes :func:`model_predictor`; any other callable is used as it is."""
    if hasattr(model_or_predictor, "predict_on_batch"):
        return model_predictor(model_or_predictor)
    if not callable(model_or_predictor):
        raise ValueError("expected a Keras model or a callable predictor, got %r" % (model_or_predictor,))
    return model_or_predictor


def _check_image(image, background):
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError("image must be (X, Y, Z, C), got shape %s" % (image.shape,))
    background = np.asarray(background, dtype=np.float32)
    if background.shape != (image.shape[3],):
        raise ValueError("background must hold one value per channel (%d), got shape %s"
                         % (image.shape[3], background.shape))
    if image.dtype != np.float32:
        image = image.astype(np.float32)
    return image, background


def predict_fcn(predictor, image, background, margin=MARGIN, tile_size=DEFAULT_TILE_SIZE,
                batch_size=None, crop_to_brain=True, progress=None):
    # type: (object, np.ndarray, Sequence[float], int, int, Optional[int], bool, Optional[Callable[[int, int], None]]) -> Segmentation
    """Segment a volume with the fully convolutional model over tiles.

    Args:
        predictor: a Keras model from ``build_model(name, input_size=None, padding=...)``
            (either padding), or any callable from ``(N, D, H, W, 4)`` to label logits
            ``(N, D - 2 margin, ..., 5)`` (see :func:`as_predictor`).
        image: float32 ``(X, Y, Z, 4)`` normalised image (channels flair, t2, t1, t1ce).
        background: ``(4,)`` value of a raw 0 per channel
            (:attr:`generators.volumes.CaseVolumes.background`).
        margin: the model's receptive-field radius (13).
        tile_size: largest tile input edge (> 2 margin); bounds the memory of a model call.
        batch_size: tiles per model call; ``None`` batches as many as fit the voxel budget of
            one ``tile_size``^3 tile (:func:`tiles_per_batch`).
        crop_to_brain: predict only the bounding box of the brain
            (:func:`~densenet3d_keras.core.brain.brain_mask`) and score only the brain;
            ``False`` predicts and scores every voxel of the volume.
        progress: called as ``progress(tiles done, tiles total)`` after each model call.

    Returns:
        :class:`Segmentation`; ``scored`` is the brain (every voxel without ``crop_to_brain``).

    Raises:
        ValueError: a bad image, background, tile size or batch size.
    """
    if tile_size is None:
        raise ValueError("tile_size must be a number of voxels (predict_box runs the box in one pass)")
    return _predict_tiles(predictor, image, background, margin, tile_size, batch_size, crop_to_brain,
                          progress)


def predict_box(predictor, image, background, margin=MARGIN, crop_to_brain=True):
    # type: (object, np.ndarray, Sequence[float], int, bool) -> Segmentation
    """Segment a volume in one pass of the predictor over the brain's box grown by the margin:
    for a predictor that takes any size in bounded memory
    (:class:`~densenet3d_keras.inference.streaming.SlabStreamer`).

    Args:
        predictor: a callable from ``(1, D, H, W, 4)`` to label logits ``(1, D - 2 margin, ...,
            5)`` for any size (progress within the pass, if any, is the predictor's own).
        image: float32 ``(X, Y, Z, 4)`` normalised image (channels flair, t2, t1, t1ce).
        background: ``(4,)`` value of a raw 0 per channel.
        margin: the model's receptive-field radius (13).
        crop_to_brain: as :func:`predict_fcn`.

    Returns:
        :class:`Segmentation` of one pass (``pass_shape``: the box grown by the margin).

    Raises:
        ValueError: a bad image or background.
    """
    return _predict_tiles(predictor, image, background, margin, None, 1, crop_to_brain, None)


def _predict_tiles(predictor, image, background, margin, tile_size, batch_size, crop_to_brain, progress):
    """:func:`predict_fcn` with ``tile_size`` ``None`` meaning one tile, the whole box."""
    started = time.time()
    predict = as_predictor(predictor)
    image, background = _check_image(image, background)
    shape = image.shape[:3]
    logits = np.zeros(shape + (NUM_CLASSES,), dtype=np.float32)
    scored = np.zeros(shape, dtype=bool)
    brain = brain_mask(image, background) if crop_to_brain else None
    box = bounding_box(brain) if crop_to_brain else ((0, 0, 0), shape)
    if box is None:  # no foreground at all: nothing to segment
        return Segmentation(logits, scored, "fcn", (0, 0, 0), 0, time.time() - started)
    if tile_size is None:
        tile_size = max(b - a for a, b in zip(*box)) + 2 * margin
    plan = tile_plan(box[0], box[1], tile_size, margin)
    input_shape = tile_input_shape(plan[0], margin)
    if batch_size is None:
        batch_size = tiles_per_batch(input_shape, tile_size)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %r" % (batch_size,))
    done = 0
    for first in range(0, len(plan), batch_size):
        tiles = plan[first:first + batch_size]
        batch = np.stack([extract_block(image, [a - margin for a in tile.start],
                                        [b + margin for b in tile.stop], background)
                          for tile in tiles])
        outputs = predict(batch)
        del batch
        for tile, output in zip(tiles, outputs):
            local = box_slices([w - a for w, a in zip(tile.write_start, tile.start)],
                                [w - a for w, a in zip(tile.write_stop, tile.start)])
            logits[box_slices(tile.write_start, tile.write_stop)] = output[local]
        done += len(tiles)
        if progress is not None:
            progress(done, len(plan))
    if brain is None:
        scored[...] = True
    else:
        scored = brain
    return Segmentation(logits, scored, "fcn", input_shape, len(plan), time.time() - started)


def predict_patch(predictor, image, background, margin=MARGIN, patch=PATCH_SIZE,
                  batch_size=PATCH_BATCH_SIZE, windows=None, crop_to_brain=True, progress=None):
    # type: (object, np.ndarray, Sequence[float], int, int, int, Optional[Sequence[Sequence[int]]], bool, Optional[Callable[[int, int], None]]) -> Segmentation
    """Segment a volume the reference way: every 38^3 window, logits into its 12^3 centre.

    A volume shorter than the window along an axis is first padded symmetrically with the
    background values (:func:`pad_to_patch`) and cropped back afterwards.

    Args:
        predictor: a Keras model taking ``(N, patch, patch, patch, 4)`` (e.g.
            ``build_model(name, 38)``), or a callable from such a batch to label logits.
        image: float32 ``(X, Y, Z, 4)`` normalised image.
        background: ``(4,)`` value of a raw 0 per channel.
        margin: the model's receptive-field radius (13).
        patch: window edge (38).
        batch_size: windows per model call.
        windows: window starts to run, in the coordinates of the (padded) volume; ``None``
            runs all of :func:`window_plan` (a subset is for timing).
        crop_to_brain: score only the brain (:func:`~densenet3d_keras.core.brain.brain_mask`);
            ``False`` scores every voxel a window's block covers.
        progress: called as ``progress(windows done, windows total)`` after each model call.

    Returns:
        :class:`Segmentation`; ``scored`` marks the voxels of the brain that some window's
        block covered.

    Raises:
        ValueError: a bad image, background or batch size.
    """
    started = time.time()
    predict = as_predictor(predictor)
    image, background = _check_image(image, background)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %r" % (batch_size,))
    original = image.shape[:3]
    padded, offset = pad_to_patch(image, background, patch)
    shape = padded.shape[:3]
    starts = window_plan(shape, patch, output_size(patch, margin)) if windows is None else \
        [tuple(int(s) for s in w) for w in windows]
    total = np.zeros(shape + (NUM_CLASSES,), dtype=np.float32)
    count = np.zeros(shape, dtype=np.uint8)
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        batch = np.stack([padded[tuple(slice(s, s + patch) for s in start)] for start in group])
        outputs = predict(batch)
        for start, output in zip(group, outputs):
            block = window_block(start, patch, margin)
            total[block] += output
            count[block] += 1
        if progress is not None:
            progress(first + len(group), len(starts))
    scored = count > 0
    total /= np.maximum(count, 1)[..., None].astype(np.float32)
    logits = np.ascontiguousarray(crop_back(total, offset, original))
    scored = np.ascontiguousarray(crop_back(scored, offset, original))
    if crop_to_brain:
        scored &= brain_mask(image, background)
    return Segmentation(logits, scored, "patch", (patch,) * 3, len(starts), time.time() - started)
