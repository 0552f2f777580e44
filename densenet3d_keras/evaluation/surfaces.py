"""Surface distances weighted by surface-element area, as the BraTS 2023 evaluation measures them.

The algorithm is that of DeepMind's ``surface-distance`` package (Nikolov et al. 2021,
arXiv:1809.04430), which the official BraTS 2023 metrics (rachitsaluja/BraTS-2023-Metrics)
bundle and call for every HD95 they report; this is an independent implementation of it, checked
against that code's outputs in ``tests/evaluation/official``.

1. Both masks are cropped to the bounding box of their union and padded with one empty voxel on
   every side.
2. Every corner of the voxel grid gets the *neighbour code* of the 2 x 2 x 2 voxels around it (8
   bits, :func:`neighbour_codes`). Corners whose code is neither 0 (all outside) nor 255 (all
   inside) are the mask's surface points.
3. Each surface point stands for the marching-cubes triangles of its code; its weight is their
   area in mm^2 (:func:`surfel_areas`; the triangles' area vectors, in eighths of a voxel face,
   are :data:`_TRIANGLES`, the numbers of ``surface-distance``'s lookup table).
4. ``scipy.ndimage.distance_transform_edt`` with the voxel size gives, at every surface point of
   one mask, the distance in mm to the nearest surface point of the other.
5. The robust Hausdorff distance at ``percent`` (:func:`robust_hausdorff`) takes, per direction,
   the smallest distance whose area-weighted cumulative fraction reaches ``percent`` / 100, and
   returns the larger of the two directions.

Pure numpy/scipy.
"""
import functools
import math
from collections import namedtuple

import numpy as np
from scipy import ndimage

#: Area vectors (|x|, |y|, |z| in eighths of a voxel face) of the marching-cubes triangles of each
#: neighbour code 0..127, codes separated by ``|``; code ``c`` and ``255 - c`` (the complement)
#: have the same triangles. Bit ``7 - (4 di + 2 dj + dk)`` of a code is the voxel at offset
#: ``(di, dj, dk)`` in {0, 1}^3 from the corner's lower neighbour. Numbers from
#: ``surface_distance/lookup_tables.py`` (DeepMind, Apache-2.0), in the order listed there.
_TRIANGLES = (
    "000|111|111|220 220|111|202 202|111 111|400 222 111|"
    "111|111 111|202 202|400 222 111|220 220|400 222 111|400 222 111|400 400|"
    "111|022 022|111 111|040 222 111|111 111|004 222 111|111 111 111|111 222 222 111|"
    "111 111|022 022 111|202 202 111|111 333 022 202|111 220 220|333 022 111 220|400 111 222 111|"
    "400 111 222|"
    "111|111 111|022 022|040 111 222|111 111|111 202 202|022 022 111|333 022 111 202|"
    "111 111|111 111 111|004 222 111|222 222 111 111|111 220 220|400 222 111 111|022 333 111 220|"
    "400 222 111|"
    "220 220|040 222 111|040 111 222|040 040|220 220 111|333 202 111 220|111 040 222 111|"
    "040 222 111|"
    "111 220 220|040 222 111 111|333 220 111 202|040 222 111|220 220 220 220|220 220 111|"
    "111 220 220|220 220|"
    "111|111 111|111 111|111 220 220|022 022|004 222 111|022 022 111|333 022 111 220|"
    "111 111|111 111 111|111 202 202|400 222 111 111|040 222 111|222 222 111 111|202 333 022 111|"
    "400 222 111|"
    "202 202|004 222 111|111 202 202|202 333 220 111|004 222 111|004 004|111 111 222 004|"
    "111 222 004|"
    "202 202 111|004 222 111 111|202 202 202 202|111 202 202|202 333 220 111|004 222 111|"
    "111 202 202|202 202|"
    "111 111|111 111 111|111 022 022|040 111 222 111|022 022 111|004 222 111 111|022 022 022 022|"
    "022 022 111|"
    "111 111 111|111 111 111 111|004 222 111 111|111 111 111|040 222 111 111|111 111 111|"
    "022 022 111|111 111|"
    "400 222 111|222 111 222 111|333 022 111 202|040 222 111|333 220 022 111|111 222 004|"
    "111 022 022|022 022|"
    "400 222 111 111|111 111 111|202 202 111|111 111|220 220 111|111 111|111 111|111"
)

