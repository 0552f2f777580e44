"""Cache of preprocessed cases as memory-mapped ``.npy`` files.

Decoding four gzip-compressed NIfTI volumes takes seconds per case; an epoch should not pay
that again. Each case is normalised once and stored under ``<cache dir>/<case>-<key>/``:
``image.npy`` (float32, ``(D, H, W, 4)``), ``label.npy`` (uint8), ``positives.npy`` and
``negatives.npy`` (int64 flat indices of the sampling pools) and ``meta.json``. The entry is
rebuilt when any source file's path, size or modification time changes, and when an array
file is missing, truncated or damaged (with a log line). ``meta.json`` is
written last, after every array was renamed into place, so an interrupted build is never
mistaken for a complete one.
"""
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np

from densenet3d_keras.core import memory
from densenet3d_keras.core.geometry import PATCH_SIZE
from generators.volumes import load_case_volumes, pad_to_minimum

CACHE_VERSION = 1


def default_cache_dir():
    """``$DENSENET3D_CACHE``, else ``$XDG_CACHE_HOME/densenet3d_keras``, else ``~/.cache/...``."""
    if os.environ.get("DENSENET3D_CACHE"):
        return os.environ["DENSENET3D_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "densenet3d_keras")


class CachedCase(object):
    """A preprocessed case, arrays memory-mapped read-only.

    Attributes:
        case_id: case folder name.
        image: ``(D, H, W, 4)`` float32 normalised image (padded to the patch size if smaller).
        label: ``(D, H, W)`` uint8 internal labels.
        positives: flat indices of voxels with label > 0.
        negatives: flat indices of voxels with label 0 and flair > 0.
        background: ``(4,)`` per-channel background value.
        offset: index of the original volume's first voxel inside the (padded) arrays.
    """

    def __init__(self, case_id, image, label, positives, negatives, background, offset):
        self.case_id = case_id
        self.image = image
        self.label = label
        self.positives = positives
        self.negatives = negatives
        self.background = background
        self.offset = offset

    @property
    def shape(self):
        return self.image.shape[:3]


def _source_stats(case):
    paths = list(case.images.values()) + ([case.label] if case.label else [])
    stats = []
    for path in paths:
        info = os.stat(path)
        stats.append({"path": os.path.abspath(path), "size": info.st_size,
                      "mtime_ns": getattr(info, "st_mtime_ns", int(info.st_mtime * 1e9))})
    return stats


def _entry_dir(cache_dir, case):
    sources = "\n".join(sorted(os.path.abspath(p) for p in case.images.values()))
    key = hashlib.sha1(sources.encode("utf-8")).hexdigest()[:10]
    return os.path.join(cache_dir, "%s-%s" % (case.case_id, key))


def _is_valid(entry, stats, minimum):
    meta_path = os.path.join(entry, "meta.json")
    if not os.path.isfile(meta_path):
        return None
    try:
        with open(meta_path) as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    if (meta.get("version") != CACHE_VERSION or meta.get("sources") != stats
            or meta.get("minimum") != minimum):
        return None
    return meta


def _build(case, entry, stats, minimum, log=None):
    shape = memory.grid_shape(case.images["flair"])
    if shape is not None:
        memory.warn_if_short(log or _report, "preprocessing case %s (%s) for training"
                             % (case.case_id, memory.describe_shape(shape)), memory.cache_bytes(shape))
    volumes = load_case_volumes(case, with_label=True)
    image, label, offset = pad_to_minimum(volumes.image, volumes.label, volumes.background, minimum)
    brain = volumes.brain
    if image.shape[:3] != volumes.shape:
        brain, _, _ = pad_to_minimum(brain[..., None], None, [False], minimum)
        brain = brain[..., 0]
    label_flat = label.reshape(-1)
    positives = np.flatnonzero(label_flat > 0)
    negatives = np.flatnonzero((label_flat == 0) & brain.reshape(-1))
    if positives.size == 0 and negatives.size == 0:
        raise ValueError("case %s has an empty brain (flair is zero everywhere)" % case.case_id)
    parent = os.path.dirname(entry)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".%s." % os.path.basename(entry), dir=parent)
    try:
        arrays = {"image": image.astype(np.float32), "label": label.astype(np.uint8),
                  "positives": positives.astype(np.int64), "negatives": negatives.astype(np.int64)}
        for name, array in arrays.items():
            np.save(os.path.join(staging, name + ".npy"), array)
        meta = {"version": CACHE_VERSION, "case_id": case.case_id, "sources": stats,
                "minimum": minimum, "shape": list(image.shape[:3]),
                "original_shape": list(volumes.shape), "offset": [int(o) for o in offset],
                "background": [float(b) for b in volumes.background]}
        with open(os.path.join(staging, "meta.json"), "w") as handle:
            json.dump(meta, handle, indent=1)
        if os.path.isdir(entry):
            shutil.rmtree(entry)
        os.rename(staging, entry)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta


