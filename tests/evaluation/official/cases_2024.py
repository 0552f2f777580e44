"""Hard BraTS 2024 post-treatment cases for comparing this project's metrics with the official
BraTS 2024 script's (``metrics_GLI.py``).

Each case is a ground-truth and a predicted internal label map (:data:`NETC` 1, :data:`SNFH` 2,
:data:`RC` 3, :data:`ET` 4) on a small grid with an affine. :func:`write_cases` writes them
with the BraTS 2024 label values (1 NETC, 2 SNFH, 3 ET, 4 resection cavity) as a dataset
(``<root>/gt/<case>/<case>-{seg,t2f,t1n,t1c,t2w}.nii.gz``) and a prediction folder
(``<root>/pred/<case>.nii.gz``), which both ``evaluate_keras.py --label-convention brats2024``
and ``run_official_2024.py`` (beside this file) read. Regenerate the recorded official outputs
with the command in ``run_official_2024.py``.

Distances in the comments are in voxels along the first axis unless said otherwise. Lesions of
one sub-region are grouped when their dilated masks meet: 3 dilations (WT, TC, SNFH, ET) join
lesions up to 7 voxels apart, 5 (NETC, RC) up to 11.
"""
import sys
from collections import OrderedDict

import numpy as np

from tests.evaluation.official.cases import affine_for, ball, block, paint, write_cases as write_case_files

SHAPE = (40, 36, 28)
NETC, SNFH, RC, ET = 1, 2, 3, 4


def _box(label, lower, upper, value):
    return paint(label, block(label.shape, lower, upper), value)


def _empty(shape=SHAPE):
    return np.zeros(shape, np.uint8)


def _netc_through_et():
    # Two NETC blocks 16 apart (two NETC lesions by dilation) joined by one ET bar touching
    # both: merged into one NETC lesion. The prediction finds only the first block.
    gt = _box(_empty(), (2, 6, 6), (36, 20, 20), SNFH)
    gt = _box(gt, (6, 10, 10), (11, 15, 15), NETC)
    gt = _box(gt, (27, 10, 10), (32, 15, 15), NETC)
    gt = _box(gt, (11, 11, 11), (27, 14, 14), ET)
    pred = _box(_empty(), (3, 6, 6), (35, 20, 20), SNFH)
    pred = _box(pred, (6, 10, 10), (11, 15, 15), NETC)
    pred = _box(pred, (11, 11, 11), (27, 14, 14), ET)
    return gt, pred, affine_for((1, 1, 1))


def _x1_first():
    # NETC block A touches ET lesions X1 and X2, NETC block B (18 from A) touches X2 only.
    # The official merging joins A to the first-numbered ET lesion it touches (cc3d numbering:
    # the first voxel in C order, the first axis slowest): X1 here, so A and B stay apart.
    gt = _box(_empty(), (2, 4, 8), (6, 9, 13), ET)          # X1
    gt = _box(gt, (6, 4, 8), (13, 9, 13), NETC)             # A, touches X1 and X2
    gt = _box(gt, (13, 4, 8), (31, 9, 13), ET)              # X2, 8 from X1
    gt = _box(gt, (31, 4, 8), (35, 9, 13), NETC)            # B, touches X2
    pred = _box(_empty(), (6, 4, 8), (13, 9, 13), NETC)     # A only
    pred = _box(pred, (13, 4, 8), (31, 9, 13), ET)
    return gt, pred, affine_for((1, 1, 1))


def _x2_first():
    # The same with X2 first in C order (X1 would be first in Fortran order): A and B both
    # join X2 and become one NETC lesion.
    gt = _box(_empty(), (8, 4, 8), (26, 9, 13), ET)         # X2
    gt = _box(gt, (26, 4, 6), (33, 9, 13), NETC)            # A, touches X2 and X1
    gt = _box(gt, (33, 4, 2), (37, 9, 7), ET)               # X1, lower on the third axis
    gt = _box(gt, (8, 9, 8), (12, 13, 13), NETC)            # B, touches X2, 15 from A
    pred = _box(_empty(), (26, 4, 6), (33, 9, 13), NETC)    # A only
    pred = _box(pred, (8, 4, 8), (26, 9, 13), ET)
    return gt, pred, affine_for((1, 1, 1))


