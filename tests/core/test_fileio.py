"""Atomic, reproducible file writing."""
import errno
import os
import stat

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.core.fileio import atomic_output, write_bytes_atomic, write_nifti_gz


def test_success_renames_into_place_with_umask_permissions(tmp_path):
    path = str(tmp_path / "out.txt")
    write_bytes_atomic(path, b"first")
    assert open(path, "rb").read() == b"first"
    assert os.listdir(str(tmp_path)) == ["out.txt"]
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o044  # readable by others, unlike mkstemp's 0600


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_keeps_previous_version_and_leaves_no_temporary(tmp_path, error):
    path = str(tmp_path / "out.bin")
    write_bytes_atomic(path, b"old")
    with pytest.raises(type(error)):
        with atomic_output(path, suffix=".bin") as temporary:
            assert temporary.endswith(".bin") and os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "wb") as handle:
                handle.write(b"half")
            raise error
    assert open(path, "rb").read() == b"old"
    assert os.listdir(str(tmp_path)) == ["out.bin"]


def test_nifti_is_reproducible_and_readable(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    affine = np.diag([-1.0, -1.0, 2.0, 1.0])
    first, second = str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")
    write_nifti_gz(first, nib.Nifti1Image(data, affine))
    write_nifti_gz(second, nib.Nifti1Image(data, affine))
    assert open(first, "rb").read() == open(second, "rb").read()
    loaded = nib.load(first)
    np.testing.assert_array_equal(np.asanyarray(loaded.dataobj), data)
    np.testing.assert_allclose(loaded.affine, affine)


def test_write_errors_name_the_file(tmp_path, monkeypatch):
    path = str(tmp_path / "config.json")
    write_bytes_atomic(path, b"old")

    def full(descriptor):  # a full disk reports the lost data at the latest at fsync
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as raised:
        write_bytes_atomic(path, b"new")
    assert str(raised.value) == "cannot write %s: No space left on device" % path
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(str(tmp_path)) == ["config.json"] and open(path, "rb").read() == b"old"
