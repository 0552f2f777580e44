"""Synthetic BraTS-like cases: four MRI modalities, a tumour label map and a bias field.

Real BraTS data cannot be downloaded everywhere the project runs, so the demo and the tests
use these phantoms instead. A phantom is a brain-shaped ellipsoid with a smoothly perturbed
surface holding white matter, a grey-matter cortex of varying thickness, two CSF ventricles
and a thin CSF rim; a tumour (necrotic core 1, enhancing rim 4, edema 2, irregular
boundaries) sits somewhere inside. Tissue contrasts per modality follow real MRI closely
enough for a CNN to learn them (see :data:`INTENSITIES`); the image is multiplied by a
smooth bias field (the model N4 inverts) and corrupted by Rician noise.

Arrays are indexed ``(x, y, z)`` like NIfTI data, BraTS-style: x left-right, y
anterior-posterior, z inferior-superior. Sizes are in voxels and scale with the volume
(the reference size is 96 x 96 x 64), so a 240 x 240 x 155 phantom looks like a
higher-resolution version of a 96 x 96 x 64 one.

Files written by :func:`write_case` hold float32 modalities (the exact arrays of
:func:`make_case`, not int16 like most real BraTS files) and a uint8 label map, all with the
same LPS-like affine ``diag(-sx, -sy, sz)`` centred on the volume. They are gzip-compressed
with a zero time stamp, so equal arguments give byte-identical files.
"""
import numbers
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.special import expit

from densenet3d_keras.core.fileio import write_nifti_gz
from generators.brats import LAYOUTS
from densenet3d_keras.core.labels import MODALITIES, from_internal_labels

__all__ = ["INTENSITIES", "GAINS", "TISSUES", "make_case", "write_case", "write_dataset",
           "case_affine", "case_ids", "derive_seed"]

#: Size (voxels) that the geometry constants below refer to; other sizes scale them.
REFERENCE_SHAPE = (96, 96, 64)
#: Smallest allowed size of any axis.
MIN_AXIS = 16

#: Values of the ``"tissue"`` map returned by :func:`make_case` (normal anatomy, no tumour).
TISSUES = OrderedDict([("background", 0), ("csf", 1), ("gm", 2), ("wm", 3)])

#: Relative intensity of each tissue class per modality, in :data:`MODALITIES` order
#: (flair, t2, t1, t1ce). T1: WM > GM > CSF; T1ce: T1 plus a bright enhancing rim;
#: T2: CSF > edema > GM > WM; FLAIR: edema brightest, GM > WM, CSF dark.
INTENSITIES = OrderedDict([
    ("wm", (0.55, 0.35, 0.85, 0.80)),
    ("gm", (0.70, 0.55, 0.60, 0.60)),
    ("csf", (0.15, 1.00, 0.20, 0.20)),
    ("edema", (1.00, 0.80, 0.50, 0.50)),
    ("enhancing", (0.80, 0.60, 0.55, 1.30)),
    ("necrosis", (0.45, 0.90, 0.25, 0.30)),
])

#: Scanner gain per modality: relative intensity 1 becomes this value (BraTS-like magnitudes).
GAINS = OrderedDict([("flair", 400.0), ("t2", 600.0), ("t1", 500.0), ("t1ce", 700.0)])

# Geometry, in voxels of the reference shape unless said otherwise.
BRAIN_SEMI_AXIS = 0.37        # brain semi-axis as a fraction of each axis (spans ~74% of it)
BRAIN_WOBBLE = 0.06           # relative perturbation of the brain surface
CSF_RIM = 1.0                 # thickness of the CSF rim between skull and cortex
CORTEX = 3.0                  # mean grey-matter thickness
CORTEX_WOBBLE = 0.6           # relative variation of the cortex thickness (gyri)
MIN_CORTEX = 2.0              # floor (voxels) of the mean cortex thickness, <= 1/5 brain
VENTRICLE_OFFSET = (0.14, -0.05, 0.08)   # ventricle centres, fractions of the brain semi-axes
VENTRICLE_SEMI_AXES = (0.09, 0.30, 0.13)  # ventricle semi-axes, fractions of the brain's
TUMOUR_CENTRE_RADIUS = 0.45   # tumour centre within this fraction of the brain ellipsoid
CORE_RADIUS = (3.0, 7.0)      # necrotic / non-enhancing core radius range
RIM_THICKNESS = (2.0, 4.0)    # enhancing rim thickness range
EDEMA_THICKNESS = (4.0, 10.0)  # edema thickness range
MIN_RADII = (2.0, 1.5, 2.0)   # lower bounds (voxels) of core radius, rim and edema thickness
TUMOUR_ELONGATION = (0.8, 1.25)  # per-axis stretch of the tumour
TUMOUR_WOBBLE = 0.25          # relative perturbation of the core and rim boundaries
EDEMA_WOBBLE = 0.4            # relative perturbation of the edema boundary
PARTIAL_VOLUME = 0.35         # width (voxels) of the soft transition between tissues
TISSUE_TEXTURE = 0.04         # relative amplitude of the texture of normal tissue
TUMOUR_TEXTURE = 0.10         # relative amplitude of the texture of tumour tissue
BIAS_LOG_AMPLITUDE = (0.22, 0.28)  # the bias field spans exp(-a) .. exp(a), a in this range
MIN_SIGNAL = 1e-3             # floor (times the gain) that keeps every brain voxel > 0