def _cavity_merges():
    # Resection cavities RC1 and RC2 (20 apart) both touch one ET rim: one RC lesion. Two SNFH
    # blocks (10 apart, two SNFH lesions) both touch RC1: one SNFH lesion. The prediction finds
    # RC1 and one SNFH block.
    gt = _box(_empty(), (4, 8, 8), (10, 16, 16), RC)           # RC1
    gt = _box(gt, (30, 8, 8), (36, 16, 16), RC)                # RC2
    gt = _box(gt, (10, 10, 10), (30, 14, 14), ET)              # rim joining them
    gt = _box(gt, (4, 16, 8), (10, 20, 16), SNFH)              # SNFH on RC1
    gt = _box(gt, (4, 0, 8), (10, 4, 16), SNFH)                # SNFH below RC1 (gap 4 in y)
    gt = _box(gt, (4, 4, 8), (10, 8, 9), SNFH)                 # ... reaching RC1
    pred = _box(_empty(), (4, 8, 8), (10, 16, 16), RC)
    pred = _box(pred, (10, 10, 10), (30, 14, 14), ET)
    pred = _box(pred, (4, 16, 8), (10, 20, 16), SNFH)
    return gt, pred, affine_for((1, 1, 1))


def _thresholds():
    # Isolated ground-truth lesions (each alone in every region it is in) of 10 and 11 voxels
    # (ET: 10 mm^3 dropped, 11 kept), 20 and 21 (NETC, RC: 20 dropped, 21 kept). Predicted
    # lesions of 10 / 11 ET voxels and 20 / 21 NETC voxels far from any lesion: the 10- and
    # 20-voxel ones are deleted, the others are false positives.
    gt = _box(_empty(), (2, 2, 2), (7, 4, 3), ET)             # 10
    gt = _box(gt, (14, 2, 2), (25, 3, 3), ET)                 # 11
    gt = _box(gt, (2, 14, 2), (12, 16, 3), NETC)              # 20
    gt = _box(gt, (26, 14, 2), (33, 17, 3), NETC)             # 21
    gt = _box(gt, (2, 28, 2), (12, 30, 3), RC)                # 20
    gt = _box(gt, (26, 28, 2), (33, 31, 3), RC)               # 21
    pred = paint(gt, gt > 0, 0)
    pred = _box(pred, (2, 2, 2), (7, 4, 3), ET)               # finds the dropped 10-voxel ET
    pred = _box(pred, (26, 14, 2), (33, 17, 3), NETC)         # and the kept 21-voxel NETC
    pred = _box(pred, (2, 2, 14), (7, 4, 15), ET)             # 10 ET voxels: deleted
    pred = _box(pred, (14, 2, 14), (25, 3, 15), ET)           # 11: a false positive
    pred = _box(pred, (2, 14, 14), (12, 16, 15), NETC)        # 20 NETC voxels: deleted
    pred = _box(pred, (26, 14, 14), (33, 17, 15), NETC)       # 21: a false positive
    pred = _box(pred, (2, 28, 14), (12, 30, 15), RC)          # 20 RC voxels: deleted
    return gt, pred, affine_for((1, 1, 1))


