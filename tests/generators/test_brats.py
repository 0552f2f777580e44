"""Case discovery, layouts, case lists and label conventions."""
import os

import numpy as np
import pytest

from densenet3d_keras.core import labels
from generators import brats
from generators.synthetic import write_case


def test_discovers_2017_and_2023_layouts(tmp_path):
    root = str(tmp_path)
    write_case(root, "Brats17_TCIA_296_1", shape=(24, 24, 20), seed=0)
    write_case(root, "BraTS-GLI-00000-000", shape=(24, 24, 20), seed=1, layout="brats2023")
    os.makedirs(os.path.join(root, ".snapshot", "x"))  # hidden folders and plain files: no cases
    with open(os.path.join(root, "notes.txt"), "w") as handle:
        handle.write("not a case\n")
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
    ("brats2024", [0, 1, 2, 3, 4], [0, 1, 2, 4, 3]),   # resection cavity -> internal 3
])
def test_label_conventions_round_trip(convention, raw, internal):
    raw = np.array(raw)
    mapped = labels.to_internal_labels(raw, convention)
    assert mapped.tolist() == internal
    assert labels.from_internal_labels(mapped, convention).tolist() == raw.tolist()


@pytest.mark.parametrize("convention, bad", [("brats2017", 3), ("brats2017", 5), ("brats2023", 4),
                                             ("brats2024", 5)])
def test_labels_outside_convention_rejected(convention, bad):
    with pytest.raises(ValueError, match="outside the %s convention" % convention):
        labels.to_internal_labels(np.array([0, bad]), convention)


def test_regions():
    label = np.array([0, 1, 2, 4])
    assert labels.region_mask(label, "wt").tolist() == [False, True, True, True]
    assert labels.region_mask(label, "tc").tolist() == [False, True, False, True]
    assert labels.region_mask(label, "et").tolist() == [False, False, False, True]


def test_regions_2024():
    # On-disk 2024 values 1 NETC, 2 SNFH, 3 ET, 4 RC; WT = 1-3 without the cavity, TC = 1, 3.
    label = labels.to_internal_labels(np.array([0, 1, 2, 3, 4]), "brats2024")
    expected = {"wt": [0, 1, 1, 1, 0], "tc": [0, 1, 0, 1, 0], "netc": [0, 1, 0, 0, 0],
                "snfh": [0, 0, 1, 0, 0], "et": [0, 0, 0, 1, 0], "rc": [0, 0, 0, 0, 1]}
    assert list(labels.regions_for("brats2024")) == list(expected)
    assert list(labels.regions_for("brats2023")) == ["wt", "tc", "et"]
    for region, mask in expected.items():
        assert labels.region_mask(label, region).astype(int).tolist() == mask, region


@pytest.mark.parametrize("values, named, read_as, noted", [
    ([0, 1, 2, 4], "brats2017", "brats2017", False),
    ([0, 1, 2, 3], "brats2017", "brats2023", True),      # a 2023 map renamed to 2017 names
    ([0, 1, 3, 4], "brats2017", "brats2024", True),
    ([0, 2, 3], "brats2023", "brats2023", False),
    ([0, 2, 4], "brats2023", "brats2024", True),         # cavity beside 2023 names
    ([0, 5], "brats2023", "brats2023", False),           # fits nothing: reading names the values
])
def test_detect_convention(values, named, read_as, noted):
    convention, note = labels.detect_convention(np.array(values), named)
    assert convention == read_as
    assert (note is not None) == noted
    if noted:
        assert "do not fit the %s convention; read as %s" % (named, read_as) in note


def test_detect_convention_with_fallbacks():
    # Predictions try the older conventions first: 4 beside 2023 names is then enhancing.
    assert labels.detect_convention([0, 4], "brats2023", ("brats2017", "brats2024"))[0] == "brats2017"
    assert labels.detect_convention([0, 4], "brats2023", ())[0] == "brats2023"


def _dataset_with_an_incomplete_folder(root, damage):
    write_case(root, "Brats17_K_1_1", shape=(20, 20, 20), seed=1)
    folder = write_case(root, "Brats17_K_2_1", shape=(20, 20, 20), seed=2)
    damage(folder, "Brats17_K_2_1")
    return folder


def _rename_flair(folder, case_id, new_key):
    os.rename(os.path.join(folder, case_id + "_flair.nii.gz"),
              os.path.join(folder, case_id + "_" + new_key + ".nii.gz"))


