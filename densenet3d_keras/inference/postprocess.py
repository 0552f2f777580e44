"""Postprocessing of predicted label maps: small connected components, small enhancing tumour.

Pure numpy/scipy on internal label maps (0 background, 1 necrotic / non-enhancing core,
2 edema, 4 enhancing tumour). Regions nest: WT = {1, 2, 4} contains TC = {1, 4} contains
ET = {4}. The steps, in this order, each on the result of the one before:

1. WT: every 26-connected component of the whole tumour with fewer than ``min_size["wt"]``
   voxels becomes background (0), with whatever core and enhancing tumour it holds.
2. TC: every 26-connected tumour-core component with fewer than ``min_size["tc"]`` voxels
   becomes edema (2): it stays tumour (WT is unchanged) but leaves the core, with its
   enhancing voxels.
3. ET: every 26-connected enhancing component with fewer than ``min_size["et"]`` voxels takes
   the label of the core around it: necrosis (1) when its tumour-core component holds other
   voxels (then it touches necrosis, and TC is unchanged), else edema (2) (an enhancing spot
   that was a core of its own leaves TC as well; WT is unchanged).
4. With ``et_to_necrosis_below`` = N, when fewer than N enhancing voxels are left, all of
   them become necrosis (1) (Isensee et al., "nnU-Net for brain tumor segmentation",
   BraTS 2020: a small predicted ET is more often a false positive than a true one, and the
   BraTS scores punish a false-positive ET in a case without ET hardest).

A region's step never changes the regions around it (removing TC components leaves WT
alone; removing ET components leaves WT alone), and enhancing or core components outside
the kept whole tumour cannot remain: each lies inside one WT component, and step 1 removes
it with that component. Each step removes whole components of the original prediction, so
the result's components per region are a subset of the original's. A size of 0 keeps every
component.

Settings as JSON (``predict_keras.py --postprocess``; ``evaluate_keras.py
--choose-postprocessing`` writes them)::

    {"min_size": {"wt": 250, "tc": 0, "et": 25}, "et_to_necrosis_below": 100}

``min_size`` may leave out regions (0), ``et_to_necrosis_below`` may be ``null`` or left out
(off). A ``validation`` entry (the scores of the choice) is kept as information and not used.
"""
import json
import numbers
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
from scipy import ndimage

from densenet3d_keras.core.fileio import write_json_atomic
from densenet3d_keras.core.labels import REGIONS, region_mask

#: 26-connectivity of the components.
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
#: Keys of a settings file; ``validation`` is information only.
SETTINGS_KEYS = ("min_size", "et_to_necrosis_below", "validation")
#: Label that the voxels of a removed component of a region take (ET: see the module docstring).
REMOVED_LABEL = {"wt": 0, "tc": 2}
NECROSIS = 1
EDEMA = 2
ENHANCING = 4


def _default_sizes():
    return OrderedDict((region, 0) for region in REGIONS)


@dataclass
class PostprocessSettings(object):
    """What :func:`apply_postprocessing` does; ``min_size`` in voxels per region (0: off)."""

    min_size: Dict[str, int] = field(default_factory=_default_sizes)
    et_to_necrosis_below: Optional[int] = None

    def to_dict(self):
        """The settings as the JSON-serialisable dict of a settings file."""
        return OrderedDict([("min_size", OrderedDict((region, int(self.min_size.get(region, 0)))
                                                     for region in REGIONS)),
                            ("et_to_necrosis_below", self.et_to_necrosis_below)])

    def is_identity(self):
        """True when the settings change no label map."""
        return not any(self.min_size.values()) and not self.et_to_necrosis_below

    def describe(self):
        """One line: ``min_size wt=.. tc=.. et=.., et_to_necrosis_below=..``."""
        sizes = " ".join("%s=%d" % (region, self.min_size.get(region, 0)) for region in REGIONS)
        return "min_size %s, et_to_necrosis_below=%s" % (sizes, self.et_to_necrosis_below)


