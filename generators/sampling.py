"""Patch sampling as pure functions: centres, patch starts, label crops, targets.

Reference sampling, per patient and epoch: ``n_pos`` centres drawn without replacement from
voxels with label > 0 and ``n_neg`` from voxels with label 0 inside the brain (flair > 0),
shuffled together. A patch starts at ``clamp(centre - 19, 0, dim - 38)``; its label is the
12^3 block 13 voxels in.

Balanced sampling (``--sampling balanced``) splits the ``n_pos`` tumour centres equally between
the tumour labels the case has (necrotic core, edema, enhancing), so that the small classes
are seen as often as edema, and draws the ``n_neg`` background centres from the brain as
inference defines it (:func:`densenet3d_keras.core.brain.brain_mask`: any modality nonzero).
"""
import numpy as np

from densenet3d_keras.core.geometry import MARGIN, OUTPUT_SIZE, PATCH_SIZE, patch_starts
from densenet3d_keras.core.labels import LABEL_CLASSES

SAMPLING_MODES = ("reference", "balanced")


def draw(candidates, count, rng):
    """Draw ``count`` entries of ``candidates``: without replacement when there are enough,
    with replacement otherwise (tiny tumours); empty when there are no candidates."""
    candidates = np.asarray(candidates)
    if count <= 0 or candidates.size == 0:
        return candidates[:0]
    replace = candidates.size < count
    return candidates[rng.choice(candidates.size, count, replace=replace)]


def sample_centres(positives, negatives, n_pos, n_neg, rng):
    """Shuffled flat voxel indices of one patient's epoch of patch centres.

    Args:
        positives: flat indices of voxels with label > 0.
        negatives: flat indices of voxels with label 0 and flair > 0.
        n_pos: positive centres wanted (reference 200).
        n_neg: negative centres wanted (reference 200).
        rng: ``numpy.random.Generator``.

    Returns:
        int64 array of ``n_pos + n_neg`` flat indices. When one pool is empty (a case without
        tumour) its share is drawn from the other, so every patient gives the same count.

    Raises:
        ValueError: both pools are empty.
    """
    positives = np.asarray(positives)
    negatives = np.asarray(negatives)
    if positives.size == 0 and negatives.size == 0:
        raise ValueError("no voxel to sample: the brain mask is empty")
    if positives.size == 0:
        n_neg, n_pos = n_neg + n_pos, 0
    elif negatives.size == 0:
        n_pos, n_neg = n_pos + n_neg, 0
    centres = np.concatenate([draw(positives, n_pos, rng), draw(negatives, n_neg, rng)]).astype(np.int64)
    return centres[rng.permutation(centres.size)]


def class_pools(label):
    """Flat indices of the voxels of each tumour label a case has (internal labels 1, 2, 4).

    Args:
        label: ``(D, H, W)`` internal label map.

    Returns:
        list of int64 arrays, one per tumour label present, in label order.
    """
    flat = np.asarray(label).reshape(-1)
    pools = [np.flatnonzero(flat == value) for value in LABEL_CLASSES if value > 0]
    return [pool for pool in pools if pool.size]


def sample_balanced_centres(pools, negatives, n_pos, n_neg, rng):
    """Shuffled flat indices of one patient's epoch of centres, tumour labels in equal shares.

    Args:
        pools: :func:`class_pools` of the case.
        negatives: flat indices of background voxels (label 0) in the brain.
        n_pos: tumour centres wanted, split as equally as possible between the pools (the
            first ``n_pos % len(pools)`` pools give one more).
        n_neg: background centres wanted.
        rng: ``numpy.random.Generator``.

    Returns:
        int64 array of ``n_pos + n_neg`` flat indices (a case without tumour gives its tumour
        share from the background, as :func:`sample_centres` does).

    Raises:
        ValueError: no tumour and no background voxel.
    """
    pools = [np.asarray(pool) for pool in pools if np.asarray(pool).size]
    if not pools:
        return sample_centres([], negatives, n_pos, n_neg, rng)
    if np.asarray(negatives).size == 0:
        n_pos, n_neg = n_pos + n_neg, 0
    shares = [n_pos // len(pools) + (1 if index < n_pos % len(pools) else 0)
              for index in range(len(pools))]
    parts = [draw(pool, share, rng) for pool, share in zip(pools, shares)]
    parts.append(draw(negatives, n_neg, rng))
    centres = np.concatenate(parts).astype(np.int64)
    return centres[rng.permutation(centres.size)]


def batch_offsets(count, batch_size):
    """Start of each batch over ``count`` samples; the last batch is moved back to stay full
    (the reference's ``min(nb * bs, count - bs)``), so every batch has ``batch_size`` samples.

    Raises:
        ValueError: ``count`` < ``batch_size``.
    """
    if count < batch_size:
        raise ValueError("%d samples cannot fill a batch of %d" % (count, batch_size))
    n_batches = -(-count // batch_size)
    return [min(b * batch_size, count - batch_size) for b in range(n_batches)]


def extract_patch(image, label, centre, patch=PATCH_SIZE, output=OUTPUT_SIZE):
    """Cut one training sample around ``centre``.

    Args:
        image: ``(D, H, W, C)`` array (every axis >= ``patch``).
        label: ``(D, H, W)`` array, or ``None``.
        centre: ``(z, y, x)`` voxel index.
        patch: input patch size.
        output: label block size; it sits ``(patch - output) // 2`` voxels inside the patch.

    Returns:
        ``(patch^3 x C image, output^3 label or None)``.
    """
    starts = patch_starts(centre, image.shape[:3], patch)
    window = tuple(slice(s, s + patch) for s in starts)
    x = image[window]
    if label is None:
        return x, None
    offset = (patch - output) // 2
    y = label[tuple(slice(s + offset, s + offset + output) for s in starts)]
    return x, y


def one_hot(labels, num_classes):
    """``(...)`` integer labels -> ``(..., num_classes)`` float32 one-hot."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError("labels must lie in [0, %d), found %d..%d"
                         % (num_classes, labels.min(), labels.max()))
    return np.eye(num_classes, dtype=np.float32)[labels]


def targets(label_patches, num_label_classes=5):
    """``[whole-tumour one-hot (2), label one-hot (5)]`` for ``(batch, d, h, w)`` labels."""
    label_patches = np.asarray(label_patches)
    return [one_hot((label_patches > 0).astype(np.int64), 2),
            one_hot(label_patches.astype(np.int64), num_label_classes)]


assert MARGIN == (PATCH_SIZE - OUTPUT_SIZE) // 2