#: Neighbour codes of the corners with no surface: all eight voxels outside, or all inside.
OUTSIDE_CODE = 0
INSIDE_CODE = 255


class SurfaceDistances(namedtuple("SurfaceDistances",
                                  "gt_to_pred pred_to_gt gt_areas pred_areas")):
    """Surface points of both masks, each sorted by distance (then area).

    Attributes:
        gt_to_pred: float ``(n_gt,)`` mm from each ground-truth surface point to the prediction's
            surface (``inf`` when the prediction is empty).
        pred_to_gt: float ``(n_pred,)`` mm the other way.
        gt_areas: float ``(n_gt,)`` surface area in mm^2 of each ground-truth surface point.
        pred_areas: float ``(n_pred,)`` the same for the prediction.
    """


def _triangle_table():
    """Per code 0..255, the list of (x, y, z) area-vector magnitudes in voxel-face units."""
    half = []
    for entry in _TRIANGLES.split("|"):
        half.append([tuple(int(digit) / 8.0 for digit in triangle) for triangle in entry.split()])
    if len(half) != 128:
        raise AssertionError("the triangle table must list 128 codes, has %d" % len(half))
    return half + half[::-1]


_TRIANGLE_TABLE = _triangle_table()


def surfel_areas(spacing):
    """Surface area in mm^2 that each neighbour code stands for, at a voxel size.

    A triangle's area vector ``(x, y, z)`` (in voxel-face units) scales to
    ``(x * s1 * s2, y * s0 * s2, z * s0 * s1)`` on a grid of spacing ``(s0, s1, s2)``; a code's
    area is the sum of its triangles' scaled lengths.

    Args:
        spacing: voxel size in mm per axis (3 floats).

    Returns:
        float64 ``(256,)``; 0 for codes 0 and 255, ``sqrt(3) / 8`` for a single corner voxel at
        1 mm.
    """
    return _surfel_areas(tuple(float(s) for s in spacing))


@functools.lru_cache(maxsize=16)
def _surfel_areas(spacing):
    """:func:`surfel_areas` of a tuple of floats, read-only (cached: every HD95 of a case)."""
    s0, s1, s2 = spacing
    areas = np.zeros(256)
    for code, triangles in enumerate(_TRIANGLE_TABLE):
        total = 0.0
        for x, y, z in triangles:
            total += float(np.linalg.norm(np.array([x * s1 * s2, y * s0 * s2, z * s0 * s1])))
        areas[code] = total
    areas.setflags(write=False)
    return areas


def neighbour_codes(mask):
    """Neighbour code of every corner of a mask's voxel grid, the volume edge included.

    Args:
        mask: 3-D boolean array ``(n0, n1, n2)``.

    Returns:
        uint8 ``(n0 + 1, n1 + 1, n2 + 1)``: at corner ``(i, j, k)`` the bits of the voxels
        ``(i - 1 + di, j - 1 + dj, k - 1 + dk)`` (outside the volume = empty), bit
        ``7 - (4 di + 2 dj + dk)``.
    """
    return _corner_codes(np.asarray(mask, dtype=np.uint8))


def _corner_codes(values):
    """``sum(value * bit weight)`` over each corner's 2 x 2 x 2 voxels in uint8 arithmetic (so
    modulo 256): for a 0/1 mask the neighbour codes; for wrapped label values, what
    ``surface-distance`` computes from them (:func:`wrapped_neighbour_codes`)."""
    padded = np.pad(values, 1)
    shape = tuple(n + 1 for n in values.shape)
    codes = np.zeros(shape, np.uint8)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                weight = np.uint8(1 << (7 - (4 * di + 2 * dj + dk)))
                codes += padded[di:di + shape[0], dj:dj + shape[1], dk:dk + shape[2]] * weight
    return codes


def wrapped_neighbour_codes(label_map):
    """Neighbour codes of a map of non-negative integers (lesion ids), as ``surface-distance``
    computes them when it is handed such a map instead of a mask.

    That code stores the values in 8 bits and correlates them with the bit weights, writing the
    sum to 8 bits again: each corner gets ``sum(value * weight) mod 256``, each value taken
    modulo 256. For a 0/1 mask this is :func:`neighbour_codes`; the inside of a lesion with id
    ``k`` gets ``(255 k) mod 256``, which is neither 0 nor 255 for ``k`` from 2 to 255, so it
    counts as surface.

    Args:
        label_map: 3-D array of non-negative integers ``(n0, n1, n2)``.

    Returns:
        uint8 ``(n0 + 1, n1 + 1, n2 + 1)``, the corners as in :func:`neighbour_codes`.
    """
    return _corner_codes((np.asarray(label_map).astype(np.int64) % 256).astype(np.uint8))


