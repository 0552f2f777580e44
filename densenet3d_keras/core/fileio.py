"""Writing files so that a crash or an interrupt never leaves a half-written output.

Every output goes to a hidden temporary name in its destination folder and is renamed into
place (an atomic replace on POSIX) only once it is complete; on any error, including
``KeyboardInterrupt``, the temporary file is removed and an earlier version of the output is
left untouched. Temporary files are created with ``open`` (not ``mkstemp``), so outputs get
the usual permissions of the process umask.
"""
import contextlib
import gzip
import io
import json
import os
import uuid


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Args:
        path: the final file.
        suffix: ending of the temporary name, for writers that pick a format from it
            (``".h5"``, ``".nii.gz"``).

    Raises:
        Whatever the block raises; the temporary file is removed first.
    """
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, ".%s.%d.%s.tmp%s" % (name, os.getpid(), uuid.uuid4().hex[:8], suffix))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def write_json_atomic(path, payload):
    """Write ``payload`` as indented, key-sorted JSON to ``path`` atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))


def write_nifti_gz(path, image, compresslevel=1):
    """Write a nibabel image as ``.nii.gz`` atomically and reproducibly.

    The gzip stream carries no time stamp or file name, so equal images give byte-identical
    files. Level 1 compression: label maps and float volumes gain little from more, and it is
    several times faster.

    Args:
        path: destination ``.nii.gz`` file.
        image: a ``nibabel.Nifti1Image`` (or any image with ``make_file_map``/``to_file_map``).
        compresslevel: gzip level.
    """
    buffer = io.BytesIO()
    image.to_file_map(type(image).make_file_map({"image": buffer, "header": buffer}))
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=compresslevel,
                               mtime=0) as stream:
                stream.write(buffer.getvalue())


def make_output_folder(path):
    """Create an output folder (and its parents) if needed.

    Returns:
        True when this call created it (so a failed run can remove it again).

    Raises:
        OSError: ``path`` is a file, or the folder cannot be created; the message names it.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OSError("output folder %s exists and is not a folder" % path)
    created = not os.path.isdir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise OSError("cannot create output folder %s: %s" % (path, error.strerror or error))
    return created
