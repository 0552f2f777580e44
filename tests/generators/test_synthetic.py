"""Tests of generators/synthetic.py: phantom anatomy, contrasts, bias field and files on disk."""
import os

import numpy as np
import pytest

from generators import synthetic
from generators.brats import load_case, read_case_list
from generators.volumes import load_case_volumes, load_nifti

SHAPE = (48, 48, 40)
SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def cases():
    return dict((seed, synthetic.make_case(SHAPE, seed=seed)) for seed in SEEDS)


def _region(case, name):
    """Voxels of a tumour label or of an untouched normal tissue."""
    seg, tissue = case["seg"], case["tissue"]
    labels = {"necrosis": 1, "edema": 2, "enhancing": 4}
    if name in labels:
        return seg == labels[name]
    return (tissue == synthetic.TISSUES[name]) & (seg == 0)


def test_arrays_have_the_documented_types(cases):
    case = cases[0]
    for key in ("flair", "t2", "t1", "t1ce", "bias"):
        assert case[key].dtype == np.float32 and case[key].shape == SHAPE
    for key in ("seg", "tissue"):
        assert case[key].dtype == np.uint8 and case[key].shape == SHAPE


def test_same_seed_same_arrays_and_different_seed_different():
    first = synthetic.make_case(SHAPE, seed=7)
    again = synthetic.make_case(SHAPE, seed=7)
    other = synthetic.make_case(SHAPE, seed=8)
    for key in first:
        assert first[key].tobytes() == again[key].tobytes(), key
    for key in ("flair", "t2", "t1", "t1ce", "seg", "bias"):
        assert not np.array_equal(first[key], other[key]), key


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_are_internal_and_all_present(cases, seed):
    values = set(np.unique(cases[seed]["seg"]).tolist())
    assert values == {0, 1, 2, 4}


@pytest.mark.parametrize("seed", SEEDS)
def test_everything_is_zero_outside_the_brain_and_positive_inside(cases, seed):
    case = cases[seed]
    brain = case["tissue"] > 0
    assert 0.15 < brain.mean() < 0.3  # an ellipsoid spanning ~74% of each axis
    assert not case["seg"][~brain].any()
    for modality in ("flair", "t2", "t1", "t1ce"):
        volume = case[modality]
        assert np.all(volume[~brain] == 0), modality
        assert np.all(volume[brain] > 0), modality
        assert np.all(np.isfinite(volume)), modality


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("modality, brighter, darker", [
    ("t1", "wm", "gm"), ("t1", "gm", "csf"),
    ("t1ce", "enhancing", "necrosis"), ("t1ce", "enhancing", "wm"),
    ("t2", "csf", "edema"), ("t2", "edema", "gm"), ("t2", "gm", "wm"),
    ("flair", "edema", "wm"), ("flair", "edema", "gm"), ("flair", "edema", "enhancing"),
    ("flair", "gm", "wm"), ("flair", "wm", "csf"),
])
def test_tissue_contrasts_follow_real_mri(cases, seed, modality, brighter, darker):
    case = cases[seed]
    volume = case[modality]
    assert volume[_region(case, brighter)].mean() > volume[_region(case, darker)].mean()


def test_normal_tissues_are_all_present(cases):
    tissue = cases[0]["tissue"]
    assert set(np.unique(tissue).tolist()) == {0, 1, 2, 3}
    # White matter is the core, grey matter a shell: WM is the largest class.
    counts = np.bincount(tissue.ravel(), minlength=4)
    assert counts[3] > counts[2] > 0 and counts[1] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_bias_field_range(cases, seed):
    bias = cases[seed]["bias"]
    assert 0.7 <= bias.min() and bias.max() <= 1.35
    assert bias.max() / bias.min() > 1.3


def test_bias_field_is_the_one_applied():
    biased = synthetic.make_case(SHAPE, seed=5, noise=0.0)
    flat = synthetic.make_case(SHAPE, seed=5, noise=0.0, bias_field=False)
    assert np.all(flat["bias"] == 1)
    np.testing.assert_array_equal(biased["seg"], flat["seg"])
    for modality in ("flair", "t2", "t1", "t1ce"):
        np.testing.assert_allclose(biased[modality], flat[modality] * biased["bias"], rtol=1e-5)