def _thresholds_anisotropic():
    # At 1 x 1 x 2 mm: NETC lesions of 10 voxels = 20 mm^3 (dropped) and 11 = 22 mm^3 (kept),
    # ET of 5 = 10 mm^3 (dropped) and 6 = 12 mm^3 (kept). Predicted lesions are deleted by
    # their voxel count: a 15-voxel NETC one (30 mm^3) is deleted all the same.
    gt = _box(_empty(), (2, 2, 2), (12, 3, 3), NETC)          # 10
    gt = _box(gt, (22, 2, 2), (33, 3, 3), NETC)               # 11
    gt = _box(gt, (2, 20, 2), (7, 21, 3), ET)                 # 5
    gt = _box(gt, (22, 20, 2), (28, 21, 3), ET)               # 6
    pred = _box(_empty(), (22, 2, 2), (33, 3, 3), NETC)
    pred = _box(pred, (2, 20, 2), (7, 21, 3), ET)
    pred = _box(pred, (2, 30, 14), (17, 31, 15), NETC)        # 15 voxels far away: deleted
    pred = _box(pred, (22, 30, 14), (29, 31, 15), ET)         # 7 ET voxels: deleted
    return gt, pred, affine_for((1, 1, 2))


def _empty_regions():
    # No NETC and no RC in the ground truth; the prediction has an RC cavity (a false
    # positive), no NETC, and a tumour of SNFH and ET.
    gt = paint(_empty(), ball(SHAPE, (20, 18, 14), 7), SNFH)
    gt = paint(gt, ball(SHAPE, (20, 18, 14), 3), ET)
    pred = paint(_empty(), ball(SHAPE, (21, 18, 14), 6), SNFH)
    pred = paint(pred, ball(SHAPE, (21, 18, 14), 3), ET)
    pred = _box(pred, (2, 2, 2), (6, 6, 4), RC)               # 32 voxels
    return gt, pred, affine_for((1, 1, 1))


def _empty_prediction():
    gt = paint(_empty(), ball(SHAPE, (20, 18, 14), 8), SNFH)
    gt = paint(gt, ball(SHAPE, (20, 18, 14), 5), ET)
    gt = paint(gt, ball(SHAPE, (20, 18, 14), 3), NETC)
    gt = paint(gt, ball(SHAPE, (31, 18, 14), 3), RC)
    return gt, _empty(), affine_for((1, 1, 1))


def _both_empty():
    return _empty(), _empty(), affine_for((1, 1, 1))


def _prediction_merged():
    # The prediction's NETC has a second block 19 from the first, joined to it by a predicted
    # ET bar: one predicted NETC lesion, matched to the ground truth's (no false positive, a
    # lower Dice).
    gt = _box(_empty(), (4, 8, 8), (10, 14, 14), NETC)
    gt = _box(gt, (10, 8, 8), (14, 14, 14), ET)
    pred = _box(_empty(), (4, 8, 8), (10, 14, 14), NETC)
    pred = _box(pred, (10, 9, 9), (29, 13, 13), ET)
    pred = _box(pred, (29, 8, 8), (35, 14, 14), NETC)
    return gt, pred, affine_for((1, 1, 1))


def _dilation_five_and_three():
    # NETC blocks 10 apart are one lesion (5 dilations), SNFH blocks 10 apart are two (the
    # script's 3: it misspells SNFH). A predicted RC block 5 from the ground truth's RC matches
    # it (within 5 dilations); a predicted ET block 5 from the ET lesion does not (3).
    gt = _box(_empty(), (2, 2, 2), (6, 6, 6), NETC)
    gt = _box(gt, (16, 2, 2), (20, 6, 6), NETC)
    gt = _box(gt, (2, 14, 2), (6, 18, 6), SNFH)
    gt = _box(gt, (16, 14, 2), (20, 18, 6), SNFH)
    gt = _box(gt, (2, 26, 14), (6, 30, 18), RC)
    gt = _box(gt, (28, 26, 14), (32, 30, 18), ET)
    pred = _box(_empty(), (2, 2, 2), (6, 6, 6), NETC)
    pred = _box(pred, (2, 14, 2), (6, 18, 6), SNFH)
    pred = _box(pred, (10, 26, 14), (14, 30, 18), RC)         # 5 voxels from the RC lesion
    pred = _box(pred, (28, 26, 22), (32, 30, 26), ET)          # 5 from ET along the third axis
    return gt, pred, affine_for((1, 1, 1))


