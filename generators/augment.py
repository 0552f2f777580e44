"""Training-time augmentation of patch batches: mirroring and intensity jitter.

Both keep what inference sees: a mirrored patch is a patch of the mirrored head (the label
block sits at the patch centre, so it mirrors onto itself), and the intensity jitter scales and
shifts each modality inside the brain only, so the background keeps the exact value
(``-mean / std``) that marks "outside the brain" in every normalised case.

``--augment`` names the kinds, comma-separated: ``flip`` (each spatial axis mirrored with
probability 1/2, per patch), ``intensity`` (per patch and modality, brain voxels
``x * s + b`` with ``s`` uniform in [1 - 0.1, 1 + 0.1] and ``b`` in [-0.1, 0.1], in units of
the modality's standard deviation).
"""
import numpy as np

AUGMENTATIONS = ("flip", "intensity")
INTENSITY_SCALE = 0.1
INTENSITY_SHIFT = 0.1


def parse_augment(text):
    """The tuple of augmentation kinds of an ``--augment`` value (``"none"`` or empty: none).

    Raises:
        ValueError: an unknown kind (the choices are listed).
    """
    if text is None:
        return ()
    parts = text if isinstance(text, (list, tuple)) else str(text).split(",")
    kinds = []
    for part in (str(p).strip() for p in parts):
        if not part or part == "none":
            continue
        if part not in AUGMENTATIONS:
            raise ValueError("unknown augmentation %r (choose from %s, or none)"
                             % (part, ", ".join(AUGMENTATIONS)))
        if part not in kinds:
            kinds.append(part)
    return tuple(kinds)


def augment_batch(x, y, background, kinds, rng):
    """Augment a batch in place.

    Args:
        x: float32 ``(N, D, H, W, C)`` patches (modified).
        y: ``(N, d, h, w)`` label blocks centred in the patches (modified).
        background: ``(C,)`` value of a raw 0 per channel for each patch, shape ``(C,)`` or
            ``(N, C)``.
        kinds: augmentation kinds (:data:`AUGMENTATIONS`).
        rng: ``numpy.random.Generator``.

    Returns:
        ``(x, y)``: the augmented arrays (mirrored views are copied to be contiguous).
    """
    background = np.broadcast_to(np.asarray(background, np.float32), (x.shape[0], x.shape[-1]))
    for index in range(x.shape[0]):
        if "flip" in kinds:
            axes = [axis for axis in range(3) if rng.random() < 0.5]
            if axes:
                x[index] = np.flip(x[index], axis=axes).copy()
                y[index] = np.flip(y[index], axis=axes).copy()
        if "intensity" in kinds:
            scales = rng.uniform(1.0 - INTENSITY_SCALE, 1.0 + INTENSITY_SCALE, x.shape[-1])
            shifts = rng.uniform(-INTENSITY_SHIFT, INTENSITY_SHIFT, x.shape[-1])
            for channel in range(x.shape[-1]):
                view = x[index, ..., channel]
                inside = view != background[index, channel]
                view[inside] = view[inside] * np.float32(scales[channel]) + np.float32(shifts[channel])
    return x, y
