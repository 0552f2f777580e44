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
import re
import uuid

#: Temporary names of :func:`atomic_output`: ``.<name>.<pid>.<hex>.tmp<suffix>``.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp(?P<suffix>.*)$")


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


def pid_alive(pid):
    """Whether a process with id ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def remove_stale_temporaries(folder, owned, log=None):
    """Remove the temporary files of :func:`atomic_output` in ``folder`` that a process which is
    no longer running left behind (killed while writing), for outputs ``owned`` names.

    Args:
        folder: the folder to clean (a missing folder has nothing to clean).
        owned: ``owned(name, suffix)`` is true for the final file names (and temporary
            suffixes) of the command's own outputs; other files are never touched.
        log: callable taking one line per removed file, or ``None``.

    Returns:
        The removed paths.
    """
    removed = []
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or not owned(match.group("name"), match.group("suffix")) \
                or pid_alive(int(match.group("pid"))):
            continue
        path = os.path.join(folder, name)
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
        if log is not None:
            log("removed %s, left by process %s that is no longer running" % (path, match.group("pid")))
    return removed


def write_error(path, error, what=""):
    """An ``OSError`` whose one-line message names ``path`` (and ``what`` it is).

    Args:
        path: the file that could not be written.
        error: the original exception (its ``strerror``, else its text, is the reason).
        what: words before the path, e.g. ``"checkpoint"``.

    Returns:
        ``OSError("cannot write <what> <path>: <reason>")`` with the original ``errno``.
    """
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    result = OSError("cannot write %s%s: %s" % (what + " " if what else "", path, reason))
    result.errno = getattr(error, "errno", None)  # kept out of the message: see OSError.__str__
    return result


def write_bytes_atomic(path, data, suffix="", what=""):
    """Write ``data`` (bytes) to ``path`` atomically, flushed to disk before the rename.

    Args:
        path: destination file.
        data: its content.
        suffix: ending of the temporary name (see :func:`atomic_output`).
        what: what the file is, for the error message (see :func:`write_error`).

    Raises:
        OSError: the file could not be written (disk full, no permission); the message names
            ``path``, the temporary file is removed and an earlier ``path`` is left as it was.
    """
    try:
        with atomic_output(path, suffix=suffix) as temporary:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as error:
        raise write_error(path, error, what)


def write_json_atomic(path, payload):
    """Write ``payload`` as indented, key-sorted JSON to ``path`` atomically.

    Raises:
        OSError: the file could not be written; the message names it.
    """
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