DEFAULT_PREFIXES = OrderedDict([("brats2017", "Brats17_SYN_%03d_1"),
                                ("brats2023", "BraTS-GLI-%05d-000")])


# ----------------------------------------------------------------------------- validation

def _check_shape(shape):
    """Validate a 3-D shape.

    Args:
        shape (Sequence[int]): three axis sizes.

    Returns:
        Tuple[int, int, int]: the shape as plain ints.

    Raises:
        ValueError: not three integers, or an axis smaller than :data:`MIN_AXIS`.
    """
    try:
        values = tuple(shape)
    except TypeError:
        raise ValueError("shape must be a sequence of 3 integers, got %r" % (shape,))
    if len(values) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in values):
        raise ValueError("shape must be 3 integers, got %r" % (shape,))
    if min(values) < MIN_AXIS:
        raise ValueError("shape %r has an axis smaller than %d voxels" % (values, MIN_AXIS))
    return tuple(int(v) for v in values)


def _check_seed(seed):
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError("seed must be a non-negative integer, got %r" % (seed,))
    return int(seed)


def _check_layout(layout):
    if layout not in LAYOUTS:
        raise ValueError("unknown layout %r (choose from %s)" % (layout, ", ".join(LAYOUTS)))
    return LAYOUTS[layout]


def _check_spacing(spacing):
    try:
        values = tuple(float(v) for v in spacing)
    except (TypeError, ValueError):
        raise ValueError("spacing must be 3 positive numbers, got %r" % (spacing,))
    if len(values) != 3 or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError("spacing must be 3 positive numbers, got %r" % (spacing,))
    return values


def _check_case_id(case_id):
    if (not isinstance(case_id, str) or not case_id or case_id in (".", "..")
            or "/" in case_id or os.sep in case_id):
        raise ValueError("case_id must be a non-empty folder name, got %r" % (case_id,))
    return case_id


# ----------------------------------------------------------------------------- fields

def _scale(shape):
    """Linear size of ``shape`` relative to :data:`REFERENCE_SHAPE` (geometric mean)."""
    return float(np.prod(np.asarray(shape, np.float64) / REFERENCE_SHAPE) ** (1.0 / 3.0))


def _smooth_field(rng, shape, n_basis, decay=1.0):
    """A random smooth field spanning exactly [-1, 1].

    The field is a sum of separable cosines ``cos(pi k x / size)`` with ``k < n_basis`` per
    axis and Gaussian coefficients shrinking like ``|k| ** -decay``; evaluating it is three
    small matrix products, much cheaper than smoothing a full-size noise volume.

    Args:
        rng (numpy.random.Generator): source of the coefficients.
        shape (Sequence[int]): grid size.
        n_basis (Sequence[float]): number of cosines per axis (rounded, at least 2).
        decay (float): how fast the amplitude falls with frequency.

    Returns:
        numpy.ndarray: float32 array of ``shape`` with minimum -1 and maximum 1.
    """
    counts = [max(2, int(round(k))) for k in n_basis]
    coefficients = rng.standard_normal(tuple(counts))
    kx, ky, kz = np.meshgrid(*[np.arange(k) for k in counts], indexing="ij")
    frequency = np.sqrt(kx ** 2 + ky ** 2 + kz ** 2)
    frequency[0, 0, 0] = 1.0
    coefficients /= frequency ** decay
    coefficients[0, 0, 0] = 0.0
    bases = [np.cos(np.pi * np.outer((np.arange(size) + 0.5) / size, np.arange(k)))
             .astype(np.float32) for size, k in zip(shape, counts)]
    field = np.tensordot(bases[0], coefficients.astype(np.float32), axes=(1, 0))  # (X, ky, kz)
    field = np.tensordot(field, bases[1], axes=(1, 1))  # (X, kz, Y)
    field = np.tensordot(field, bases[2], axes=(1, 1))  # (X, Y, Z)
    low, high = float(field.min()), float(field.max())
    if high <= low:
        return np.zeros(tuple(shape), np.float32)
    field -= np.float32(low)
    field *= np.float32(2.0 / (high - low))
    field -= np.float32(1.0)
    return field