def _count(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError("%s must be a whole number of voxels >= 0, got %r" % (what, value))
    return int(value)


def settings_from_dict(payload):
    """Check a settings dict and build :class:`PostprocessSettings`.

    Args:
        payload: dict as in the module docstring.

    Returns:
        :class:`PostprocessSettings`.

    Raises:
        ValueError: not a dict, an unknown key or region, or a value that is not a whole
            number >= 0 (``et_to_necrosis_below`` may also be null).
    """
    if not isinstance(payload, dict):
        raise ValueError("settings must be a JSON object, got %s" % type(payload).__name__)
    unknown = sorted(set(payload) - set(SETTINGS_KEYS))
    if unknown:
        raise ValueError("unknown key(s) %s (expected %s)" % (", ".join(unknown),
                                                              ", ".join(SETTINGS_KEYS)))
    sizes = payload.get("min_size", {})
    if not isinstance(sizes, dict):
        raise ValueError("min_size must be an object of region -> voxels, got %r" % (sizes,))
    unknown = sorted(set(sizes) - set(REGIONS))
    if unknown:
        raise ValueError("unknown region(s) in min_size: %s (expected %s)"
                         % (", ".join(unknown), ", ".join(REGIONS)))
    min_size = OrderedDict((region, _count(sizes.get(region, 0), "min_size.%s" % region))
                           for region in REGIONS)
    below = payload.get("et_to_necrosis_below")
    if below is not None:
        below = _count(below, "et_to_necrosis_below")
    return PostprocessSettings(min_size, below)


def load_settings(path):
    """Read a settings JSON file.

    Args:
        path: the file.

    Returns:
        :class:`PostprocessSettings`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not JSON, or bad settings; the message names the file.
    """
    try:
        with open(path) as handle:
            payload = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError("postprocessing settings not found: %s" % path)
    except ValueError as error:
        raise ValueError("postprocessing settings %s are not valid JSON: %s" % (path, error))
    except OSError as error:
        raise ValueError("cannot read postprocessing settings %s: %s"
                         % (path, error.strerror or error))
    try:
        return settings_from_dict(payload)
    except ValueError as error:
        raise ValueError("postprocessing settings %s: %s" % (path, error))


def save_settings(path, settings, validation=None):
    """Write settings (and the optional ``validation`` information) to ``path`` atomically.

    Raises:
        OSError: the file could not be written; the message names it.
    """
    payload = settings.to_dict()
    if validation is not None:
        payload["validation"] = validation
    write_json_atomic(path, payload)


def component_sizes(mask):
    """26-connected components of a mask and their sizes.

    Returns:
        (int32 label map, int64 array of voxels per label, index 0 = background).
    """
    components, count = ndimage.label(mask, structure=CONNECTIVITY)
    return components, np.bincount(components.ravel(), minlength=count + 1)


def remove_small_components(label, region, min_size):
    """Step 1 (``wt``) or 2 (``tc``): relabel the region's components under ``min_size`` voxels.

    Args:
        label: 3-D internal label map (not modified).
        region: ``wt`` (removed voxels become 0) or ``tc`` (they become edema, 2).
        min_size: components with fewer voxels are removed; 0 removes none.

    Returns:
        A new uint8 label map.

    Raises:
        ValueError: an unknown region (ET: :func:`remove_small_enhancing`).
    """
    if region not in REMOVED_LABEL:
        raise ValueError("remove_small_components handles %s, got %r"
                         % (" and ".join(REMOVED_LABEL), region))
    label = np.array(label, dtype=np.uint8)
    if min_size <= 0:
        return label
    components, sizes = component_sizes(region_mask(label, region))
    small = sizes < min_size
    small[0] = False
    label[small[components]] = REMOVED_LABEL[region]
    return label


def remove_small_enhancing(label, min_size):
    """Step 3: enhancing components under ``min_size`` voxels become necrosis or edema.

    A small component becomes necrosis (1) when its tumour-core component holds other voxels,
    else edema (2).

    Args:
        label: 3-D internal label map (not modified).
        min_size: components with fewer voxels are removed; 0 removes none.

    Returns:
        A new uint8 label map.
    """
    label = np.array(label, dtype=np.uint8)
    if min_size <= 0:
        return label
    enhancing, sizes = component_sizes(label == ENHANCING)
    small = sizes < min_size
    small[0] = False
    if not small.any():
        return label
    core, core_sizes = component_sizes(region_mask(label, "tc"))
    core_of = np.zeros(sizes.size, np.int64)
    inside = enhancing > 0
    core_of[enhancing[inside]] = core[inside]  # every enhancing component lies in one core
    lone = core_sizes[core_of] == sizes
    new_label = np.where(lone, EDEMA, NECROSIS).astype(np.uint8)
    removed = small[enhancing]
    label[removed] = new_label[enhancing[removed]]
    return label


def enhancing_to_necrosis(label, below):
    """Step 4: all enhancing voxels become necrosis when there are fewer than ``below``.

    Args:
        label: 3-D internal label map (not modified).
        below: threshold in voxels; ``None`` or 0 is off.

    Returns:
        A new uint8 label map.
    """
    label = np.array(label, dtype=np.uint8)
    if below and np.count_nonzero(label == ENHANCING) < below:
        label[label == ENHANCING] = NECROSIS
    return label


def apply_postprocessing(label, settings):
    """Apply all steps of ``settings`` to a label map (module docstring).

    Args:
        label: 3-D internal label map, values 0, 1, 2, 4 (not modified).
        settings: :class:`PostprocessSettings`.

    Returns:
        A new uint8 label map.
    """
    label = remove_small_components(label, "wt", settings.min_size.get("wt", 0))
    label = remove_small_components(label, "tc", settings.min_size.get("tc", 0))
    label = remove_small_enhancing(label, settings.min_size.get("et", 0))
    return enhancing_to_necrosis(label, settings.et_to_necrosis_below)