def _post_treatment(spacing=(1.2, 0.8, 2.0), angle=30.0):
    # A cavity with an enhancing rim, necrosis on the rim and edema around, on a rotated
    # anisotropic grid; the prediction is shifted, misses part of the rim and has specks.
    gt = paint(_empty(), ball(SHAPE, (18, 18, 12), 9, spacing), SNFH)
    gt = paint(gt, ball(SHAPE, (18, 18, 12), 6, spacing), ET)
    gt = paint(gt, ball(SHAPE, (18, 18, 12), 4.5, spacing), RC)
    gt = paint(gt, ball(SHAPE, (23, 18, 12), 2.5, spacing), NETC)
    gt = paint(gt, ball(SHAPE, (34, 30, 20), 2.5, spacing), SNFH)
    pred = paint(_empty(), ball(SHAPE, (19, 17, 12), 8.5, spacing), SNFH)
    pred = paint(pred, ball(SHAPE, (19, 17, 12), 6, spacing), ET)
    pred = paint(pred, ball(SHAPE, (19, 17, 12), 4, spacing), RC)
    pred = paint(pred, ball(SHAPE, (13, 17, 12), 2, spacing), NETC)
    pred = _box(pred, (36, 2, 2), (38, 4, 4), ET)              # an 8-voxel ET speck
    pred = _box(pred, (2, 30, 20), (5, 33, 23), NETC)          # a 27-voxel NETC speck
    return gt, pred, affine_for(spacing, angle)


def _small_prediction_deleted():
    # A whole tumour found, plus a 15-voxel SNFH speck far away: deleted before every metric,
    # so the Dice of WT and SNFH is 1.
    gt = paint(_empty(), ball(SHAPE, (14, 14, 14), 6), SNFH)
    gt = paint(gt, ball(SHAPE, (14, 14, 14), 3), ET)
    pred = _box(gt, (33, 30, 20), (36, 35, 21), SNFH)         # 15 voxels
    return gt, pred, affine_for((1, 1, 1))


#: Case id -> generator of (gt internal labels, prediction internal labels, affine).
CASES = OrderedDict([
    ("BraTS-PTX-00001-000", _netc_through_et),
    ("BraTS-PTX-00002-000", _x1_first),
    ("BraTS-PTX-00003-000", _x2_first),
    ("BraTS-PTX-00004-000", _cavity_merges),
    ("BraTS-PTX-00005-000", _thresholds),
    ("BraTS-PTX-00006-000", _thresholds_anisotropic),
    ("BraTS-PTX-00007-000", _empty_regions),
    ("BraTS-PTX-00008-000", _empty_prediction),
    ("BraTS-PTX-00009-000", _both_empty),
    ("BraTS-PTX-00010-000", _prediction_merged),
    ("BraTS-PTX-00011-000", _dilation_five_and_three),
    ("BraTS-PTX-00012-000", _post_treatment),
    ("BraTS-PTX-00013-000", _small_prediction_deleted),
])
#: What each case tests, for the README table.
DESCRIPTIONS = OrderedDict(zip(CASES, [
    "two NETC lesions merged through one ET lesion",
    "merging joins the first-numbered lesion touched (not merged)",
    "the same with the numbering reversed (merged)",
    "RC merged through ET, SNFH through RC",
    "lesions and predicted lesions around 10 / 20 voxels",
    "thresholds on a 1 x 1 x 2 mm grid",
    "empty NETC and RC, a false-positive cavity",
    "empty prediction", "both empty",
    "predicted NETC merged through predicted ET",
    "5 dilations for NETC and RC, 3 for SNFH and ET",
    "cavity, rim, necrosis, edema on a rotated 1.2 x 0.8 x 2 mm grid",
    "a small predicted lesion deleted before every metric"]))


def write_cases(root):
    """Write the cases under ``root`` (module docstring); returns the case ids."""
    return write_case_files(root, CASES, "brats2024")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.evaluation.official.cases_2024 <output folder>")
    print("wrote %d cases under %s" % (len(write_cases(sys.argv[1])), sys.argv[1]))