def _union_box(first, second):
    union = np.logical_or(first, second)
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other))
        if present.size == 0:
            return None
        box.append(slice(int(present[0]), int(present[-1]) + 1))
    return tuple(box)


def _sorted(distances, areas):
    order = np.lexsort((areas, distances))
    return distances[order], areas[order]


def surface_distances(gt_mask, pred_mask, spacing):
    """Area-weighted surface distances between two masks (module docstring, steps 1-4).

    Args:
        gt_mask: 3-D array, nonzero = inside (the reference).
        pred_mask: 3-D array of the same shape.
        spacing: voxel size in mm per axis.

    Returns:
        :class:`SurfaceDistances`; all four arrays empty when both masks are, and the distances
        from a non-empty mask all ``inf`` when the other one is empty.

    Raises:
        ValueError: the shapes differ or the masks are not 3-D.
    """
    gt = np.asarray(gt_mask).astype(bool)
    pred = np.asarray(pred_mask).astype(bool)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError("surface distances need two 3-D masks of one shape, got %s and %s"
                         % (gt.shape, pred.shape))
    return _surface_distances(gt, pred, spacing, neighbour_codes)


def label_map_surface_distances(gt_map, pred_map, spacing):
    """:func:`surface_distances` of two lesion label maps (ids 1, 2, ...) taken as they are, as
    ``surface-distance`` computes them when handed such maps (the official BraTS 2024 script's
    full-volume HD95): the neighbour codes are :func:`wrapped_neighbour_codes`, so the inside
    of a lesion numbered 2 or more is surface too. Equal to :func:`surface_distances` for 0/1
    masks.

    Args:
        gt_map: 3-D array of non-negative integers (the reference).
        pred_map: 3-D array of the same shape.
        spacing: voxel size in mm per axis.

    Returns:
        :class:`SurfaceDistances`, as :func:`surface_distances`.

    Raises:
        ValueError: the shapes differ, the maps are not 3-D or hold negative values.
    """
    gt = np.asarray(gt_map).astype(np.int64)
    pred = np.asarray(pred_map).astype(np.int64)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError("surface distances need two 3-D label maps of one shape, got %s and %s"
                         % (gt.shape, pred.shape))
    if (gt < 0).any() or (pred < 0).any():
        raise ValueError("lesion label maps must not hold negative values")
    return _surface_distances(gt, pred, spacing, wrapped_neighbour_codes)


def _surface_distances(gt, pred, spacing, codes_of):
    """:func:`surface_distances` of two checked arrays, neighbour codes from ``codes_of``."""
    box = _union_box(gt, pred)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty, empty, empty)
    spacing = tuple(float(s) for s in spacing)
    areas = surfel_areas(spacing)
    codes = [codes_of(mask[box]) for mask in (gt, pred)]
    borders = [(code != OUTSIDE_CODE) & (code != INSIDE_CODE) for code in codes]
    maps = [ndimage.distance_transform_edt(~border, sampling=spacing) if border.any()
            else np.full(border.shape, np.inf) for border in borders]
    gt_to_pred, gt_areas = _sorted(maps[1][borders[0]], areas[codes[0][borders[0]]])
    pred_to_gt, pred_areas = _sorted(maps[0][borders[1]], areas[codes[1][borders[1]]])
    return SurfaceDistances(gt_to_pred, pred_to_gt, gt_areas, pred_areas)


def _directed_percentile(distances, areas, percent):
    if distances.size == 0:
        return math.inf
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percent / 100.0))
    return float(distances[min(index, distances.size - 1)])


def robust_hausdorff(distances, percent):
    """The larger of the two directed area-weighted percentiles of the surface distances.

    Args:
        distances: :class:`SurfaceDistances`.
        percent: in [0, 100], e.g. 95 for HD95.

    Returns:
        float mm; ``inf`` when a mask has no surface (is empty).
    """
    return max(_directed_percentile(distances.gt_to_pred, distances.gt_areas, percent),
               _directed_percentile(distances.pred_to_gt, distances.pred_areas, percent))
