"""Labels and modalities: the channel order, the label conventions of the BraTS releases, regions.

Inside the project label maps follow the BraTS 2017-2021 convention (0 background,
1 necrotic / non-enhancing core, 2 edema, 4 enhancing tumour; 3 unused). BraTS 2023+ files
mark the enhancing tumour 3; they are mapped on reading and back on writing.
"""
from collections import OrderedDict

import numpy as np

#: Network channel order (docs/spec.md): the flair+t2 pathway reads channels 0-1, t1+t1ce 2-3.
MODALITIES = ("flair", "t2", "t1", "t1ce")

#: Classes of the label head: internal labels 0..4 (3 is unused).
NUM_CLASSES = 5
#: Internal labels a segmentation may contain (class 3 is not a BraTS label).
LABEL_CLASSES = (0, 1, 2, 4)
#: Label values on disk per convention.
LABELS_2017 = LABEL_CLASSES
LABELS_2023 = (0, 1, 2, 3)
LABEL_CONVENTIONS = ("brats2017", "brats2023")

#: Evaluated regions as sets of internal labels.
REGIONS = OrderedDict([("wt", (1, 2, 4)), ("tc", (1, 4)), ("et", (4,))])


def labels_for_convention(convention):
    """Allowed label values on disk for a convention name."""
    if convention == "brats2017":
        return LABELS_2017
    if convention == "brats2023":
        return LABELS_2023
    raise ValueError("unknown label convention %r (choose from %s)"
                     % (convention, ", ".join(LABEL_CONVENTIONS)))


def to_internal_labels(label, convention):
    """Map an on-disk label map to internal labels (enhancing tumour = 4).

    Raises:
        ValueError: a value outside the convention's label set.
    """
    allowed = labels_for_convention(convention)
    values = np.unique(label)
    bad = [v for v in values.tolist() if v not in allowed]
    if bad:
        raise ValueError("label values %s outside the %s convention %s"
                         % (bad, convention, list(allowed)))
    label = label.astype(np.uint8)
    if convention == "brats2023":
        label = np.where(label == 3, np.uint8(4), label).astype(np.uint8)
    return label


def from_internal_labels(label, convention):
    """Map internal labels (enhancing tumour = 4) to a convention's on-disk values."""
    labels_for_convention(convention)
    label = np.asarray(label).astype(np.uint8)
    if convention == "brats2023":
        label = np.where(label == 4, np.uint8(3), label).astype(np.uint8)
    return label


def region_mask(label, region):
    """Boolean mask of a region (``wt``, ``tc`` or ``et``) of an internal label map."""
    if region not in REGIONS:
        raise ValueError("unknown region %r (choose from %s)" % (region, ", ".join(REGIONS)))
    return np.isin(label, REGIONS[region])
