"""tools/cross_validate.py: folds, and postprocessing chosen on the other folds' held-out cases."""
import json
import os
import sys

import nibabel as nib
import numpy as np
import pytest

from generators import synthetic
from tests import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import cross_validate  # noqa: E402

SHAPE = (40, 40, 32)


def test_folds_hold_out_every_case_once():
    ids = ["c%d" % i for i in range(10)]
    splits = cross_validate.folds(ids, 5)
    held_out = [case for _, val in splits for case in val]
    assert sorted(held_out) == ids and all(len(val) == 2 for _, val in splits)
    for train, val in splits:
        assert sorted(train + val) == ids and not set(train) & set(val)
    with pytest.raises(SystemExit):
        cross_validate.folds(ids, 11)


def _prediction_with_specks(case, path, seed):
    """The label map with a few one-voxel false positives far from the tumour."""
    image = nib.load(case.label)
    label = np.asarray(image.dataobj).astype(np.uint8)
    rng = np.random.RandomState(seed)
    for _ in range(6):
        x, y, z = (rng.randint(1, size - 1) for size in label.shape)
        if label[x - 1:x + 2, y - 1:y + 2, z - 1:z + 2].any():
            continue
        label[x, y, z] = 2
    nib.save(nib.Nifti1Image(label, image.affine), path)


def test_postprocessing_is_chosen_on_the_other_folds_and_helps_on_this_one(tmp_path):
    from generators.brats import discover_cases

    root = str(tmp_path / "root")
    synthetic.write_dataset(root, n_cases=4, shape=SHAPE, seed=2, splits=(1.0, 0.0, 0.0))
    cases = discover_cases(root, require_label=True)
    ids = [case.case_id for case in cases]
    out = str(tmp_path / "cv")
    records = []
    for fold, (_, val) in enumerate(cross_validate.folds(ids, 2)):
        folder = os.path.join(out, "fold_%d" % fold, "pred")
        os.makedirs(folder)
        for index, case in enumerate(c for c in cases if c.case_id in val):
            _prediction_with_specks(case, os.path.join(folder, case.case_id + ".nii.gz"), fold * 10 + index)
        records.append({"fold": fold, "val": val})
    result = cross_validate.cross_validated_postprocessing(out, root, records)
    assert [fold["fold"] for fold in result["folds"]] == [0, 1]
    for fold in result["folds"]:
        assert fold["settings"]["min_size"]["wt"] > 0, "the specks are removed"
        for case in fold["cases"]:
            assert case["lesion_dice_wt"] == pytest.approx(case["dice_wt"], abs=0.05)
            assert case["dice_wt"] > 0.99
    with open(os.path.join(out, "postprocessing.json")) as handle:
        assert json.load(handle)["min_size"] == result["chosen_on_all"]["min_size"]
    lines = cross_validate.postprocessing_table(result)
    assert lines[-1].startswith("| | **mean of 4** |")