def _relative_basis(shape, per_reference_axis, scale):
    """Cosine counts per axis giving features of a fixed size in reference voxels."""
    return [per_reference_axis * size / (96.0 * scale) for size in shape]


def _grid(start, stop, centre):
    """Open grid of voxel offsets from ``centre`` over the box ``[start, stop)``."""
    axes = []
    for axis in range(3):
        values = np.arange(start[axis], stop[axis], dtype=np.float32) - np.float32(centre[axis])
        view = [1, 1, 1]
        view[axis] = -1
        axes.append(values.reshape(view))
    return axes


def _soft(distance):
    """Partial-volume membership from a signed distance in voxels (positive = inside)."""
    return expit(distance * np.float32(1.0 / PARTIAL_VOLUME)).astype(np.float32)


def _bias_field(rng, shape):
    """Smooth multiplicative bias field ``exp(a * f)`` with ``f`` spanning [-1, 1]."""
    amplitude = rng.uniform(*BIAS_LOG_AMPLITUDE)
    field = _smooth_field(rng, shape, (3, 3, 3), decay=0.5)
    return np.exp(np.float32(amplitude) * field).astype(np.float32)


# ----------------------------------------------------------------------------- anatomy

def _anatomy(rng, shape, scale):
    """Brain geometry: box, mask, and soft memberships of grey matter and CSF.

    Returns:
        dict: ``box`` (tuple of slices of the volume holding the brain), ``start`` (voxel
        offset of that box), ``centre``/``semi`` (brain ellipsoid, voxels), ``brain`` (bool,
        box shape), ``gm`` and ``csf`` (float32 memberships, box shape).
    """
    shape_arr = np.asarray(shape, np.float64)
    semi = BRAIN_SEMI_AXIS * shape_arr * rng.uniform(0.97, 1.03, 3)
    centre = (shape_arr - 1.0) / 2.0 + rng.uniform(-0.02, 0.02, 3) * shape_arr
    reach = semi * (1.0 + BRAIN_WOBBLE) + 2.0
    start = np.maximum(0, np.floor(centre - reach)).astype(int)
    stop = np.minimum(shape_arr, np.ceil(centre + reach) + 1).astype(int)
    box_shape = tuple(int(v) for v in stop - start)

    x, y, z = _grid(start, stop, centre)
    sx, sy, sz = [np.float32(1.0 / s) for s in semi]
    radius = np.sqrt((x * sx) ** 2 + (y * sy) ** 2 + (z * sz) ** 2)  # 1 on the ellipsoid
    euclid = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    # Voxels from the ray's start to the ellipsoid, per unit of normalised radius.
    along = np.where(radius > 1e-6, euclid / np.maximum(radius, 1e-6), np.float32(semi.min()))
    surface = _smooth_field(rng, box_shape, (4, 4, 4))
    surface *= np.float32(BRAIN_WOBBLE)
    surface += np.float32(1.0)
    depth = along * (surface - radius)  # voxels to the perturbed surface along the ray
    del radius, euclid, along, surface
    brain = depth > 0

    rim = max(0.8, CSF_RIM * scale)
    gyri = _smooth_field(rng, box_shape, _relative_basis(box_shape, 20.0, scale), decay=0.3)
    thickness = max(min(MIN_CORTEX, 0.2 * semi.min()), CORTEX * scale)
    cortex = rim + thickness * (1.0 + CORTEX_WOBBLE * gyri)
    gm = _soft(cortex - depth)
    csf = _soft(np.float32(rim) - depth)
    del gyri, cortex

    for side in (-1.0, 1.0):
        offset = np.asarray(VENTRICLE_OFFSET) * semi * np.asarray([side, 1.0, 1.0])
        v_semi = np.asarray(VENTRICLE_SEMI_AXES) * semi * rng.uniform(0.9, 1.1, 3)
        v_centre = centre + offset + rng.uniform(-0.5, 0.5, 3) * scale
        v_start = np.maximum(start, np.floor(v_centre - v_semi - 2)).astype(int)
        v_stop = np.minimum(stop, np.ceil(v_centre + v_semi + 3)).astype(int)
        vx, vy, vz = _grid(v_start, v_stop, v_centre)
        v_radius = np.sqrt((vx / np.float32(v_semi[0])) ** 2 + (vy / np.float32(v_semi[1])) ** 2
                           + (vz / np.float32(v_semi[2])) ** 2)
        ventricle = _soft((np.float32(1.0) - v_radius) * np.float32(v_semi.min()))
        local = tuple(slice(a - s, b - s) for a, b, s in zip(v_start, v_stop, start))
        np.maximum(csf[local], ventricle, out=csf[local])

    return {"box": tuple(slice(a, b) for a, b in zip(start, stop)), "start": start,
            "centre": centre, "semi": semi, "brain": brain, "gm": gm, "csf": csf}