def test_noise_level_is_relative_to_the_gain():
    clean = synthetic.make_case(SHAPE, seed=2, noise=0.0, bias_field=False)
    noisy = synthetic.make_case(SHAPE, seed=2, noise=0.05, bias_field=False)
    wm = _region(clean, "wm")
    residual = (noisy["t1"] - clean["t1"])[wm] / synthetic.GAINS["t1"]
    assert 0.035 < residual.std() < 0.065


def test_healthy_case_has_no_labels():
    case = synthetic.make_case(SHAPE, seed=0, tumour=False)
    assert not case["seg"].any()
    assert np.all(case["flair"][case["tissue"] > 0] > 0)


def test_anisotropic_shape_keeps_the_brain_inside():
    case = synthetic.make_case((64, 40, 24), seed=3)
    brain = case["tissue"] > 0
    for axis in range(3):
        profile = brain.any(axis=tuple(a for a in range(3) if a != axis))
        assert not profile[0] and not profile[-1]
    assert set(np.unique(case["seg"]).tolist()) == {0, 1, 2, 4}


@pytest.mark.parametrize("kwargs, message", [
    ({"shape": (48, 15, 40)}, "(48, 15, 40)"),
    ({"shape": (48, 48)}, "(48, 48)"),
    ({"shape": (48.0, 48, 40)}, "48.0"),
    ({"seed": -1}, "-1"),
    ({"noise": -0.1}, "-0.1"),
    ({"noise": float("nan")}, "nan"),
])
def test_make_case_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        synthetic.make_case(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("layout, names, enhancing_on_disk", [
    ("brats2017", ("flair", "t1", "t1ce", "t2", "seg"), 4),
    ("brats2023", ("t2f", "t1n", "t1c", "t2w", "seg"), 3),
])
def test_write_case_reads_back(tmp_path, layout, names, enhancing_on_disk):
    separator = "_" if layout == "brats2017" else "-"
    folder = synthetic.write_case(str(tmp_path), "Case-7", shape=SHAPE, seed=3, layout=layout,
                                  spacing=(1.0, 1.2, 2.0))
    assert folder == os.path.join(str(tmp_path), "Case-7")
    assert sorted(os.listdir(folder)) == sorted("Case-7%s%s.nii.gz" % (separator, n) for n in names)

    expected = synthetic.make_case(SHAPE, seed=3)
    raw, image = load_nifti(os.path.join(folder, "Case-7%sseg.nii.gz" % separator))
    assert raw.dtype == np.uint8
    values = set(np.unique(raw).tolist())
    assert enhancing_on_disk in values and ({3, 4} - {enhancing_on_disk}).isdisjoint(values)
    np.testing.assert_allclose(image.affine, synthetic.case_affine(SHAPE, (1.0, 1.2, 2.0)))
    assert np.all(np.sign(np.diag(image.affine)[:3]) == [-1, -1, 1])

    case = load_case(folder, require_label=True)
    assert case.layout.name == layout
    flair, _ = load_nifti(case.images["flair"])
    assert flair.dtype == np.float32
    np.testing.assert_array_equal(flair, expected["flair"])

    volumes = load_case_volumes(case)
    assert volumes.image.shape == SHAPE + (4,)
    np.testing.assert_array_equal(volumes.label, expected["seg"])
    np.testing.assert_allclose(volumes.spacing, (1.0, 1.2, 2.0))


def test_write_case_without_label(tmp_path):
    folder = synthetic.write_case(str(tmp_path), "unlabelled", shape=SHAPE, with_label=False)
    assert load_case(folder).label is None
    assert len(os.listdir(folder)) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"layout": "brats2020"}, "brats2017, brats2023"),
    ({"spacing": (1.0, 0.0, 1.0)}, "(1.0, 0.0, 1.0)"),
    ({"case_id": "a/b"}, "a/b"),
    ({"case_id": ""}, "''"),
])
def test_write_case_rejects_bad_arguments(tmp_path, kwargs, message):
    arguments = {"root": str(tmp_path), "case_id": "c", "shape": SHAPE}
    arguments.update(kwargs)
    with pytest.raises(ValueError) as error:
        synthetic.write_case(**arguments)
    assert message in str(error.value)
    assert os.listdir(str(tmp_path)) == []