def _report(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _open_entry(case, entry, meta):
    """Memory-map an entry's arrays and check them against ``meta.json``.

    Raises:
        ValueError, OSError: a missing, truncated or otherwise damaged array file (the
            message names it).
    """
    shape = tuple(meta["shape"])
    expected = (("image", np.float32, shape + (4,)), ("label", np.uint8, shape),
                ("positives", np.int64, None), ("negatives", np.int64, None))
    arrays = {}
    for name, dtype, wanted in expected:
        path = os.path.join(entry, name + ".npy")
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as error:  # e.g. "mmap length is greater than file size"
            raise ValueError("%s: %s" % (path, str(error).strip() or type(error).__name__))
        if array.dtype != dtype or (wanted is not None and array.shape != wanted) \
                or (wanted is None and array.ndim != 1):
            raise ValueError("%s holds %s %s, expected %s %s"
                             % (path, array.dtype, array.shape, np.dtype(dtype),
                                wanted if wanted is not None else "(N,)"))
        arrays[name] = array
    return CachedCase(case.case_id, arrays["image"], arrays["label"], arrays["positives"],
                      arrays["negatives"], np.asarray(meta["background"], np.float32),
                      tuple(meta["offset"]))


def _build_or_raise(case, entry, stats, minimum, cache_dir, log=None):
    try:
        return _build(case, entry, stats, minimum, log)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise OSError("cannot write the preprocessing cache %s: %s" % (cache_dir, error))


def load_cached(case, cache_dir=None, minimum=PATCH_SIZE, log=_report):
    """Return the :class:`CachedCase` for ``case``, building the cache entry if needed.

    An entry whose arrays are missing, truncated or damaged (``meta.json`` intact, e.g. a disk
    that filled up or a copied cache) is rebuilt, with one line through ``log``.

    Args:
        case: a labelled :class:`~generators.brats.Case`.
        cache_dir: cache root (default :func:`default_cache_dir`).
        minimum: pad every axis to at least this size (the patch size).
        log: called with one line when a damaged entry is rebuilt, or when building an entry
            may need more memory than is available (default: stderr).

    Raises:
        FileNotFoundError, ValueError: from loading the case (missing, corrupt or invalid files).
        OSError: the cache folder cannot be written (the message names it), or a rebuilt entry
            still cannot be read (the message names the file).
    """
    cache_dir = cache_dir or default_cache_dir()
    stats = _source_stats(case)
    entry = _entry_dir(cache_dir, case)
    meta = _is_valid(entry, stats, minimum)
    if meta is None:
        meta = _build_or_raise(case, entry, stats, minimum, cache_dir, log)
    try:
        return _open_entry(case, entry, meta)
    except ValueError as error:
        log("preprocessing cache entry of case %s is damaged (%s); rebuilding it"
            % (case.case_id, error))
    meta = _build_or_raise(case, entry, stats, minimum, cache_dir, log)
    try:
        return _open_entry(case, entry, meta)
    except ValueError as error:
        raise OSError("preprocessing cache entry %s cannot be read even after rebuilding it: %s"
                      % (entry, error))
