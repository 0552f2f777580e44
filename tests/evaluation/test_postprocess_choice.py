"""Tests for densenet3d_keras.evaluation.postprocess_choice: scores without relabelling, the choice."""
import numpy as np
import pytest

from densenet3d_keras.core.labels import REGIONS, region_mask
from densenet3d_keras.evaluation import postprocess_choice as choice
from densenet3d_keras.evaluation.lesionwise import lesionwise_region
from densenet3d_keras.evaluation.metrics import dice
from densenet3d_keras.inference.postprocess import PostprocessSettings, apply_postprocessing
from generators.synthetic import make_case
from tests.evaluation.strays import add_strays

ONE_MM = (1.0, 1.0, 1.0)


def noisy_prediction(gt, seed, blobs=25):
    """The ground truth shifted by a voxel, with small blobs of random labels and sizes."""
    rng = np.random.RandomState(seed)
    pred = np.roll(gt, 1, axis=0).copy()
    for _ in range(blobs):
        corner = rng.randint(2, min(gt.shape) - 4, 3)
        extent = rng.randint(1, 4, 3)
        pred[tuple(slice(c, c + e) for c, e in zip(corner, extent))] = rng.choice([1, 2, 4])
    return pred


@pytest.mark.parametrize("seed", range(2))
def test_scores_without_relabelling_equal_postprocessing_then_scoring(seed):
    gt = make_case((40, 40, 32), seed=seed)["seg"]
    pred = noisy_prediction(gt, seed)
    case = choice.case_components(pred, gt, ONE_MM)
    rng = np.random.RandomState(10 + seed)
    settings = [PostprocessSettings({"wt": int(rng.choice([0, 5, 20, 60])),
                                     "tc": int(rng.choice([0, 3, 10, 30])),
                                     "et": int(rng.choice([0, 2, 5, 12]))},
                                    [None, 5, 40, 5000][rng.randint(4)]) for _ in range(8)]
    settings.append(PostprocessSettings({"wt": 0, "tc": 0, "et": 9}))  # ET only
    changed = 0
    for setting in settings:
        post = apply_postprocessing(pred, setting)
        changed += int((post != pred).any())
        fast = choice.case_scores(case, setting)
        for region in REGIONS:
            pm, gm = region_mask(post, region), region_mask(gt, region)
            assert fast["lesion_dice_" + region] == pytest.approx(
                lesionwise_region(pm, gm, ONE_MM)["dice"], abs=1e-12), (setting, region)
            assert fast["dice_" + region] == pytest.approx(dice(pm, gm), abs=1e-12)
    assert changed >= 7  # the settings did change the prediction


def stray_case(seed):
    """GT: a synthetic tumour. Prediction: the GT plus 2^3 edema blobs far from it (FPs)."""
    gt = make_case((48, 48, 40), seed=seed)["seg"]
    pred, placed = add_strays(gt, [(2, 2, 2), (2, 42, 2), (42, 2, 2), (42, 42, 34), (2, 42, 34),
                                   (42, 2, 34)])
    return pred, gt, placed


def test_choice_removes_small_false_positive_components():
    cases, strays = [], []
    for seed in (1, 2):
        pred, gt, placed = stray_case(seed)
        strays.append(placed)
        cases.append(choice.case_components(pred, gt, ONE_MM))
    assert min(strays) >= 3
    before = choice.mean_scores(cases, PostprocessSettings())
    # WT: one true lesion plus the strays as FPs: 1 / (1 + strays) per case.
    assert before["lesion_dice_wt"] == pytest.approx(np.mean([1.0 / (1 + n) for n in strays]))
    settings, steps = choice.choose(cases)
    # The first grid size above 8 voxels removes every stray; the tumour is far larger.
    assert settings.min_size["wt"] == 50
    assert [step["step"] for step in steps] == list(choice.GRID)
    assert steps[0]["kept"] and steps[0]["best"] == 50
    assert not any(step["kept"] for step in steps[1:])  # nothing else to gain
    after = choice.mean_scores(cases, settings)
    assert after["lesion_dice_wt"] == 1.0
    assert after["lesion_dice_mean"] > before["lesion_dice_mean"]
    assert after["dice_wt"] > before["dice_wt"]


def test_choice_keeps_everything_when_nothing_helps():
    gt = make_case((40, 40, 32), seed=4)["seg"]
    settings, steps = choice.choose([choice.case_components(gt, gt, ONE_MM)])
    assert settings.is_identity() and not any(step["kept"] for step in steps)


def test_choice_needs_cases_and_known_steps():
    with pytest.raises(ValueError, match="no case"):
        choice.choose([])
    gt = np.zeros((20, 20, 20), np.uint8)
    with pytest.raises(ValueError, match="unknown postprocessing step"):
        choice.choose([choice.case_components(gt, gt, ONE_MM)], {"dilate": (0, 1)})
