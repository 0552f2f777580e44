"""Reading NIfTI volumes of a case, checking them, and normalising intensities.

Normalisation follows docs/spec.md: per case and modality, the mean and standard deviation over
the nonzero voxels, then ``(x - mean) / std`` over the whole volume, so the background becomes
the constant ``-mean / std``.
"""
import os
import sys
from typing import Optional

import numpy as np

from densenet3d_keras.core.labels import (MODALITIES, NO_CAVITY_CLASS, detect_convention,
                                          to_internal_labels)
from generators.brats import Case

AFFINE_TOLERANCE = 1e-3


class CaseVolumes(object):
    """The arrays of one case.

    Attributes:
        case_id: the case folder name.
        image: float32 array ``(depth, height, width, 4)``, channels flair, t2, t1, t1ce,
            normalised.
        label: uint8 array ``(depth, height, width)`` of internal labels, or ``None``.
        background: float32 ``(4,)``, each channel's value where the raw volume was 0.
        affine: 4x4 voxel-to-world matrix of the flair file.
        header: the flair file's NIfTI header (for writing outputs on the same grid).
        brain: bool array ``(depth, height, width)``, raw flair > 0 (negative sampling region).
    """

    def __init__(self, case_id, image, label, background, affine, header, brain=None):
        self.case_id = case_id
        self.image = image
        self.label = label
        self.background = background
        self.affine = affine
        self.header = header
        self.brain = brain

    @property
    def shape(self):
        return self.image.shape[:3]

    @property
    def spacing(self):
        return tuple(float(z) for z in self.header.get_zooms()[:3])


def load_nifti(path, dtype=None):
    """Read a 3-D NIfTI volume.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        dtype: convert the data to this dtype (default: the stored one, scaled by nibabel).

    Returns:
        (data, image): the ``(X, Y, Z)`` array and the nibabel image (affine, header).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be decoded, is not a 3-D volume (a 4-D time series; a 4-D
            file with a trailing singleton dimension is squeezed), or holds finite values
            outside the range of ``dtype``.
    """
    import nibabel as nib

    if not os.path.isfile(path):
        raise FileNotFoundError("NIfTI file not found: %s" % path)
    try:
        image = nib.load(path)
        data = np.asanyarray(image.dataobj)
    except Exception as error:  # nibabel raises many types for damaged files
        raise ValueError("cannot read NIfTI file %s: %s" % (path, str(error).splitlines()[0] if str(error) else type(error).__name__))
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError("%s has shape %s; expected a 3-D volume%s"
                         % (path, data.shape, " (this is a 4-D time series)" if data.ndim == 4 else ""))
    if dtype is not None:
        with np.errstate(over="ignore"):  # overflow is reported below, naming the file
            converted = data.astype(dtype)
        if np.issubdtype(converted.dtype, np.floating) and not np.all(np.isfinite(converted)):
            # Finite in the file but beyond the range of the type read into (e.g. float64
            # values above 3.4e38 read as float32): not the file's NaN or infinity.
            overflow = np.isfinite(data) & ~np.isfinite(converted)
            if overflow.any():
                raise ValueError("%s has values outside the %s range (largest magnitude %.4g, "
                                 "%s holds at most %.4g)"
                                 % (path, converted.dtype, float(np.max(np.abs(data[overflow]))),
                                    converted.dtype, float(np.finfo(converted.dtype).max)))
        data = converted
    return data, image


def normalise(volume, name="volume"):
    """Z-score a volume with the statistics of its nonzero voxels (docs/spec.md).

    Args:
        volume: 3-D array.
        name: used in the error message.

    Returns:
        (normalised float32 volume, background value ``-mean / std``).

    Raises:
        ValueError: the volume has no nonzero voxel.
    """
    volume = np.asarray(volume, dtype=np.float32)
    mask = volume != 0
    if not mask.any():
        raise ValueError("%s is empty (no nonzero voxel)" % name)
    values = volume[mask].astype(np.float64)
    mean = values.mean()
    std = values.std()
    if not np.isfinite(std) or std == 0:
        std = 1.0
    out = ((volume - mean) / std).astype(np.float32)
    return out, np.float32(-mean / std)


