"""Peak-memory estimates for one case, and a warning when the machine has less available.

The estimates are linear in the number of voxels of the case's grid, fitted to the peak
resident memory (``/usr/bin/time -v``) of the tiny preset on synthetic cases of
240x240x155 and 320x320x200 voxels, a brain filling 58% of the grid, on CPU:

========================  ==================  ===================
step                      fixed               per voxel
========================  ==================  ===================
predict (labels)          1.33 GB             112 bytes
``--save-probabilities``                      +30 bytes
evaluate                  0.07 GB             47 bytes
training cache build                          47 bytes
========================  ==================  ===================

(The cache build's figure is from a 512x512x400 volume, 4.9 GB; at 320x320x200 and below
training peaks at 2.1 GB whatever the volume, the model's own.) A larger brain box, or a larger model's activations, needs somewhat more; a smaller brain
less (a 512x512x400 volume measured 10.4 GB to predict where the estimate says 13.1 GB).
The estimate is an early warning, not a limit: the work goes ahead.
"""
import os

#: Fixed and per-voxel bytes of the steps (see the module's table).
PREDICT_BASE, PREDICT_PER_VOXEL = 1.33e9, 112.0
PROBABILITIES_PER_VOXEL = 30.0
EVALUATE_BASE, EVALUATE_PER_VOXEL = 0.07e9, 47.0
CACHE_BASE, CACHE_PER_VOXEL = 0.0, 47.0

GB = 1e9


def _voxels(shape):
    count = 1
    for size in shape[:3]:
        count *= int(size)
    return count


def predict_bytes(shape, probabilities=False):
    """Estimated peak bytes of predicting one case of this grid shape."""
    per_voxel = PREDICT_PER_VOXEL + (PROBABILITIES_PER_VOXEL if probabilities else 0.0)
    return PREDICT_BASE + per_voxel * _voxels(shape)


def evaluate_bytes(shape):
    """Estimated peak bytes of scoring one case of this grid shape."""
    return EVALUATE_BASE + EVALUATE_PER_VOXEL * _voxels(shape)


def cache_bytes(shape):
    """Estimated peak bytes of building one case's training cache entry."""
    return CACHE_BASE + CACHE_PER_VOXEL * _voxels(shape)


def _meminfo_available(path="/proc/meminfo"):
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available(root="/sys/fs/cgroup"):
    """Bytes left under a cgroup v2 memory limit, or ``None`` without one."""
    try:
        with open(os.path.join(root, "memory.max")) as handle:
            limit = handle.read().strip()
        if limit == "max":
            return None
        with open(os.path.join(root, "memory.current")) as handle:
            current = int(handle.read().strip())
        return max(int(limit) - current, 0)
    except (OSError, ValueError):
        return None


def available_bytes():
    """Memory this process can still use: the smaller of ``MemAvailable`` and what a cgroup
    limit leaves; ``None`` where neither can be read (not Linux)."""
    known = [value for value in (_meminfo_available(), _cgroup_available()) if value is not None]
    return min(known) if known else None


def shortage(what, needed, available=None):
    """A one-line warning when ``needed`` bytes exceed what is available, else ``None``.

    Args:
        what: the work, e.g. ``"predicting case X (512x512x400)"``.
        needed: the estimated peak bytes.
        available: bytes available (default :func:`available_bytes`; ``None``: unknown).
    """
    if available is None:
        available = available_bytes()
    if available is None or needed <= available:
        return None
    return ("warning: %s needs about %.1f GB at its peak and %.1f GB are available: it may be "
            "killed for lack of memory (free memory, crop the volume to the brain, or use a "
            "larger machine)" % (what, needed / GB, available / GB))


def warn_if_short(log, what, needed, available=None):
    """Log :func:`shortage`'s warning, if any; returns it (or ``None``)."""
    line = shortage(what, needed, available)
    if line:
        log(line)
    return line


def grid_shape(path):
    """The grid shape a NIfTI file's header declares (the data is not read), or ``None`` when
    the file cannot be read: its reader reports why."""
    import nibabel as nib

    try:
        return tuple(int(size) for size in nib.load(path).shape[:3])
    except Exception:  # missing or corrupt: reported by the loader that reads it next
        return None


def describe_shape(shape):
    """``"240x240x155"``."""
    return "x".join(str(int(size)) for size in shape[:3])
