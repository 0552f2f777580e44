"""Loading, checking and normalising case volumes."""
import os

import nibabel as nib
import numpy as np
import pytest

from generators.brats import load_case
from generators.synthetic import case_affine, write_case
from generators.volumes import load_case_volumes, load_nifti, normalise, pad_to_minimum


def test_normalise_uses_nonzero_statistics_and_keeps_background_constant():
    volume = np.zeros((4, 4, 4), np.float32)
    volume[1:3, 1:3, 1:3] = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]
    out, background = normalise(volume)
    values = np.arange(1, 9, dtype=np.float64)
    mean, std = values.mean(), values.std()
    assert background == pytest.approx(-mean / std, rel=1e-6)
    assert np.allclose(out[0, 0, 0], -mean / std)
    assert np.allclose(out[1:3, 1:3, 1:3].ravel(), (values - mean) / std, atol=1e-6)
    assert out.dtype == np.float32


def test_normalise_rejects_empty_volume():
    with pytest.raises(ValueError, match="flair of X is empty"):
        normalise(np.zeros((3, 3, 3)), "flair of X")


def test_load_case_volumes_channels_labels_and_geometry(tmp_path):
    folder = write_case(str(tmp_path), "Brats17_E_1_1", shape=(32, 28, 24), seed=4)
    volumes = load_case_volumes(load_case(folder, require_label=True))
    assert volumes.image.shape == (32, 28, 24, 4) and volumes.image.dtype == np.float32
    raw_flair = nib.load(os.path.join(folder, "Brats17_E_1_1_flair.nii.gz")).get_fdata()
    expected, _ = normalise(raw_flair)
    np.testing.assert_allclose(volumes.image[..., 0], expected, rtol=1e-5, atol=1e-5)
    raw_t1 = nib.load(os.path.join(folder, "Brats17_E_1_1_t1.nii.gz")).get_fdata()
    np.testing.assert_allclose(volumes.image[..., 2], normalise(raw_t1)[0], rtol=1e-5, atol=1e-5)
    assert set(np.unique(volumes.label)) <= {0, 1, 2, 4}
    np.testing.assert_allclose(volumes.affine, case_affine((32, 28, 24)))
    assert volumes.brain.sum() == np.count_nonzero(raw_flair > 0)


def _replace(folder, name, data, affine=None):
    path = os.path.join(folder, name)
    affine = nib.load(path).affine if affine is None else affine
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture
def case_folder(tmp_path):
    return write_case(str(tmp_path), "Brats17_F_1_1", shape=(24, 24, 20), seed=5)


def test_modalities_on_different_grids(case_folder):
    _replace(case_folder, "Brats17_F_1_1_t2.nii.gz", np.ones((24, 24, 21), np.float32))
    with pytest.raises(ValueError, match="_t2.nii.gz has shape .* must share one voxel grid"):
        load_case_volumes(load_case(case_folder))


def test_modalities_with_different_affines(case_folder):
    data = nib.load(os.path.join(case_folder, "Brats17_F_1_1_t1.nii.gz")).get_fdata().astype(np.float32)
    _replace(case_folder, "Brats17_F_1_1_t1.nii.gz", data, np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="different affine"):
        load_case_volumes(load_case(case_folder))


def test_labels_outside_every_convention(case_folder):
    seg = np.zeros((24, 24, 20), np.uint8)
    seg[5, 5, 5] = 5
    _replace(case_folder, "Brats17_F_1_1_seg.nii.gz", seg)
    with pytest.raises(ValueError, match=r"_seg.nii.gz: label values \[5\] outside the brats2017"):
        load_case_volumes(load_case(case_folder))


def test_2023_labels_under_2017_names_read_by_their_values(case_folder, capsys):
    seg = np.zeros((24, 24, 20), np.uint8)
    seg[5, 5, 5], seg[6, 6, 6] = 3, 2
    _replace(case_folder, "Brats17_F_1_1_seg.nii.gz", seg)
    volumes = load_case_volumes(load_case(case_folder))
    assert volumes.label[5, 5, 5] == 4 and volumes.label[6, 6, 6] == 2  # enhancing
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Brats17_F_1_1_seg.nii.gz" in lines[0]
    assert "[0, 2, 3] do not fit the brats2017 convention; read as brats2023" in lines[0]


