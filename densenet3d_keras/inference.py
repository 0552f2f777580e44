"""Whole-volume segmentation with a trained model: sliding 38^3 windows or large tiles.

Two methods give the same label at every voxel at least a margin (13 voxels) from the edge:

* :func:`predict_patch`, the reference scheme (SPEC.md): 38^3 windows every 12 voxels, the
  last one clamped to the volume edge; each window's 5-class logits fill the 12^3 block at its
  centre, overlapping blocks add up, the label is the argmax. Unlike the reference, every
  window is run (the reference skipped windows lying wholly inside the brain). Voxels within
  the margin of the edge get no score (label 0).
* :func:`predict_fcn`, the same network run fully convolutionally over large tiles. The
  network's kept outputs are its input minus the margin on each side, and a kept voxel sees
  only input within the margin, so a tile of ``T`` voxels per axis gives the logits of ``T - 26``
  voxels exactly as 38^3 windows centred on them would (in inference mode); neighbouring tiles'
  inputs overlap by 2 x 13 voxels. Only the bounding box of the brain (voxels where any
  modality is nonzero) is predicted; each tile's input reaches up to 13 voxels beyond it, and
  where that leaves the volume it is filled with each channel's background value (the
  normalised value of a raw 0), so every voxel of the box gets a score. Outside the box the
  label is 0.

Arrays follow the NIfTI voxel order of :class:`generators.volumes.CaseVolumes`: images are
``(X, Y, Z, 4)`` (channels flair, t2, t1, t1ce), label maps ``(X, Y, Z)``, logits
``(X, Y, Z, 5)`` over internal labels 0..4 (enhancing tumour = 4; class 3 is unused). The
model sees the three voxel axes as its ``(depth, height, width)``.

The geometry (tile plans, window plans, padding and cropping) is in small pure functions;
the two ``predict_*`` functions only feed a model. :func:`write_nifti_like` writes results on
the input's voxel grid.
"""
import itertools
import time
from collections import namedtuple
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from densenet3d_keras.fileio import write_nifti_gz
from densenet3d_keras.geometry import MARGIN, OUTPUT_SIZE, PATCH_SIZE, output_size, window_starts

#: Default largest tile edge (input voxels) of :func:`predict_fcn`: at most 62^3 outputs per
#: tile. With dense24 and valid padding one 88^3 tile peaks at about 2.7 GB of process memory,
#: so any case stays under 4 GB; a 240 x 240 x 155 synthetic case takes 18 tiles of 87x84x83
#: (``benchmarks/inference.py``). Larger tiles waste less on overlaps (96: 12 % fewer FLOPs on
#: a 140x170x140 brain) but a 96^3 tile alone takes 3.3 GB.
DEFAULT_TILE_SIZE = 88
#: Windows per model call of :func:`predict_patch` (same padding needs ~0.3 GB per window).
PATCH_BATCH_SIZE = 4
#: Spacing of the reference's sliding windows: the output block size.
PATCH_STEP = OUTPUT_SIZE
NUM_CLASSES = 5
#: Internal labels a segmentation may contain; class 3 is not a BraTS label.
LABEL_CLASSES = (0, 1, 2, 4)
METHODS = ("fcn", "patch")

#: One tile of :func:`tile_plan`, in voxel coordinates of the volume (``(3,)`` tuples).
#: ``start``/``stop``: the tile's output block; its input is that block grown by the margin.
#: ``write_start``/``write_stop``: the part of the output block this tile writes; the written
#: parts of a plan partition the predicted region.
Tile = namedtuple("Tile", ["start", "stop", "write_start", "write_stop"])

#: One axis of a tile plan, in coordinates relative to the region's start.
AxisTile = namedtuple("AxisTile", ["start", "stop", "write_start", "write_stop"])


