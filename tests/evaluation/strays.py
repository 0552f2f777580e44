"""Stray false-positive blobs for postprocessing tests."""
import numpy as np

#: Distance (voxels) beyond the tumour's box that keeps a blob outside every lesion footprint
#: (3 dilations of the ground truth reach 3 voxels).
CLEARANCE = 4


def add_strays(label, corners):
    """A copy of ``label`` with 2^3 edema blobs at those ``corners`` that lie more than
    :data:`CLEARANCE` voxels from the tumour's bounding box along some axis.

    Returns:
        (the new label map, number of blobs placed).
    """
    out = label.copy()
    tumour = np.argwhere(label > 0)
    low, high = tumour.min(axis=0), tumour.max(axis=0)
    placed = 0
    for corner in corners:
        if any(c + 1 + CLEARANCE < lo or c > hi + CLEARANCE
               for c, lo, hi in zip(corner, low, high)):
            out[tuple(slice(c, c + 2) for c in corner)] = 2
            placed += 1
    return out, placed