def test_folder_without_flair_is_an_error_naming_it(tmp_path):
    root = str(tmp_path)
    write_case(root, "Brats17_K_1_1", shape=(20, 20, 20), seed=1)
    os.makedirs(os.path.join(root, "not_a_case"))
    with pytest.raises(FileNotFoundError) as error:
        brats.discover_cases(root)
    message = str(error.value)
    assert message.startswith("case folder %s has no flair file (expected not_a_case_flair.nii.gz "
                              "or not_a_case-t2f.nii.gz)" % os.path.join(root, "not_a_case"))
    assert "--skip-incomplete" in message and "\n" not in message


@pytest.mark.parametrize("key", ["FLAIR", "Flair"])
def test_wrongly_cased_flair_is_an_error_with_a_hint(tmp_path, key):
    root = str(tmp_path)
    folder = _dataset_with_an_incomplete_folder(
        root, lambda folder, case_id: _rename_flair(folder, case_id, key))
    for call in (lambda: brats.discover_cases(root), lambda: brats.load_case(folder)):
        with pytest.raises(FileNotFoundError) as error:
            call()
        message = str(error.value)
        assert message.startswith("case folder %s has no flair file (expected "
                                  "Brats17_K_2_1_flair.nii.gz or Brats17_K_2_1-t2f.nii.gz)" % folder)
        assert "found Brats17_K_2_1_%s.nii.gz (file names are case-sensitive)" % key in message


def test_wrongly_cased_modality_gets_the_same_hint(tmp_path):
    folder = write_case(str(tmp_path), "Brats17_K_3_1", shape=(20, 20, 20))
    os.rename(os.path.join(folder, "Brats17_K_3_1_t1ce.nii.gz"),
              os.path.join(folder, "Brats17_K_3_1_T1CE.nii.gz"))
    with pytest.raises(FileNotFoundError, match="missing t1ce file for case Brats17_K_3_1: .*; "
                                                "found Brats17_K_3_1_T1CE.nii.gz"):
        brats.load_case(folder)


def test_skip_incomplete_names_every_skipped_folder(tmp_path, capsys):
    root = str(tmp_path)
    write_case(root, "Brats17_K_1_1", shape=(20, 20, 20), seed=1)
    os.makedirs(os.path.join(root, "empty"))
    _rename_flair(write_case(root, "Brats17_K_2_1", shape=(20, 20, 20), seed=2),
                  "Brats17_K_2_1", "FLAIR")
    no_t1 = write_case(root, "Brats17_K_3_1", shape=(20, 20, 20), seed=3)
    os.remove(os.path.join(no_t1, "Brats17_K_3_1_t1.nii.gz"))
    unlabelled = write_case(root, "Brats17_K_4_1", shape=(20, 20, 20), seed=4, with_label=False)
    os.makedirs(os.path.join(root, ".hidden"))

    # Without the flag the first incomplete folder (in name order) stops discovery.
    with pytest.raises(FileNotFoundError, match="case folder .*Brats17_K_2_1 has no flair"):
        brats.discover_cases(root)
    skipped = []
    cases = brats.discover_cases(root, skip_incomplete=True,
                                 on_skip=lambda folder, reason: skipped.append((folder, reason)))
    assert [c.case_id for c in cases] == ["Brats17_K_1_1", "Brats17_K_4_1"]
    assert [os.path.basename(folder) for folder, _ in skipped] == [
        "Brats17_K_2_1", "Brats17_K_3_1", "empty"]
    assert "found Brats17_K_2_1_FLAIR.nii.gz" in skipped[0][1]
    assert "missing t1 file for case Brats17_K_3_1" in skipped[1][1]
    assert "has no flair file" in skipped[2][1]
    # A case without label map is complete for prediction, not for training.
    cases = brats.discover_cases(root, require_label=True, skip_incomplete=True)
    assert [c.case_id for c in cases] == ["Brats17_K_1_1"]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and all(line.startswith("skipped incomplete case folder: ")
                                   for line in lines)
    assert lines[2] == ("skipped incomplete case folder: missing label map for case Brats17_K_4_1: "
                        "%s.nii.gz" % os.path.join(unlabelled, "Brats17_K_4_1_seg"))


def test_skip_incomplete_with_nothing_left_and_listed_cases(tmp_path, capsys):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "a"))
    os.makedirs(os.path.join(root, "b"))
    with pytest.raises(FileNotFoundError, match="no complete BraTS case folders found in .* "
                                                "\\(2 incomplete skipped\\)"):
        brats.discover_cases(root, skip_incomplete=True)
    assert len(capsys.readouterr().err.splitlines()) == 2
    # A listed case is taken as asked: incomplete is an error, whatever skip_incomplete says.
    write_case(root, "Brats17_K_1_1", shape=(20, 20, 20), seed=1)
    with pytest.raises(FileNotFoundError, match="case folder .*a has no flair file"):
        brats.discover_cases(root, ["Brats17_K_1_1", "a"], skip_incomplete=True)