class Segmentation(object):
    """The result of :func:`predict_fcn` or :func:`predict_patch` for one volume.

    Attributes:
        logits: float32 ``(X, Y, Z, 5)`` label logits; 0 where no score was computed. For
            the patch method, voxels covered by several windows hold the mean of their
            blocks (the same argmax as the reference's sum).
        scored: bool ``(X, Y, Z)``, voxels that received a score.
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


# ----------------------------------------------------------------------------- geometry

def _as_shape(shape, name="shape"):
    values = tuple(int(s) for s in shape)
    if len(values) != 3 or min(values) < 1:
        raise ValueError("%s must be 3 positive integers, got %r" % (name, tuple(shape)))
    return values


def bounding_box(mask):
    # type: (np.ndarray) -> Optional[Tuple[Tuple[int, int, int], Tuple[int, int, int]]]
    """Smallest box holding every ``True`` voxel of a 3-D mask.

    Args:
        mask: boolean ``(X, Y, Z)`` array.

    Returns:
        ``(start, stop)``, two ``(3,)`` tuples with ``stop`` exclusive, or ``None`` for an
        empty mask.

    Raises:
        ValueError: the mask is not 3-D.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError("mask must be 3-D, got shape %s" % (mask.shape,))
    start, stop = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        start.append(int(hits[0]))
        stop.append(int(hits[-1]) + 1)
    return tuple(start), tuple(stop)


def foreground_mask(image, background):
    # type: (np.ndarray, Sequence[float]) -> np.ndarray
    """Voxels where any channel differs from its background value (a raw nonzero voxel).

    Args:
        image: ``(X, Y, Z, C)`` normalised image.
        background: ``(C,)`` value of a raw 0 in each channel.

    Returns:
        bool ``(X, Y, Z)``.
    """
    background = np.asarray(background, dtype=image.dtype).reshape((1, 1, 1, -1))
    mask = np.zeros(image.shape[:3], dtype=bool)
    for channel in range(image.shape[3]):
        mask |= image[..., channel] != background[..., channel]
    return mask