def load_case_volumes(case, with_label=True, cavity_ok=False):
    # type: (Case, bool, bool) -> CaseVolumes
    """Load, check and normalise one case.

    Args:
        case: the :class:`~generators.brats.Case`.
        with_label: also load the label map (must exist then).
        cavity_ok: accept BraTS 2024 post-treatment labels (resection cavity = internal 3),
            for checking a ground truth that will only be scored; training refuses them.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a corrupt file, a 4-D volume, modalities on different grids, an empty
            brain (flair all zero), labels of no convention, or (without ``cavity_ok``) a
            resection cavity.
    """
    channels = []
    backgrounds = []
    reference = None
    brain = None
    for modality in MODALITIES:
        path = case.images[modality]
        data, image = load_nifti(path, np.float32)
        if modality == "flair":
            brain = data > 0
        if not np.all(np.isfinite(data)):
            raise ValueError("%s contains NaN or infinite values" % path)
        if reference is None:
            reference = (path, data.shape, image.affine, image.header)
        else:
            _check_same_grid(reference, path, data.shape, image.affine)
        normalised, background = normalise(data, "%s volume of case %s (%s)" % (modality, case.case_id, path))
        channels.append(normalised)
        backgrounds.append(background)
    label = None
    if with_label:
        if case.label is None:
            raise FileNotFoundError("case %s has no label map" % case.case_id)
        raw, image = load_nifti(case.label)
        _check_same_grid(reference, case.label, raw.shape, image.affine)
        if not np.all(np.equal(np.mod(raw, 1), 0)):
            raise ValueError("label map %s has non-integer values" % case.label)
        label = _training_labels(case, raw.astype(np.int64), cavity_ok)
    image = np.stack(channels, axis=-1)
    return CaseVolumes(case.case_id, image, label, np.asarray(backgrounds, np.float32),
                       reference[2], reference[3], brain)


def _training_labels(case, raw, cavity_ok=False):
    """Internal labels of a case's label map, in the convention its values fit (a one-line
    note on stderr when it is not the one of its file names).

    Raises:
        ValueError: values of no convention, or (unless ``cavity_ok``) BraTS 2024
            post-treatment labels (label 4 = resection cavity), which this network has no
            class for.
    """
    convention, note = detect_convention(np.unique(raw), case.label_convention)
    if convention == "brats2024" and not cavity_ok:
        raise ValueError("%s: label values %s: %s" % (case.label, np.unique(raw).tolist(),
                                                      NO_CAVITY_CLASS))
    if note is not None:
        sys.stderr.write("note: %s: %s\n" % (case.label, note))
        sys.stderr.flush()
    try:
        return to_internal_labels(raw, convention)
    except ValueError as error:
        raise ValueError("%s: %s" % (case.label, error))


def _check_same_grid(reference, path, shape, affine):
    ref_path, ref_shape, ref_affine, _ = reference
    if tuple(shape) != tuple(ref_shape):
        raise ValueError("%s has shape %s but %s has %s: modalities must share one voxel grid"
                         % (path, tuple(shape), ref_path, tuple(ref_shape)))
    if not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE):
        raise ValueError("%s has a different affine from %s: modalities must share one voxel grid"
                         % (path, ref_path))


def pad_to_minimum(image, label, background, minimum):
    """Pad a case symmetrically so each spatial axis is at least ``minimum`` voxels.

    Args:
        image: ``(D, H, W, C)`` array.
        label: ``(D, H, W)`` array or ``None``.
        background: ``(C,)`` per-channel fill value.
        minimum: the smallest allowed size per axis (the patch size).

    Returns:
        (image, label, offset): padded arrays and the ``(3,)`` index of the original voxel
        (0, 0, 0) inside the padded arrays.
    """
    shape = np.asarray(image.shape[:3])
    before = np.maximum(0, (minimum - shape + 1) // 2)
    after = np.maximum(0, minimum - shape - before)
    if not (before.any() or after.any()):
        return image, label, before
    padded = np.empty(tuple(shape + before + after) + image.shape[3:], dtype=image.dtype)
    padded[...] = np.asarray(background, dtype=image.dtype)
    region = tuple(slice(b, b + s) for b, s in zip(before, shape))
    padded[region] = image
    if label is not None:
        padded_label = np.zeros(tuple(shape + before + after), dtype=label.dtype)
        padded_label[region] = label
        label = padded_label
    return padded, label, before
