"""Writing results on an input's voxel grid."""
import numpy as np

from densenet3d_keras.core.fileio import write_nifti_gz


def write_nifti_like(path, data, header, description=None):
    """Write an array as ``.nii.gz`` on a reference image's grid, atomically.

    The reference header (qform, sform and their codes, voxel size, units, orientation) is
    copied, only the data type, shape and intensity fields are changed, so the result
    overlays on the reference in any viewer. The data go to a hidden temporary file in the
    destination folder that is renamed into place (:func:`densenet3d_keras.core.fileio.write_nifti_gz`),
    so a failure never leaves a partial file.

    Args:
        path: destination ending in ``.nii.gz``.
        data: ``(X, Y, Z)`` or ``(X, Y, Z, K)`` array; its dtype is the stored dtype.
        header: the reference ``nibabel.Nifti1Header`` (e.g. ``CaseVolumes.header``).
        description: text for the header's ``descrip`` field (at most 79 characters).

    Raises:
        ValueError: the data's spatial shape differs from the reference's.
        OSError: the file cannot be written.
    """
    import nibabel as nib

    data = np.asarray(data)
    reference_shape = tuple(int(s) for s in header.get_data_shape()[:3])
    if data.shape[:3] != reference_shape:
        raise ValueError("cannot write %s: data shape %s differs from the reference grid %s"
                         % (path, data.shape[:3], reference_shape))
    out_header = header.copy()
    out_header.set_data_dtype(data.dtype)
    out_header.set_data_shape(data.shape)
    out_header["cal_min"] = float(data.min()) if data.size else 0.0
    out_header["cal_max"] = float(data.max()) if data.size else 0.0
    if description is not None:
        out_header["descrip"] = description[:79].encode("ascii", "replace")
    # The affine is the header's own, so nibabel keeps qform, sform and their codes as they are.
    write_nifti_gz(path, nib.Nifti1Image(data, header.get_best_affine(), header=out_header))