def test_write_dataset_writes_cases_and_lists(tmp_path):
    root = str(tmp_path / "data")
    names = synthetic.write_dataset(root, n_cases=3, shape=SHAPE, seed=1)
    assert names == ["Brats17_SYN_000_1", "Brats17_SYN_001_1", "Brats17_SYN_002_1"]
    assert read_case_list(os.path.join(root, "train.txt")) == names[:2]
    assert read_case_list(os.path.join(root, "test.txt")) == names[2:]
    assert not os.path.exists(os.path.join(root, "val.txt"))
    assert sorted(n for n in os.listdir(root) if not n.endswith(".txt")) == names
    for name in names:
        load_case(os.path.join(root, name), require_label=True)
    seeds = [synthetic.derive_seed(1, index) for index in range(3)]
    assert len(set(seeds)) == 3
    first, _ = load_nifti(os.path.join(root, names[1], names[1] + "_t1.nii.gz"))
    np.testing.assert_array_equal(first, synthetic.make_case(SHAPE, seed=seeds[1])["t1"])


def test_write_dataset_is_byte_identical(tmp_path):
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    for root in roots:
        synthetic.write_dataset(root, n_cases=2, shape=SHAPE, seed=4, layout="brats2023",
                                splits=(0.5, 0.5, 0.0))
    names = ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"]
    for name in names:
        for key in ("t2f", "t1n", "t1c", "t2w", "seg"):
            path = os.path.join(name, "%s-%s.nii.gz" % (name, key))
            contents = []
            for root in roots:
                with open(os.path.join(root, path), "rb") as handle:
                    contents.append(handle.read())
            assert contents[0] == contents[1], path
    assert sorted(os.listdir(roots[0])) == sorted(names + ["train.txt", "val.txt"])
    assert read_case_list(os.path.join(roots[0], "val.txt")) == names[1:]


def test_write_dataset_prefix_and_stale_lists(tmp_path):
    root = str(tmp_path)
    with open(os.path.join(root, "test.txt"), "w") as handle:
        handle.write("old_case\n")
    names = synthetic.write_dataset(root, n_cases=2, shape=SHAPE, prefix="syn_",
                                    splits=(1.0, 0.0, 0.0), bias_field=False)
    assert names == ["syn_000", "syn_001"]
    assert sorted(os.listdir(root)) == ["syn_000", "syn_001", "train.txt"]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_cases": 0}, "0"),
    ({"splits": (0.5, 0.5)}, "(0.5, 0.5)"),
    ({"splits": (0.0, 0.5, 0.5)}, "no training case"),
    ({"splits": (0.7, 0.7, 0.0)}, "(0.7, 0.7, 0.0)"),
    ({"layout": "nifti"}, "brats2017, brats2023"),
    ({"shape": (8, 48, 48)}, "(8, 48, 48)"),
])
def test_write_dataset_rejects_bad_arguments(tmp_path, kwargs, message):
    arguments = {"root": str(tmp_path), "n_cases": 2, "shape": SHAPE}
    arguments.update(kwargs)
    with pytest.raises(ValueError) as error:
        synthetic.write_dataset(**arguments)
    assert message in str(error.value)
    assert os.listdir(str(tmp_path)) == []


def test_affine_is_lps_like_and_centred():
    affine = synthetic.case_affine((10 + 6, 20, 30), (1.0, 2.0, 3.0))
    np.testing.assert_allclose(np.diag(affine), [-1.0, -2.0, 3.0, 1.0])
    centre = affine.dot([7.5, 9.5, 14.5, 1.0])
    np.testing.assert_allclose(centre[:3], 0.0, atol=1e-12)