def _tumour(rng, anatomy, scale):
    """Tumour memberships inside a box around it.

    Returns:
        dict: ``box`` (slices into the anatomy box), ``edema``, ``rim`` (enhancing rim plus
        core) and ``core`` float32 memberships of that box.
    """
    semi, centre, brain = anatomy["semi"], anatomy["centre"], anatomy["brain"]
    direction = rng.standard_normal(3)
    direction /= max(np.linalg.norm(direction), 1e-9)
    where = direction * TUMOUR_CENTRE_RADIUS * rng.uniform() ** (1.0 / 3.0)
    t_centre = centre + where * semi - anatomy["start"]  # in box coordinates
    core = max(MIN_RADII[0], rng.uniform(*CORE_RADIUS) * scale)
    rim = core + max(MIN_RADII[1], rng.uniform(*RIM_THICKNESS) * scale)
    edema = rim + max(MIN_RADII[2], rng.uniform(*EDEMA_THICKNESS) * scale)
    stretch = rng.uniform(TUMOUR_ELONGATION[0], TUMOUR_ELONGATION[1], 3)

    reach = edema * (1.0 + EDEMA_WOBBLE) * stretch + 2.0
    start = np.maximum(0, np.floor(t_centre - reach)).astype(int)
    stop = np.minimum(brain.shape, np.ceil(t_centre + reach) + 1).astype(int)
    box_shape = tuple(int(v) for v in stop - start)
    x, y, z = _grid(start, stop, t_centre)
    radius = np.sqrt((x / np.float32(stretch[0])) ** 2 + (y / np.float32(stretch[1])) ** 2
                     + (z / np.float32(stretch[2])) ** 2)
    memberships = {"box": tuple(slice(a, b) for a, b in zip(start, stop))}
    # Each boundary gets its own perturbation: the rim's thickness varies (it may even open
    # where the core reaches it) and the edema spreads in lobes.
    for key, size, wobble, lobes in (("core", core, TUMOUR_WOBBLE, 5),
                                     ("rim", rim, TUMOUR_WOBBLE, 5),
                                     ("edema", edema, EDEMA_WOBBLE, 7)):
        field = _smooth_field(rng, box_shape, (lobes, lobes, lobes))
        field *= np.float32(wobble)
        field += np.float32(1.0)
        memberships[key] = _soft(np.float32(size) - radius / field)
    return memberships


# ----------------------------------------------------------------------------- public API

