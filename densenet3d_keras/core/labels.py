"""Labels and modalities: the channel order, the label conventions of the BraTS releases, regions.

Inside the project label maps follow the BraTS 2017-2021 convention (0 background,
1 necrotic / non-enhancing core, 2 edema, 4 enhancing tumour; 3 unused). BraTS 2023+ files
mark the enhancing tumour 3; they are mapped on reading and back on writing. BraTS 2024
post-treatment glioma files add label 4, the resection cavity (RC); it is read as internal
label :data:`RESECTION_CAVITY` = 3 for scoring only: the network has no such class.
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
#: BraTS 2024 post-treatment glioma: 1 NETC, 2 SNFH, 3 ET, 4 resection cavity.
LABELS_2024 = (0, 1, 2, 3, 4)
LABEL_CONVENTIONS = ("brats2017", "brats2023", "brats2024")
#: Internal label of the BraTS 2024 resection cavity (scoring only).
RESECTION_CAVITY = 3
#: Internal labels of a BraTS 2024 label map.
LABELS_2024_INTERNAL = (0, 1, 2, RESECTION_CAVITY, 4)

#: Evaluated regions as sets of internal labels.
REGIONS = OrderedDict([("wt", (1, 2, 4)), ("tc", (1, 4)), ("et", (4,))])
#: The regions of the BraTS 2024 post-treatment glioma evaluation (``metrics_GLI.py`` of
#: rachitsaluja/BraTS-2024-Metrics): WT = labels 1-3 (not the cavity), TC = 1 and 3, NETC = 1,
#: SNFH = 2, ET = 3, RC = 4 (on-disk values), in that order.
REGIONS_2024 = OrderedDict([("wt", (1, 2, 4)), ("tc", (1, 4)), ("netc", (1,)), ("snfh", (2,)),
                            ("et", (4,)), ("rc", (RESECTION_CAVITY,))])
#: Why training and prediction refuse BraTS 2024 post-treatment labels.
NO_CAVITY_CLASS = ("this network has no resection-cavity class (BraTS 2024 post-treatment label "
                   "4); score such cases with evaluate_keras.py --label-convention brats2024")

#: What a convention's label values would be read as when the file names say another.
_FALLBACKS = {"brats2017": ("brats2023", "brats2024"), "brats2023": ("brats2024",),
              "brats2024": ()}


def labels_for_convention(convention):
    """Allowed label values on disk for a convention name."""
    if convention == "brats2017":
        return LABELS_2017
    if convention == "brats2023":
        return LABELS_2023
    if convention == "brats2024":
        return LABELS_2024
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
    elif convention == "brats2024":  # ET 3 -> 4, resection cavity 4 -> 3
        label = np.array([0, 1, 2, 4, RESECTION_CAVITY], np.uint8)[label]
    return label


def from_internal_labels(label, convention):
    """Map internal labels (enhancing tumour = 4) to a convention's on-disk values."""
    labels_for_convention(convention)
    label = np.asarray(label).astype(np.uint8)
    if convention == "brats2023":
        label = np.where(label == 4, np.uint8(3), label).astype(np.uint8)
    elif convention == "brats2024":
        label = np.array([0, 1, 2, 4, 3], np.uint8)[label]
    return label


def regions_for(convention):
    """The evaluated regions of a label convention: :data:`REGIONS_2024` for ``brats2024``."""
    labels_for_convention(convention)
    return REGIONS_2024 if convention == "brats2024" else REGIONS


def detect_convention(values, named, fallbacks=None):
    """The label convention of a label map, from its values and the one its names suggest.

    Args:
        values: the label values present (e.g. ``numpy.unique`` of the map).
        named: the convention of the file names (the case layout's), or a reference one.
        fallbacks: conventions to try, in order, when the values do not fit ``named``;
            default: the later BraTS releases (``brats2017`` -> ``brats2023``, ``brats2024``;
            ``brats2023`` -> ``brats2024``).

    Returns:
        (convention, note): ``named`` and ``None`` when the values fit it (or fit no
        fallback either: reading then fails naming the values); else the first fallback they
        fit and a one-line note saying so.
    """
    labels_for_convention(named)
    values = sorted(set(int(v) for v in np.asarray(values).ravel().tolist()))
    if set(values) <= set(labels_for_convention(named)):
        return named, None
    for candidate in (_FALLBACKS[named] if fallbacks is None else fallbacks):
        if set(values) <= set(labels_for_convention(candidate)):
            return candidate, ("label values %s do not fit the %s convention; read as %s"
                               % (values, named, candidate))
    return named, None


def region_mask(label, region):
    """Boolean mask of a region (``wt``, ``tc``, ``et``; ``netc``, ``snfh``, ``rc`` of
    :data:`REGIONS_2024`) of an internal label map."""
    if region not in REGIONS_2024:
        raise ValueError("unknown region %r (choose from %s)" % (region, ", ".join(REGIONS_2024)))
    return np.isin(label, REGIONS_2024[region])
