"""Hard cases for comparing this project's BraTS metrics with the official BraTS 2023 script's.

Each case is a ground-truth and a predicted label map (internal labels: 1 necrosis, 2 edema,
4 enhancing) on a small grid with an affine. :func:`write_cases` writes them as a BraTS 2023
dataset (``<root>/gt/<case>/<case>-{seg,t2f,t1n,t1c,t2w}.nii.gz``, labels 1, 2, 3) and a
prediction folder (``<root>/pred/<case>.nii.gz``), which both ``evaluate_keras.py`` and
``run_official.py`` (beside this file) read. Regenerate the recorded official outputs with::

    python -m tests.evaluation.official.cases /tmp/official_cases
    /tmp/brats_official/bin/python tests/evaluation/official/run_official.py \\
        /tmp/official_cases /tmp/brats_official_src > tests/evaluation/official/expected.json

(the environment and the official sources are described in ``run_official.py``).
"""
import os
import sys
from collections import OrderedDict

import nibabel as nib
import numpy as np

from densenet3d_keras.core.labels import from_internal_labels

SHAPE = (40, 36, 28)
MODALITY_KEYS = ("t2f", "t2w", "t1n", "t1c")


def ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    """Boolean ball of ``radius`` mm around a voxel ``centre``."""
    grid = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    squared = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing))
    return squared <= radius ** 2