def make_case(shape=(96, 96, 64), seed=0, bias_field=True, noise=0.03, tumour=True):
    # type: (Sequence[int], int, bool, float, bool) -> Dict[str, np.ndarray]
    """Generate one synthetic BraTS-like case in memory.

    Args:
        shape (Sequence[int]): volume size ``(x, y, z)``, every axis at least 16.
        seed (int): non-negative seed of ``numpy.random.default_rng``; equal arguments give
            identical arrays.
        bias_field (bool): multiply the images by a smooth bias field spanning roughly
            0.75-1.3 (one field shared by the four modalities, as from one receive coil).
        noise (float): standard deviation of each component of the complex Gaussian noise
            (Rician magnitude), relative to the modality's gain (intensity of a tissue with
            relative intensity 1, see :data:`GAINS`); 0 gives noise-free images.
        tumour (bool): add a tumour; ``False`` gives healthy anatomy and an all-zero label map.

    Returns:
        Dict[str, numpy.ndarray]: ``flair``, ``t2``, ``t1``, ``t1ce``: float32 volumes of
        ``shape``, exactly 0 outside the brain and > 0 inside; ``seg``: uint8 internal labels
        (0, 1 necrotic/non-enhancing core, 2 edema, 4 enhancing), nonzero only inside the
        brain; ``bias``: float32 bias field applied to every modality (ones without
        ``bias_field``); ``tissue``: uint8 normal-anatomy map (:data:`TISSUES`: 0 outside,
        1 CSF, 2 grey matter, 3 white matter; ignores the tumour).

    Raises:
        ValueError: a bad shape, seed or noise level.
    """
    shape = _check_shape(shape)
    seed = _check_seed(seed)
    if not isinstance(noise, numbers.Real) or not np.isfinite(noise) or noise < 0:
        raise ValueError("noise must be a finite number >= 0, got %r" % (noise,))
    rng = np.random.default_rng(seed)
    scale = _scale(shape)

    anatomy = _anatomy(rng, shape, scale)
    box, box_shape = anatomy["box"], anatomy["brain"].shape
    texture = _smooth_field(rng, box_shape, _relative_basis(box_shape, 16.0, scale), decay=0.7)
    texture *= np.float32(TISSUE_TEXTURE)
    texture += np.float32(1.0)

    seg_box = np.zeros(box_shape, np.uint8)
    growth = _labelled_tumour(rng, anatomy, scale, seg_box) if tumour else None
    bias = _bias_field(rng, shape) if bias_field else np.ones(shape, np.float32)
    out = OrderedDict()
    for index, modality in enumerate(MODALITIES):
        signal = _modality_signal(rng, index, modality, anatomy, texture, growth, bias[box], noise)
        volume = np.zeros(shape, np.float32)
        volume[box] = signal
        out[modality] = volume
    out["seg"] = np.zeros(shape, np.uint8)
    out["seg"][box] = seg_box
    out["bias"] = bias
    out["tissue"] = _tissue_map(anatomy, shape)
    return out


def _labelled_tumour(rng, anatomy, scale, seg_box):
    """Grow a tumour (:func:`_tumour`), write its labels into ``seg_box``, add its texture."""
    brain, csf = anatomy["brain"], anatomy["csf"]
    growth = _tumour(rng, anatomy, scale)
    t_box = growth["box"]
    growth["edema"] *= np.float32(1.0) - csf[t_box]  # edema spreads in tissue, not CSF
    t_brain = brain[t_box]
    t_seg = seg_box[t_box]
    t_seg[(growth["edema"] > 0.5) & t_brain] = 2
    t_seg[(growth["rim"] > 0.5) & t_brain] = 4
    t_seg[(growth["core"] > 0.5) & t_brain] = 1
    t_shape = t_brain.shape
    growth["texture"] = np.float32(1.0) + np.float32(TUMOUR_TEXTURE) * _smooth_field(
        rng, t_shape, _relative_basis(t_shape, 24.0, scale))
    return growth


def _modality_signal(rng, index, modality, anatomy, texture, growth, bias, noise):
    """One modality inside the brain's box: tissue contrasts, tumour, gain, bias, Rician noise."""
    brain, gm, csf = anatomy["brain"], anatomy["gm"], anatomy["csf"]
    wm_value, gm_value, csf_value = [np.float32(INTENSITIES[tissue][index])
                                     for tissue in ("wm", "gm", "csf")]
    signal = gm * (gm_value - wm_value)
    signal += wm_value
    signal += csf * (csf_value - signal)
    signal *= texture
    if growth is not None:
        local = signal[growth["box"]]
        for name, key in (("edema", "edema"), ("enhancing", "rim"), ("necrosis", "core")):
            value = np.float32(INTENSITIES[name][index]) * growth["texture"]
            local += growth[key] * (value - local)
    gain = np.float32(GAINS[modality])
    signal *= gain
    signal *= bias
    if noise > 0:
        sigma = np.float32(noise) * gain
        real = rng.standard_normal(brain.shape, dtype=np.float32)
        real *= sigma
        real += signal
        imaginary = rng.standard_normal(brain.shape, dtype=np.float32)
        imaginary *= sigma
        signal = np.sqrt(real * real + imaginary * imaginary)
    np.maximum(signal, np.float32(MIN_SIGNAL) * gain, out=signal)
    signal[~brain] = 0.0
    return signal