def axis_tiles(length, max_output):
    # type: (int, int) -> List[AxisTile]
    """Split ``[0, length)`` into equal output blocks of at most ``max_output`` voxels.

    The number of blocks is the fewest that fit, ``n = ceil(length / max_output)``; each
    block is ``ceil(length / n)`` voxels (so tiles are as small as the count allows and all of
    one size, which lets them share one traced model and be batched). Blocks start every
    block size; the last one is clamped to end at ``length`` and only writes the voxels its
    predecessor did not.

    Args:
        length: voxels to cover, >= 1.
        max_output: largest block, >= 1.

    Returns:
        list of :class:`AxisTile`; the ``[write_start, write_stop)`` intervals partition
        ``[0, length)``.

    Raises:
        ValueError: ``length`` or ``max_output`` below 1.
    """
    if length < 1 or max_output < 1:
        raise ValueError("need length >= 1 and max_output >= 1, got %r and %r"
                         % (length, max_output))
    count = -(-int(length) // int(max_output))
    size = -(-int(length) // count)
    tiles = []
    written = 0
    for start in window_starts(int(length), size, size):
        tiles.append(AxisTile(start, start + size, written, start + size))
        written = start + size
    return tiles


def tile_plan(region_start, region_stop, tile_size=DEFAULT_TILE_SIZE, margin=MARGIN):
    # type: (Sequence[int], Sequence[int], int, int) -> List[Tile]
    """Tiles whose outputs cover the box ``[region_start, region_stop)``.

    Along each axis the box is split by :func:`axis_tiles` into output blocks of at most
    ``tile_size - 2 * margin`` voxels; every tile of the plan has the same shape. A tile's
    input is its output block grown by ``margin`` on each side (it may reach outside the
    volume; see :func:`extract_block`).

    Args:
        region_start: ``(3,)`` first voxel of the box.
        region_stop: ``(3,)`` one past the last voxel.
        tile_size: largest tile input edge, > 2 x margin.
        margin: the network's receptive-field radius (13).

    Returns:
        list of :class:`Tile` in C order (last axis fastest).

    Raises:
        ValueError: an empty box or a tile size that keeps no output voxel.
    """
    region_start = tuple(int(s) for s in region_start)
    region_stop = tuple(int(s) for s in region_stop)
    lengths = [b - a for a, b in zip(region_start, region_stop)]
    if len(lengths) != 3 or min(lengths) < 1:
        raise ValueError("empty region %s..%s" % (region_start, region_stop))
    max_output = output_size(tile_size, margin)
    per_axis = [axis_tiles(length, max_output) for length in lengths]
    plan = []
    for combination in itertools.product(*per_axis):
        plan.append(Tile(
            tuple(o + t.start for o, t in zip(region_start, combination)),
            tuple(o + t.stop for o, t in zip(region_start, combination)),
            tuple(o + t.write_start for o, t in zip(region_start, combination)),
            tuple(o + t.write_stop for o, t in zip(region_start, combination))))
    return plan


def tile_input_shape(tile, margin=MARGIN):
    # type: (Tile, int) -> Tuple[int, int, int]
    """Spatial input shape of a tile: its output block plus ``margin`` on each side."""
    return tuple(b - a + 2 * margin for a, b in zip(tile.start, tile.stop))


def tiles_per_batch(input_shape, tile_size=DEFAULT_TILE_SIZE):
    # type: (Sequence[int], int) -> int
    """How many tiles of ``input_shape`` fit the voxel budget of one ``tile_size``^3 tile.

    Memory grows with the voxels of a model call, so small tiles are batched up to the
    budget and large ones run one at a time.
    """
    voxels = int(np.prod([int(s) for s in input_shape]))
    return max(1, int(tile_size) ** 3 // voxels)


def window_plan(shape, patch=PATCH_SIZE, step=PATCH_STEP):
    # type: (Sequence[int], int, int) -> List[Tuple[int, int, int]]
    """Starts of the reference's sliding windows over a volume.

    Windows of ``patch`` voxels every ``step`` voxels along each axis, the last clamped to
    end at the edge (:func:`densenet3d_keras.geometry.window_starts`), all combinations.

    Args:
        shape: ``(3,)`` volume shape, every axis >= ``patch``.
        patch: window edge (38).
        step: spacing (12, the output block size, so blocks tile the interior).

    Returns:
        list of ``(3,)`` window starts in C order.

    Raises:
        ValueError: an axis shorter than the window.
    """
    shape = _as_shape(shape)
    return list(itertools.product(*[window_starts(d, patch, step) for d in shape]))


def window_block(start, patch=PATCH_SIZE, margin=MARGIN):
    # type: (Sequence[int], int, int) -> Tuple[slice, slice, slice]
    """Slices of the output block at the centre of the window starting at ``start``."""
    size = output_size(patch, margin)
    return tuple(slice(s + margin, s + margin + size) for s in start)


def extract_block(image, start, stop, fill):
    # type: (np.ndarray, Sequence[int], Sequence[int], Sequence[float]) -> np.ndarray
    """Copy the box ``[start, stop)`` of an image, filling what lies outside it with ``fill``.

    The box may extend beyond the volume on any side (negative starts, stops past the end):
    this is the volume padded by each channel's background value, without padding it all.

    Args:
        image: ``(X, Y, Z, C)`` array.
        start: ``(3,)`` first voxel (may be negative).
        stop: ``(3,)`` one past the last voxel (may exceed the shape).
        fill: ``(C,)`` value per channel outside the volume.

    Returns:
        ``(stop - start) + (C,)`` array of the image's dtype.

    Raises:
        ValueError: an empty box.
    """
    start = tuple(int(s) for s in start)
    stop = tuple(int(s) for s in stop)
    size = tuple(b - a for a, b in zip(start, stop))
    if len(size) != 3 or min(size) < 1:
        raise ValueError("empty box %s..%s" % (start, stop))
    fill = np.asarray(fill, dtype=image.dtype)
    inner_lo = [max(0, a) for a in start]
    inner_hi = [min(d, b) for d, b in zip(image.shape[:3], stop)]
    source = tuple(slice(lo, hi) for lo, hi in zip(inner_lo, inner_hi))
    target = tuple(slice(lo - a, hi - a) for lo, hi, a in zip(inner_lo, inner_hi, start))
    inside = all(lo == a and hi == b for lo, hi, a, b in zip(inner_lo, inner_hi, start, stop))
    if inside:
        return np.array(image[source], copy=True)
    block = np.empty(size + image.shape[3:], dtype=image.dtype)
    block[...] = fill
    if all(hi > lo for lo, hi in zip(inner_lo, inner_hi)):
        block[target] = image[source]
    return block


def pad_to_patch(image, background, patch=PATCH_SIZE):
    # type: (np.ndarray, Sequence[float], int) -> Tuple[np.ndarray, Tuple[int, int, int]]
    """Pad every axis shorter than ``patch`` symmetrically with the background values.

    Args:
        image: ``(X, Y, Z, C)`` array.
        background: ``(C,)`` fill per channel.
        patch: smallest axis size wanted.

    Returns:
        (padded image, ``(3,)`` index of the original voxel (0, 0, 0) in it). The image is
        returned as is when no axis is short.
    """
    shape = image.shape[:3]
    before = tuple(max(0, (patch - d + 1) // 2) for d in shape)
    after = tuple(max(0, patch - d - b) for d, b in zip(shape, before))
    if not any(before) and not any(after):
        return image, (0, 0, 0)
    start = tuple(-b for b in before)
    stop = tuple(d + a for d, a in zip(shape, after))
    return extract_block(image, start, stop, background), before


def crop_back(array, offset, shape):
    # type: (np.ndarray, Sequence[int], Sequence[int]) -> np.ndarray
    """Undo :func:`pad_to_patch`: the ``shape`` block at ``offset`` (leading three axes)."""
    return array[tuple(slice(o, o + s) for o, s in zip(offset, shape))]


def _box_slices(start, stop):
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))


# ----------------------------------------------------------------------------- logits

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
    """Softmax over the class axis, computed in float32 slab by slab.

    Args:
        logits: ``(X, Y, Z, 5)`` array.
        scored: optional bool ``(X, Y, Z)``; unscored voxels get probability 1 for class 0.

    Returns:
        float32 ``(X, Y, Z, 5)``.
    """
    out = np.empty(logits.shape, dtype=np.float32)
    for x in range(logits.shape[0]):
        slab = logits[x].astype(np.float32)
        slab = slab - slab.max(axis=-1, keepdims=True)
        np.exp(slab, out=slab)
        slab /= slab.sum(axis=-1, keepdims=True)
        out[x] = slab
    if scored is not None:
        out[~scored] = 0.0
        out[..., 0][~scored] = 1.0
    return out


# ----------------------------------------------------------------------------- prediction

def _label_output_index(model):
    names = list(getattr(model, "output_names", None) or [])
    if "labels" in names:
        return names.index("labels")
    return len(model.outputs) - 1


def _run(model, batch):
    """Label logits of a batch ``(N, D, H, W, 4)`` -> ``(N, D', H', W', 5)`` float32."""
    outputs = model.predict_on_batch(batch)
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[_label_output_index(model)]
    return np.asarray(outputs, dtype=np.float32)


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


def predict_fcn(model, image, background, margin=MARGIN, tile_size=DEFAULT_TILE_SIZE,
                batch_size=None, crop_to_brain=True, progress=None):
    # type: (object, np.ndarray, Sequence[float], int, int, Optional[int], bool, Optional[Callable[[int, int], None]]) -> Segmentation
    """Segment a volume with the fully convolutional model over tiles.

    Args:
        model: a model from ``build_model(name, input_size=None, padding=...)`` (either
            padding) taking ``(N, D, H, W, 4)`` and giving outputs ``D - 2 margin`` per axis.
        image: float32 ``(X, Y, Z, 4)`` normalised image (channels flair, t2, t1, t1ce).
        background: ``(4,)`` value of a raw 0 per channel
            (:attr:`generators.volumes.CaseVolumes.background`).
        margin: the model's receptive-field radius (13).
        tile_size: largest tile input edge (> 2 margin); bounds the memory of a model call.
        batch_size: tiles per model call; ``None`` batches as many as fit the voxel budget of
            one ``tile_size``^3 tile (:func:`tiles_per_batch`).
        crop_to_brain: predict only the bounding box of the foreground
            (:func:`foreground_mask`); ``False`` predicts every voxel of the volume.
        progress: called as ``progress(tiles done, tiles total)`` after each model call.

    Returns:
        :class:`Segmentation`; ``scored`` is the predicted box.

    Raises:
        ValueError: a bad image, background, tile size or batch size.
    """
    started = time.time()
    image, background = _check_image(image, background)
    shape = image.shape[:3]
    logits = np.zeros(shape + (NUM_CLASSES,), dtype=np.float32)
    scored = np.zeros(shape, dtype=bool)
    box = bounding_box(foreground_mask(image, background)) if crop_to_brain else ((0, 0, 0), shape)
    if box is None:  # no foreground at all: nothing to segment
        return Segmentation(logits, scored, "fcn", (0, 0, 0), 0, time.time() - started)
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
        outputs = _run(model, batch)
        del batch
        for tile, output in zip(tiles, outputs):
            local = _box_slices([w - a for w, a in zip(tile.write_start, tile.start)],
                                [w - a for w, a in zip(tile.write_stop, tile.start)])
            logits[_box_slices(tile.write_start, tile.write_stop)] = output[local]
        done += len(tiles)
        if progress is not None:
            progress(done, len(plan))
    scored[_box_slices(box[0], box[1])] = True
    return Segmentation(logits, scored, "fcn", input_shape, len(plan), time.time() - started)


def predict_patch(model, image, background, margin=MARGIN, patch=PATCH_SIZE,
                  batch_size=PATCH_BATCH_SIZE, windows=None, progress=None):
    # type: (object, np.ndarray, Sequence[float], int, int, int, Optional[Sequence[Sequence[int]]], Optional[Callable[[int, int], None]]) -> Segmentation
    """Segment a volume the reference way: every 38^3 window, logits into its 12^3 centre.

    A volume shorter than the window along an axis is first padded symmetrically with the
    background values (:func:`pad_to_patch`) and cropped back afterwards.

    Args:
        model: a model taking ``(N, patch, patch, patch, 4)`` (e.g. ``build_model(name, 38)``).
        image: float32 ``(X, Y, Z, 4)`` normalised image.
        background: ``(4,)`` value of a raw 0 per channel.
        margin: the model's receptive-field radius (13).
        patch: window edge (38).
        batch_size: windows per model call.
        windows: window starts to run, in the coordinates of the (padded) volume; ``None``
            runs all of :func:`window_plan` (a subset is for timing).
        progress: called as ``progress(windows done, windows total)`` after each model call.

    Returns:
        :class:`Segmentation`; ``scored`` marks the voxels some window's block covered.

    Raises:
        ValueError: a bad image, background or batch size.
    """
    started = time.time()
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
        outputs = _run(model, batch)
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
    return Segmentation(logits, scored, "patch", (patch,) * 3, len(starts), time.time() - started)


# ----------------------------------------------------------------------------- models

def load_model(checkpoint, model_name, method="fcn", padding=None):
    """Build the model for a method and load a checkpoint's weights into it.

    Args:
        checkpoint: checkpoint file, or a folder (its newest checkpoint,
            :func:`callbacks.checkpoint.find_checkpoint`).
        model_name: a name of :data:`densenet3d_keras.models.MODEL_NAMES`.
        method: ``"fcn"`` (input size ``None``) or ``"patch"`` (38^3 inputs).
        padding: ``"same"`` or ``"valid"``; ``None`` takes ``valid`` for fcn (less compute,
            same logits) and ``same`` (the reference) for patch. Checkpoints load into either.

    Returns:
        (model, checkpoint path, checkpoint info ``{"epoch", "model", "padding"}``).

    Raises:
        FileNotFoundError: no checkpoint at ``checkpoint``.
        ValueError: unknown model name or method, a checkpoint recording another
            architecture (the message names it), or weights that do not fit the model.
    """
    from callbacks.checkpoint import find_checkpoint, read_checkpoint_info, weight_mismatch
    from densenet3d_keras.models import build_model, resolve_model_name

    if method not in METHODS:
        raise ValueError("unknown method %r (choose from %s)" % (method, ", ".join(METHODS)))
    architecture, _ = resolve_model_name(model_name)
    path = find_checkpoint(checkpoint)
    info = read_checkpoint_info(path)
    if info["model"] is not None:
        try:
            recorded, _ = resolve_model_name(info["model"])
        except ValueError:
            recorded = info["model"]
        if recorded != architecture:
            raise ValueError("checkpoint %s holds a %s model, not %s (-mn %s)"
                             % (path, info["model"], architecture, model_name))
    if padding is None:
        padding = "valid" if method == "fcn" else "same"
    model = build_model(model_name, None if method == "fcn" else PATCH_SIZE, padding=padding)
    mismatch = weight_mismatch(model, path)
    if mismatch:
        raise ValueError("the weights in %s do not fit a %s model: %s" % (path, model_name, mismatch))
    try:
        model.load_weights(path)
    except Exception as error:  # h5py and Keras raise several types for unfit weights
        detail = str(error).strip().splitlines()
        raise ValueError("the weights in %s do not fit a %s model: %s"
                         % (path, model_name, detail[0] if detail else type(error).__name__))
    return model, path, info


# ----------------------------------------------------------------------------- output files

def write_nifti_like(path, data, header, description=None):
    """Write an array as ``.nii.gz`` on a reference image's grid, atomically.

    The reference header (qform, sform and their codes, voxel size, units, orientation) is
    copied, only the data type, shape and intensity fields are changed, so the result
    overlays on the reference in any viewer. The data go to a hidden temporary file in the
    destination folder that is renamed into place (:func:`densenet3d_keras.fileio.write_nifti_gz`),
    so a failure never leaves a partial file.

    Args:
        path: destination ending in ``.nii.gz``.
        data: ``(X, Y, Z)`` or ``(X, Y, Z, K)`` array; its dtype is the stored dtype.
        header: the reference ``nibabel.Nifti1Header`` (e.g. ``CaseVolumes.header``).
        description: text for the header's ``descrip`` field (at most 79 characters).

    Raises:
        ValueError: the data's spatial shape differs from the reference's.
        OSError: the file cannot be written.
    """
    import nibabel as nib

    data = np.asarray(data)
    reference_shape = tuple(int(s) for s in header.get_data_shape()[:3])
    if data.shape[:3] != reference_shape:
        raise ValueError("cannot write %s: data shape %s differs from the reference grid %s"
                         % (path, data.shape[:3], reference_shape))
    out_header = header.copy()
    out_header.set_data_dtype(data.dtype)
    out_header.set_data_shape(data.shape)
    out_header["cal_min"] = float(data.min()) if data.size else 0.0
    out_header["cal_max"] = float(data.max()) if data.size else 0.0
    if description is not None:
        out_header["descrip"] = description[:79].encode("ascii", "replace")
    # The affine is the header's own, so nibabel keeps qform, sform and their codes as they are.
    write_nifti_gz(path, nib.Nifti1Image(data, header.get_best_affine(), header=out_header))