def block(shape, lower, upper):
    """Boolean box ``[lower, upper)``."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lower, upper))] = True
    return mask


def tumour(shape, centre, radii, spacing=(1.0, 1.0, 1.0)):
    """Internal labels of one tumour: edema ball, enhancing ball, necrotic core."""
    label = np.zeros(shape, np.uint8)
    label[ball(shape, centre, radii[0], spacing)] = 2
    label[ball(shape, centre, radii[1], spacing)] = 4
    label[ball(shape, centre, radii[2], spacing)] = 1
    return label


def paint(label, mask, value):
    """``label`` with ``value`` where ``mask``."""
    label = label.copy()
    label[mask] = value
    return label


def affine_for(spacing, angle=0.0):
    """Affine of a grid of ``spacing`` rotated by ``angle`` degrees about the third axis."""
    turn = np.radians(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0],
                         [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.asarray(spacing, float)
    affine[:3, 3] = (-20.0, 12.5, 3.0)
    return affine


def _several_lesions():
    gt = tumour(SHAPE, (12, 12, 10), (7, 4, 2))
    gt = np.maximum(gt, tumour(SHAPE, (30, 24, 16), (5, 3, 1.5)))
    gt = paint(gt, ball(SHAPE, (30, 8, 22), 2.2), 2)              # small edema-only lesion
    pred = tumour(SHAPE, (13, 12, 10), (7, 4, 2))                  # first tumour, 1 voxel off
    pred = np.maximum(pred, tumour(SHAPE, (31, 25, 16), (4, 2, 0)))  # second, no necrosis
    pred = paint(pred, ball(SHAPE, (8, 30, 22), 2.5), 4)           # false positive ET
    return gt, pred, affine_for((1, 1, 1))


def _threshold():
    # Edema lesions of 49, 50 and 51 voxels (mm^3) and enhancing ones of 2, 3 voxels (MET).
    gt = np.zeros(SHAPE, np.uint8)
    gt = paint(gt, block(SHAPE, (2, 2, 2), (9, 9, 3)), 2)          # 49
    gt = paint(gt, block(SHAPE, (20, 2, 2), (25, 7, 4)), 2)        # 50
    gt = paint(gt, block(SHAPE, (2, 20, 2), (5, 36, 3)), 2)        # 3 x 16 + 3 = 51
    gt = paint(gt, block(SHAPE, (2, 20, 3), (3, 23, 4)), 2)
    gt = paint(gt, block(SHAPE, (30, 25, 20), (31, 26, 22)), 4)    # ET of 2 voxels
    gt = paint(gt, block(SHAPE, (20, 25, 20), (21, 28, 21)), 4)    # ET of 3 voxels
    pred = np.zeros(SHAPE, np.uint8)
    pred = paint(pred, block(SHAPE, (3, 3, 2), (8, 8, 4)), 2)      # only on the 49 lesion
    pred = paint(pred, block(SHAPE, (20, 2, 2), (25, 7, 3)), 2)    # half of the 50 lesion
    pred = paint(pred, block(SHAPE, (2, 21, 2), (5, 34, 3)), 2)    # most of the 51 lesion
    pred = paint(pred, block(SHAPE, (30, 25, 21), (31, 26, 23)), 4)
    return gt, pred, affine_for((1, 1, 1))


def _threshold_anisotropic():
    # At 1 x 1 x 2 mm: 25 voxels = 50 mm^3 (dropped), 26 voxels = 52 mm^3 (kept).
    gt = np.zeros(SHAPE, np.uint8)
    gt = paint(gt, block(SHAPE, (2, 2, 2), (7, 7, 3)), 4)
    gt = paint(gt, block(SHAPE, (20, 2, 2), (25, 7, 3)), 4)
    gt = paint(gt, block(SHAPE, (20, 7, 2), (21, 8, 3)), 4)
    gt = paint(gt, block(SHAPE, (2, 20, 10), (12, 30, 14)), 2)
    pred = paint(gt, block(SHAPE, (2, 2, 2), (7, 7, 3)), 0)
    pred = paint(pred, block(SHAPE, (2, 20, 10), (12, 30, 12)), 1)
    return gt, pred, affine_for((1, 1, 2))


def _empty_ground_truth():
    gt = np.zeros(SHAPE, np.uint8)
    pred = tumour(SHAPE, (20, 18, 14), (5, 3, 1))
    return gt, pred, affine_for((1, 1, 1))


def _empty_prediction():
    gt = tumour(SHAPE, (20, 18, 14), (6, 3, 1.5))
    return gt, np.zeros(SHAPE, np.uint8), affine_for((1, 1, 1))


def _both_empty():
    return np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8), affine_for((1, 1, 1))


def _merged_by_dilation():
    # Two enhancing blobs 3 voxels apart: one lesion after 3 dilations, two after one.
    gt = np.zeros(SHAPE, np.uint8)
    gt = paint(gt, ball(SHAPE, (20, 18, 14), 9), 2)
    gt = paint(gt, block(SHAPE, (14, 14, 12), (19, 20, 16)), 4)
    gt = paint(gt, block(SHAPE, (22, 14, 12), (26, 20, 16)), 4)
    pred = paint(gt, block(SHAPE, (22, 14, 12), (26, 20, 16)), 2)  # second blob missed
    pred = paint(pred, ball(SHAPE, (20, 18, 14), 7) & ~ball(SHAPE, (20, 18, 14), 6), 0)
    return gt, pred, affine_for((1, 1, 1))


def _anisotropic():
    spacing = (0.9375, 0.9375, 3.0)
    gt = tumour(SHAPE, (20, 18, 10), (9, 5, 3), spacing)
    pred = tumour(SHAPE, (22, 17, 11), (8, 6, 2), spacing)
    return gt, pred, affine_for(spacing)


def _rotated():
    spacing = (1.2, 0.8, 2.0)
    gt = tumour(SHAPE, (18, 18, 12), (8, 5, 2.5), spacing)
    pred = tumour(SHAPE, (19, 17, 12), (8.5, 4, 2.5), spacing)
    pred = paint(pred, ball(SHAPE, (34, 4, 3), 2.5, spacing), 2)
    return gt, pred, affine_for(spacing, angle=30.0)


def _label_confusion():
    gt = tumour(SHAPE, (20, 18, 14), (8, 5, 3))
    pred = gt.copy()
    pred[gt == 1] = 4                                               # necrosis called enhancing
    pred[gt == 4] = 1                                               # enhancing called necrosis
    pred[(gt == 2) & (np.indices(SHAPE)[0] < 16)] = 1               # part of the edema as core
    return gt, pred, affine_for((1, 1, 1))


def _cut_at_border():
    gt = tumour(SHAPE, (0, 0, 14), (10, 6, 3))
    gt = paint(gt, ball(SHAPE, (39, 35, 27), 4), 4)
    pred = tumour(SHAPE, (1, 0, 13), (9, 7, 3))
    pred = paint(pred, block(SHAPE, (36, 32, 24), (40, 36, 28)), 4)
    return gt, pred, affine_for((1, 1, 1))


def _component_spanning_lesions():
    # One predicted edema bar meets two far-apart lesions; another only a 30-voxel lesion.
    gt = np.zeros(SHAPE, np.uint8)
    gt = paint(gt, ball(SHAPE, (6, 18, 14), 4), 2)
    gt = paint(gt, ball(SHAPE, (34, 18, 14), 4), 2)
    gt = paint(gt, block(SHAPE, (18, 2, 2), (21, 7, 4)), 2)         # 30 voxels
    pred = paint(np.zeros(SHAPE, np.uint8), block(SHAPE, (4, 17, 13), (37, 20, 16)), 2)
    pred = paint(pred, block(SHAPE, (18, 5, 2), (22, 9, 3)), 2)
    pred = paint(pred, ball(SHAPE, (20, 30, 22), 2), 4)
    return gt, pred, affine_for((1, 1, 1))


def _no_background():
    # The ground truth's whole tumour fills the volume (specificity without background).
    shape = (12, 10, 8)
    gt = paint(np.full(shape, 2, np.uint8), block(shape, (3, 3, 2), (8, 7, 6)), 4)
    gt = paint(gt, block(shape, (4, 4, 3), (7, 6, 5)), 1)
    pred = paint(gt, block(shape, (0, 0, 0), (12, 10, 2)), 0)
    return gt, pred, affine_for((1, 1, 1))


def _far_false_positive():
    # A small tumour found, plus a big false positive far away: the two directed HD95 differ.
    gt = tumour(SHAPE, (6, 6, 6), (4, 2.5, 1))
    pred = tumour(SHAPE, (6, 6, 6), (4, 2.5, 1))
    pred = paint(pred, ball(SHAPE, (32, 28, 20), 6), 2)
    return gt, pred, affine_for((1, 1, 1))


#: Case id -> generator of (gt internal labels, prediction internal labels, affine).
CASES = OrderedDict([
    ("BraTS-OFF-00001-000", _several_lesions),
    ("BraTS-OFF-00002-000", _threshold),
    ("BraTS-OFF-00003-000", _threshold_anisotropic),
    ("BraTS-OFF-00004-000", _empty_ground_truth),
    ("BraTS-OFF-00005-000", _empty_prediction),
    ("BraTS-OFF-00006-000", _both_empty),
    ("BraTS-OFF-00007-000", _merged_by_dilation),
    ("BraTS-OFF-00008-000", _anisotropic),
    ("BraTS-OFF-00009-000", _rotated),
    ("BraTS-OFF-00010-000", _label_confusion),
    ("BraTS-OFF-00011-000", _cut_at_border),
    ("BraTS-OFF-00012-000", _component_spanning_lesions),
    ("BraTS-OFF-00013-000", _no_background),
    ("BraTS-OFF-00014-000", _far_false_positive),
])
#: What each case tests, for the README table.
DESCRIPTIONS = OrderedDict(zip(CASES, [
    "several lesions, one missed, a false positive", "lesions of 49, 50, 51 mm^3 (and 2, 3)",
    "50 and 52 mm^3 lesions on a 1 x 1 x 2 mm grid", "empty ground truth",
    "empty prediction", "both empty", "two lesions merged by the dilation",
    "0.94 x 0.94 x 3 mm grid", "grid rotated by 30 degrees, 1.2 x 0.8 x 2 mm",
    "label confusion", "tumours cut at the volume border",
    "one component over two lesions; one over a small lesion",
    "whole tumour fills the volume", "far false positive"]))


def _save(array, affine, path):
    image = nib.Nifti1Image(array, affine)
    image.set_data_dtype(array.dtype)
    nib.save(image, path)


def write_cases(root, cases=None, convention="brats2023"):
    """Write the cases under ``root`` (module docstring; ``cases``: id -> maker, default
    :data:`CASES`) with label files in ``convention``; returns the case ids."""
    cases = CASES if cases is None else cases
    for case_id, make in cases.items():
        gt, pred, affine = make()
        folder = os.path.join(root, "gt", case_id)
        os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.join(root, "pred"), exist_ok=True)
        _save(from_internal_labels(gt, convention), affine,
              os.path.join(folder, case_id + "-seg.nii.gz"))
        for key in MODALITY_KEYS:
            _save(np.ones(gt.shape, np.float32), affine,
                  os.path.join(folder, "%s-%s.nii.gz" % (case_id, key)))
        _save(from_internal_labels(pred, convention), affine,
              os.path.join(root, "pred", case_id + ".nii.gz"))
    return list(cases)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.evaluation.official.cases <output folder>")
    print("wrote %d cases under %s" % (len(write_cases(sys.argv[1])), sys.argv[1]))