def _tissue_map(anatomy, shape):
    """The uint8 normal-anatomy map of :data:`TISSUES` on the whole grid."""
    brain, gm, csf = anatomy["brain"], anatomy["gm"], anatomy["csf"]
    tissue_box = np.full(brain.shape, TISSUES["wm"], np.uint8)
    tissue_box[gm > 0.5] = TISSUES["gm"]
    tissue_box[csf > 0.5] = TISSUES["csf"]
    tissue_box[~brain] = TISSUES["background"]
    tissue = np.zeros(shape, np.uint8)
    tissue[anatomy["box"]] = tissue_box
    return tissue


def case_affine(shape, spacing=(1.0, 1.0, 1.0)):
    # type: (Sequence[int], Sequence[float]) -> np.ndarray
    """BraTS-like voxel-to-world matrix: ``diag(-sx, -sy, sz)``, volume centre at the origin.

    Args:
        shape (Sequence[int]): volume size.
        spacing (Sequence[float]): voxel size in mm per axis.

    Returns:
        numpy.ndarray: float64 ``(4, 4)`` affine.

    Raises:
        ValueError: a bad shape or spacing.
    """
    shape = _check_shape(shape)
    spacing = _check_spacing(spacing)
    axes = np.asarray([-spacing[0], -spacing[1], spacing[2]])
    affine = np.diag(np.concatenate([axes, [1.0]]))
    affine[:3, 3] = -axes * (np.asarray(shape, np.float64) - 1.0) / 2.0
    return affine


def _write_nifti(path, data, affine):
    """Write a NIfTI-1 ``.nii.gz`` atomically and reproducibly (see :mod:`densenet3d_keras.core.fileio`)."""
    import nibabel as nib

    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    write_nifti_gz(path, image)


def write_case(root, case_id, shape=(96, 96, 64), seed=0, layout="brats2017", bias_field=True,
               with_label=True, spacing=(1.0, 1.0, 1.0)):
    # type: (str, str, Sequence[int], int, str, bool, bool, Sequence[float]) -> str
    """Write one synthetic case as a BraTS case folder.

    Files: ``<root>/<case_id>/<case_id>_{flair,t1,t1ce,t2,seg}.nii.gz`` (layout
    ``brats2017``) or ``<root>/<case_id>/<case_id>-{t2f,t1n,t1c,t2w,seg}.nii.gz`` (layout
    ``brats2023``, enhancing tumour stored as 3). Modalities are float32 (the arrays of
    :func:`make_case` with default noise), the label map uint8; all share
    :func:`case_affine`. Each file is written under a temporary name and renamed.

    Args:
        root (str): dataset folder (created if missing).
        case_id (str): case folder name.
        shape (Sequence[int]): volume size, each axis at least 16.
        seed (int): seed of :func:`make_case`.
        layout (str): ``brats2017`` or ``brats2023``.
        bias_field (bool): apply a bias field (see :func:`make_case`).
        with_label (bool): also write the label map (``False`` mimics unlabelled test data).
        spacing (Sequence[float]): voxel size in mm, stored in the affine and header.

    Returns:
        str: the case folder path.

    Raises:
        ValueError: a bad case id, shape, seed, layout or spacing.
    """
    _check_case_id(case_id)
    chosen = _check_layout(layout)
    spacing = _check_spacing(spacing)
    case = make_case(shape, seed, bias_field=bias_field)
    affine = case_affine(shape, spacing)
    folder = os.path.join(root, case_id)
    os.makedirs(folder, exist_ok=True)
    for modality in MODALITIES:
        _write_nifti(os.path.join(folder, chosen.stem(case_id, modality) + ".nii.gz"),
                     case[modality], affine)
    if with_label:
        seg = from_internal_labels(case["seg"], chosen.label_convention)
        _write_nifti(os.path.join(folder, chosen.stem(case_id, "seg") + ".nii.gz"), seg, affine)
    return folder


