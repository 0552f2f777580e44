"""Lesion-wise settings of the BraTS challenges: ground-truth dilation and smallest scored lesion.

Numbers from the official metric scripts (https://github.com/rachitsaluja):

* BraTS 2023 (``BraTS-2023-Metrics``, ``eval.py`` ``get_LesionWiseResults`` and
  ``brats_2023_metrics/surface_distance/brats_metrics.py`` ``get_challenge_parameters``):
  glioma GLI, sub-Saharan Africa SSA and paediatric PED dilate the ground truth 3 times and
  drop lesions of at most 50 mm^3; meningioma MEN dilates once and drops at most 50 mm^3;
  metastases MET dilate once and drop at most 2 mm^3. The same threshold for WT, TC and ET.
* BraTS 2024 post-treatment glioma (``BraTS-2024-Metrics``, ``metrics_GLI.py``): 3 dilations,
  lesions of at most 20 mm^3 dropped for WT, TC, NETC and SNFH and of at most 10 mm^3 for ET and
  RC (the script lowers the threshold to 10 at ET and keeps it for RC, which follows ET).
"""
from collections import OrderedDict, namedtuple

from densenet3d_keras.core.labels import REGIONS, REGIONS_2024

#: ``--challenge`` values.
CHALLENGES = ("GLI", "MEN", "MET", "PED", "SSA")
DEFAULT_CHALLENGE = "GLI"

#: BraTS 2023: challenge -> (dilation iterations, largest dropped lesion volume in mm^3).
BRATS_2023 = OrderedDict([("GLI", (3, 50.0)), ("MEN", (1, 50.0)), ("MET", (1, 2.0)),
                          ("PED", (3, 50.0)), ("SSA", (3, 50.0))])
#: BraTS 2024 post-treatment glioma: dilation iterations, region -> largest dropped volume.
BRATS_2024_GLI = (3, OrderedDict([("wt", 20.0), ("tc", 20.0), ("netc", 20.0), ("snfh", 20.0),
                                  ("et", 10.0), ("rc", 10.0)]))


class LesionSettings(namedtuple("LesionSettings", "name dilation min_volume")):
    """How one challenge groups and filters lesions.

    Attributes:
        name: ``<challenge>-<year>``, e.g. ``GLI-2023`` (the ``challenge`` column of metrics.csv).
        dilation: iterations of the 18-connected ground-truth dilation.
        min_volume: OrderedDict region -> volume in mm^3; lesions of at most this volume are
            not scored.
    """

    def describe(self):
        """The settings as a JSON-ready dict (summary.json)."""
        return OrderedDict([("dilation_iterations", self.dilation),
                            ("min_lesion_volume_mm3", OrderedDict(self.min_volume))])


def lesion_settings(challenge=DEFAULT_CHALLENGE, convention="brats2023"):
    """The lesion-wise settings of a challenge for label maps of a convention.

    Args:
        challenge: one of :data:`CHALLENGES`.
        convention: the label convention scored; ``brats2024`` (post-treatment glioma) takes
            the BraTS 2024 GLI settings, any other the BraTS 2023 ones.

    Returns:
        :class:`LesionSettings`.

    Raises:
        ValueError: an unknown challenge, or ``brats2024`` labels with another challenge than
            GLI.
    """
    if challenge not in CHALLENGES:
        raise ValueError("unknown challenge %r (choose from %s)" % (challenge, ", ".join(CHALLENGES)))
    if convention == "brats2024":
        if challenge != "GLI":
            raise ValueError("BraTS 2024 post-treatment labels (4 = resection cavity) are scored "
                             "with the GLI settings, not --challenge %s" % challenge)
        dilation, volumes = BRATS_2024_GLI
        return LesionSettings("GLI-2024", dilation, OrderedDict(volumes))
    dilation, volume = BRATS_2023[challenge]
    return LesionSettings("%s-2023" % challenge, dilation,
                          OrderedDict((region, volume) for region in REGIONS))


def settings_regions(settings):
    """The regions a :class:`LesionSettings` covers (``REGIONS`` or ``REGIONS_2024``)."""
    return REGIONS_2024 if "rc" in settings.min_volume else REGIONS
