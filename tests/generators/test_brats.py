"""Case discovery, layouts, case lists and label conventions."""
import os

import numpy as np
import pytest

from generators import brats
from generators.synthetic import write_case


def test_discovers_2017_and_2023_layouts(tmp_path):
    root = str(tmp_path)
    write_case(root, "Brats17_TCIA_296_1", shape=(24, 24, 20), seed=0)
    write_case(root, "BraTS-GLI-00000-000", shape=(24, 24, 20), seed=1, layout="brats2023")
    os.makedirs(os.path.join(root, "not_a_case"))
    cases = brats.discover_cases(root)
    assert [c.case_id for c in cases] == ["BraTS-GLI-00000-000", "Brats17_TCIA_296_1"]
    gli, old = cases
    assert gli.layout.name == "brats2023" and gli.label_convention == "brats2023"
    assert gli.images["flair"].endswith("BraTS-GLI-00000-000-t2f.nii.gz")
    assert gli.images["t1ce"].endswith("-t1c.nii.gz") and gli.images["t1"].endswith("-t1n.nii.gz")
    assert old.images["t2"].endswith("Brats17_TCIA_296_1_t2.nii.gz")
    assert old.label.endswith("_seg.nii.gz")
    assert list(old.images) == ["flair", "t2", "t1", "t1ce"]


def test_case_list_selects_and_orders(tmp_path):
    root = str(tmp_path)
    for i in range(3):
        write_case(root, "Brats17_A_%d_1" % i, shape=(20, 20, 20), seed=i)
    with open(os.path.join(root, "train.txt"), "w") as handle:
        handle.write("Brats17_A_2_1\n\n# comment\nBrats17_A_0_1\n")
    names = brats.resolve_case_list(root, None)
    assert names == ["Brats17_A_2_1", "Brats17_A_0_1"]
    assert [c.case_id for c in brats.discover_cases(root, names)] == names
    assert brats.resolve_case_list(root, None, default_name="val.txt") is None
    assert brats.resolve_case_list(root, None, default_name=None) is None
    assert brats.resolve_case_list(root, "train.txt") == names  # relative to the root


def test_missing_modality_is_named(tmp_path):
    folder = write_case(str(tmp_path), "Brats17_B_1_1", shape=(20, 20, 20))
    os.remove(os.path.join(folder, "Brats17_B_1_1_t1ce.nii.gz"))
    with pytest.raises(FileNotFoundError, match="missing t1ce file for case Brats17_B_1_1"):
        brats.load_case(folder)


def test_missing_label_when_required(tmp_path):
    folder = write_case(str(tmp_path), "Brats17_C_1_1", shape=(20, 20, 20), with_label=False)
    assert brats.load_case(folder).label is None
    with pytest.raises(FileNotFoundError, match="missing label map"):
        brats.load_case(folder, require_label=True)


def test_missing_root_and_listed_case(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        brats.discover_cases(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="case folder not found"):
        brats.discover_cases(str(tmp_path), ["ghost"])


def test_corrected_paths_and_missing_corrected_file(tmp_path):
    folder = write_case(str(tmp_path), "Brats17_D_1_1", shape=(20, 20, 20))
    case = brats.load_case(folder)
    assert brats.corrected_path(case.images["flair"]).endswith("Brats17_D_1_1_flair_corrected.nii.gz")
    with pytest.raises(FileNotFoundError, match="N4-corrected file missing.*_flair_corrected"):
        case.corrected()


@pytest.mark.parametrize("convention, raw, internal", [
    ("brats2017", [0, 1, 2, 4], [0, 1, 2, 4]),
    ("brats2023", [0, 1, 2, 3], [0, 1, 2, 4]),
])
def test_label_conventions_round_trip(convention, raw, internal):
    raw = np.array(raw)
    mapped = brats.to_internal_labels(raw, convention)
    assert mapped.tolist() == internal
    assert brats.from_internal_labels(mapped, convention).tolist() == raw.tolist()


@pytest.mark.parametrize("convention, bad", [("brats2017", 3), ("brats2017", 5), ("brats2023", 4)])
def test_labels_outside_convention_rejected(convention, bad):
    with pytest.raises(ValueError, match="outside the %s convention" % convention):
        brats.to_internal_labels(np.array([0, bad]), convention)


def test_regions():
    label = np.array([0, 1, 2, 4])
    assert brats.region_mask(label, "wt").tolist() == [False, True, True, True]
    assert brats.region_mask(label, "tc").tolist() == [False, True, False, True]
    assert brats.region_mask(label, "et").tolist() == [False, False, False, True]