def derive_seed(seed, index):
    # type: (int, int) -> int
    """Seed of case ``index`` of a dataset generated with ``seed`` (well mixed, deterministic).

    Args:
        seed (int): dataset seed, non-negative.
        index (int): case index, non-negative.

    Returns:
        int: a seed in ``[0, 2**32)``.
    """
    sequence = np.random.SeedSequence([_check_seed(seed), _check_seed(index)])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def case_ids(n_cases, layout="brats2017", prefix=None):
    # type: (int, str, Optional[str]) -> List[str]
    """Case folder names of a synthetic dataset.

    Args:
        n_cases (int): number of cases.
        layout (str): ``brats2017`` (``Brats17_SYN_000_1``, ...) or ``brats2023``
            (``BraTS-GLI-00000-000``, ...).
        prefix (Optional[str]): if given, names are ``prefix`` plus the zero-padded index
            (``prefix="case_"`` -> ``case_000``, ``case_001``, ...).

    Returns:
        List[str]: the names, in index order.

    Raises:
        ValueError: a bad count, layout or prefix.
    """
    _check_layout(layout)
    if not isinstance(n_cases, numbers.Integral) or isinstance(n_cases, bool) or n_cases < 1:
        raise ValueError("n_cases must be a positive integer, got %r" % (n_cases,))
    if prefix is None:
        pattern = DEFAULT_PREFIXES[layout]
        return [pattern % index for index in range(n_cases)]
    if not isinstance(prefix, str) or "/" in prefix or os.sep in prefix:
        raise ValueError("prefix must be a string usable in a folder name, got %r" % (prefix,))
    return [_check_case_id("%s%03d" % (prefix, index)) for index in range(n_cases)]


def _split_counts(n_cases, splits):
    """Numbers of train, val and test cases for fractions ``splits``.

    Raises:
        ValueError: not three non-negative fractions summing to 1, or no training case.
    """
    try:
        fractions = [float(v) for v in splits]
    except (TypeError, ValueError):
        raise ValueError("splits must be 3 fractions (train, val, test), got %r" % (splits,))
    if (len(fractions) != 3 or not all(np.isfinite(v) and v >= 0 for v in fractions)
            or abs(sum(fractions) - 1.0) > 0.01):
        raise ValueError("splits must be 3 non-negative fractions (train, val, test) summing "
                         "to 1, got %r" % (splits,))
    n_val = int(round(fractions[1] * n_cases))
    n_test = int(round(fractions[2] * n_cases))
    n_train = n_cases - n_val - n_test
    if n_train < 1:
        raise ValueError("splits %r leave no training case out of %d" % (tuple(splits), n_cases))
    return n_train, n_val, n_test


def _write_text(path, lines):
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))
    os.replace(temporary, path)


def write_dataset(root, n_cases=6, shape=(96, 96, 64), seed=0, layout="brats2017",
                  bias_field=True, splits=(0.67, 0.0, 0.33), prefix=None):
    # type: (str, int, Sequence[int], int, str, bool, Sequence[float], Optional[str]) -> List[str]
    """Write a synthetic dataset: ``n_cases`` labelled case folders plus case lists.

    Case ``i`` uses seed :func:`derive_seed` ``(seed, i)``, so equal arguments give
    byte-identical files. The first cases go to ``train.txt``, the next to ``val.txt``, the
    last to ``test.txt``; a list whose split is empty is not written (and a stale one left
    by an earlier run in ``root`` is removed).

    Args:
        root (str): dataset folder (created if missing).
        n_cases (int): number of cases, at least 1.
        shape (Sequence[int]): volume size, each axis at least 16.
        seed (int): dataset seed, non-negative.
        layout (str): ``brats2017`` or ``brats2023``.
        bias_field (bool): apply a bias field to each case.
        splits (Sequence[float]): train, val and test fractions summing to 1; counts are
            rounded, the training split gets the remainder and must not be empty.
        prefix (Optional[str]): case names ``prefix`` + zero-padded index instead of the
            layout's default names (see :func:`case_ids`).

    Returns:
        List[str]: the case ids, in index order.

    Raises:
        ValueError: a bad count, shape, seed, layout, split or prefix.
    """
    names = case_ids(n_cases, layout, prefix)
    counts = _split_counts(n_cases, splits)
    _check_shape(shape)
    _check_seed(seed)
    os.makedirs(root, exist_ok=True)
    for index, name in enumerate(names):
        write_case(root, name, shape=shape, seed=derive_seed(seed, index), layout=layout,
                   bias_field=bias_field, with_label=True)
    first = 0
    for list_name, count in zip(("train.txt", "val.txt", "test.txt"), counts):
        path = os.path.join(root, list_name)
        if count:
            _write_text(path, names[first:first + count])
        elif os.path.isfile(path):
            os.remove(path)
        first += count
    return names