def test_resection_cavity_refused(case_folder):
    seg = np.zeros((24, 24, 20), np.uint8)
    seg[5, 5, 5], seg[6, 6, 6] = 3, 4
    _replace(case_folder, "Brats17_F_1_1_seg.nii.gz", seg)
    with pytest.raises(ValueError, match="no resection-cavity class") as info:
        load_case_volumes(load_case(case_folder))
    assert "\n" not in str(info.value)


def test_four_d_time_series_rejected(case_folder):
    _replace(case_folder, "Brats17_F_1_1_flair.nii.gz", np.ones((24, 24, 20, 3), np.float32))
    with pytest.raises(ValueError, match="4-D time series"):
        load_case_volumes(load_case(case_folder))


def test_trailing_singleton_dimension_squeezed(tmp_path):
    path = str(tmp_path / "v.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((5, 6, 7, 1), np.float32), np.eye(4)), path)
    data, _ = load_nifti(path)
    assert data.shape == (5, 6, 7)


def test_finite_float64_beyond_float32_is_out_of_range_not_nan(case_folder):
    path = os.path.join(case_folder, "Brats17_F_1_1_t2.nii.gz")
    data = nib.load(path).get_fdata()  # float64
    data[3, 4, 5] = -1e39
    _replace(case_folder, "Brats17_F_1_1_t2.nii.gz", data)
    assert np.asanyarray(nib.load(path).dataobj).dtype == np.float64
    with pytest.raises(ValueError) as error:
        load_case_volumes(load_case(case_folder))
    message = str(error.value)
    assert message.startswith("%s has values outside the float32 range (largest magnitude 1e+39" % path)
    assert "NaN" not in message and "infinite" not in message
    # A real NaN is still called one.
    data[3, 4, 5] = np.nan
    _replace(case_folder, "Brats17_F_1_1_t2.nii.gz", data)
    with pytest.raises(ValueError, match="%s contains NaN or infinite values" % path):
        load_case_volumes(load_case(case_folder))


def test_empty_brain_rejected(case_folder):
    _replace(case_folder, "Brats17_F_1_1_flair.nii.gz", np.zeros((24, 24, 20), np.float32))
    with pytest.raises(ValueError, match="flair volume of case Brats17_F_1_1 .* is empty"):
        load_case_volumes(load_case(case_folder))


def test_corrupt_file_named(case_folder):
    path = os.path.join(case_folder, "Brats17_F_1_1_t1ce.nii.gz")
    with open(path, "wb") as handle:
        handle.write(b"\x1f\x8bthis is not a nifti file")
    with pytest.raises(ValueError, match="cannot read NIfTI file .*_t1ce.nii.gz"):
        load_case_volumes(load_case(case_folder))


def test_inputs_never_modified(case_folder):
    paths = sorted(os.path.join(case_folder, n) for n in os.listdir(case_folder))
    before = [(p, os.path.getmtime(p), open(p, "rb").read()) for p in paths]
    load_case_volumes(load_case(case_folder))
    after = [(p, os.path.getmtime(p), open(p, "rb").read()) for p in paths]
    assert before == after


def test_pad_to_minimum_fills_background_and_centres():
    image = np.ones((30, 40, 20, 2), np.float32)
    label = np.ones((30, 40, 20), np.uint8)
    padded, padded_label, offset = pad_to_minimum(image, label, [-5.0, -7.0], 38)
    assert padded.shape == (38, 40, 38, 2)
    assert offset.tolist() == [4, 0, 9]
    assert padded[0, 0, 0].tolist() == [-5.0, -7.0]
    assert padded[4:34, :, 9:29].min() == 1 and padded_label.sum() == label.sum()
    same, _, zero = pad_to_minimum(np.ones((40, 40, 40, 1)), None, [0.0], 38)
    assert same.shape == (40, 40, 40, 1) and zero.tolist() == [0, 0, 0]


def test_resection_cavity_accepted_for_scoring_checks(case_folder):
    # predict_keras.py --evaluate only checks a ground truth it will score: a cavity is fine.
    seg = np.zeros((24, 24, 20), np.uint8)
    seg[5, 5, 5], seg[6, 6, 6] = 3, 4
    _replace(case_folder, "Brats17_F_1_1_seg.nii.gz", seg)
    volumes = load_case_volumes(load_case(case_folder), cavity_ok=True)
    assert volumes.label[5, 5, 5] == 4 and volumes.label[6, 6, 6] == 3  # ET, cavity
