"""Lesion-wise settings of the BraTS challenges: ground-truth dilation and smallest scored lesion.

Numbers from the official metric scripts (https://github.com/rachitsaluja):

* BraTS 2023 (``BraTS-2023-Metrics``, ``eval.py`` ``get_LesionWiseResults`` and
  ``brats_2023_metrics/surface_distance/brats_metrics.py`` ``get_challenge_parameters``):
  glioma GLI, sub-Saharan Africa SSA and paediatric PED dilate the ground truth 3 times and
  drop lesions of at most 50 mm^3; meningioma MEN dilates once and drops at most 50 mm^3;
  metastases MET dilate once and drop at most 2 mm^3. The same threshold for WT, TC and ET.
* BraTS 2024 post-treatment glioma (``BraTS-2024-Metrics``, ``metrics_GLI.py``, the latest
  version stored, commit 9e8879a): 5 dilations for NETC and RC, 3 for WT, TC, SNFH and ET (the
  script means 5 for SNFH too but misspells it, so SNFH keeps 3); ground-truth lesions of at
  most 10 mm^3 dropped for ET and of at most 20 mm^3 for every other region; predicted lesions
  (grouped by the same dilation) of at most 10 voxels (ET) or 20 voxels (the others) are
  deleted from the prediction before any metric; a missed lesion or a false positive costs
  337 mm of HD95 (374 in 2023). The merging of touching NETC, SNFH, ET and RC lesions is in
  :mod:`densenet3d_keras.evaluation.lesionwise`. (An earlier version of ``metrics_GLI.py``
  dilated every region 3 times, did not filter predictions, used 374 mm and kept RC at 10 mm^3
  by not resetting the ET threshold; this project follows the latest.)
"""
from collections import OrderedDict, namedtuple

from densenet3d_keras.core.labels import REGIONS, REGIONS_2024

#: ``--challenge`` values.
CHALLENGES = ("GLI", "MEN", "MET", "PED", "SSA")
DEFAULT_CHALLENGE = "GLI"

#: BraTS 2023: challenge -> (dilation iterations, largest dropped lesion volume in mm^3).
BRATS_2023 = OrderedDict([("GLI", (3, 50.0)), ("MEN", (1, 50.0)), ("MET", (1, 2.0)),
                          ("PED", (3, 50.0)), ("SSA", (3, 50.0))])
#: HD95 (mm) of a missed lesion or a false positive (and of one empty mask): BraTS 2023, 2024.
MISSED_HD95_2023 = 374.0
MISSED_HD95_2024 = 337.0
#: BraTS 2024 post-treatment glioma, per region: dilation iterations, largest dropped
#: ground-truth lesion volume (mm^3), largest deleted predicted lesion (voxels).
BRATS_2024_GLI = (OrderedDict([("wt", 3), ("tc", 3), ("netc", 5), ("snfh", 3), ("et", 3),
                               ("rc", 5)]),
                  OrderedDict([("wt", 20.0), ("tc", 20.0), ("netc", 20.0), ("snfh", 20.0),
                               ("et", 10.0), ("rc", 20.0)]),
                  OrderedDict([("wt", 20), ("tc", 20), ("netc", 20), ("snfh", 20), ("et", 10),
                               ("rc", 20)]))


class LesionSettings(namedtuple("LesionSettings",
                                "name dilation min_volume min_pred_voxels missed_hd95")):
    """How one challenge groups and filters lesions.

    Attributes:
        name: ``<challenge>-<year>``, e.g. ``GLI-2023`` (the ``challenge`` column of metrics.csv).
        dilation: iterations of the 18-connected ground-truth dilation: one number for every
            region (2023) or an OrderedDict region -> iterations (2024).
        min_volume: OrderedDict region -> volume in mm^3; lesions of at most this volume are
            not scored.
        min_pred_voxels: ``None`` (2023: predictions are scored as they are) or an OrderedDict
            region -> voxels: predicted lesions of at most this many voxels are deleted (2024).
        missed_hd95: HD95 in mm of a missed lesion, a false positive or one empty mask.
    """

    def iterations(self, region):
        """The dilation iterations of a region."""
        return self.dilation[region] if isinstance(self.dilation, dict) else self.dilation

    @property
    def brats2024(self):
        """BraTS 2024 post-treatment rules (filtered predictions, merged sub-regions)."""
        return self.min_pred_voxels is not None

    def describe(self):
        """The settings as a JSON-ready dict (summary.json)."""
        described = OrderedDict([("dilation_iterations", _plain(self.dilation)),
                                 ("min_lesion_volume_mm3", OrderedDict(self.min_volume))])
        if self.brats2024:
            described["min_predicted_lesion_voxels"] = OrderedDict(self.min_pred_voxels)
            described["missed_hd95_mm"] = self.missed_hd95
        return described


LesionSettings.__new__.__defaults__ = (None, MISSED_HD95_2023)


def _plain(value):
    return OrderedDict(value) if isinstance(value, dict) else value


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
        dilation, volumes, voxels = BRATS_2024_GLI
        return LesionSettings("GLI-2024", OrderedDict(dilation), OrderedDict(volumes),
                              OrderedDict(voxels), MISSED_HD95_2024)
    dilation, volume = BRATS_2023[challenge]
    return LesionSettings("%s-2023" % challenge, dilation,
                          OrderedDict((region, volume) for region in REGIONS))


def settings_regions(settings):
    """The regions a :class:`LesionSettings` covers (``REGIONS`` or ``REGIONS_2024``)."""
    return REGIONS_2024 if "rc" in settings.min_volume else REGIONS
