"""N4 bias-field correction of BraTS modalities with SimpleITK (replaces the ANTs binary).

The reference ran ANTs ``N4BiasFieldCorrection -d 3 -s 3 -c [50x50x30x20] -b [300]`` on each
of flair, t1, t1ce and t2 and wrote ``<case>_<modality>_corrected.nii.gz`` beside the
original (docs/spec.md). This module does the same with ``sitk.N4BiasFieldCorrectionImageFilter``:

* the bias field is estimated on the image shrunk by ``shrink_factor`` (``sitk.Shrink``) and
  evaluated at full resolution (``GetLogBiasFieldAsImage``); the corrected image is
  ``image / exp(log_field)``, so background voxels (0) stay 0;
* the voxels used for the estimate are the mask (default: every nonzero voxel) restricted to
  positive intensities, because N4 works on ``log(intensity)`` and ITK leaves nonpositive
  voxels un-logged (they would corrupt the histogram);
* one fitting level per entry of ``iterations`` (``50x50x30x20`` -> 4 levels), as ANTs does;
* ANTs' ``-b [300]`` (a B-spline knot distance in mm) becomes a number of control points per
  axis: ``ceil(extent / distance) + spline order`` with ``extent = (size - 1) * spacing`` of
  the full-resolution image, the formula ANTs uses (:func:`control_points_for_distance`).
  ANTs additionally zero-pads the image so that each span is exactly ``distance`` mm long;
  here the lattice spans the image itself (for BraTS, 240 x 240 x 155 at 1 mm and 300 mm:
  4 control points per axis either way, with spans of 239 / 239 / 154 mm instead of 300);
* the convergence threshold defaults to 0, what ANTs uses when ``-c`` gives only the
  iterations (as the reference did), so every level runs all its iterations. SimpleITK's own
  default is 0.001. The histogram-sharpening settings (FWHM 0.15, Wiener noise 0.01, 200 bins)
  are the ITK defaults, which ANTs shares.

Other differences from the reference command: ANTs without ``-x`` estimates over the whole
image including the zero background; this module estimates over the nonzero voxels only.

Command line::

    python -m generators.n4 <dataset root> [--workers N] [--list train.txt] [--overwrite]
        [--skip-incomplete]
        [--shrink-factor 3] [--iterations 50x50x30x20] [--spline-distance 300]
        [--convergence-threshold 0] [--modalities flair,t2,t1,t1ce]

Cases run in spawned worker processes, each limited to ``CPUs // workers`` SimpleITK threads.
Exit codes: 0 every case succeeded, 1 at least one case failed (the others are still
corrected), 2 bad arguments or dataset, 130 interrupted.

Interrupts: outputs are written to a hidden temporary file and renamed, so a ``_corrected``
file is never truncated. On Ctrl-C or SIGTERM, N4 (which ignores ITK's Abort()) is stopped at
its next iteration through an iteration callback, temporary files are removed, and a rerun
skips the outputs already written.

Workers never outlive the main process: each asks the kernel for SIGTERM when its parent
dies (Linux ``PR_SET_PDEATHSIG``) and also polls its parent id from a watchdog thread
(elsewhere). On SIGTERM a worker stops its N4 at the next iteration, removes its temporary
file and exits, also when the main process was killed with SIGKILL.
"""
import contextlib
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import List, Optional, Sequence, Tuple  # noqa: F401 (type comments)

import numpy as np
import SimpleITK as sitk

from densenet3d_keras.core.errors import first_line
from densenet3d_keras.core.fileio import atomic_output, remove_stale_temporaries
from densenet3d_keras.core.labels import MODALITIES
from generators.brats import corrected_path, split_nifti_extension
from generators.volumes import load_nifti

#: Reference settings (ANTs ``-s 3 -c [50x50x30x20] -b [300]``).
DEFAULT_SHRINK_FACTOR = 3
DEFAULT_ITERATIONS = (50, 50, 30, 20)
DEFAULT_SPLINE_DISTANCE_MM = 300.0
#: ANTs sets 0 when ``-c`` names only the iterations: every iteration runs.
DEFAULT_CONVERGENCE_THRESHOLD = 0.0
#: ITK / ANTs default number of bins of the intensity histogram that N4 sharpens.
DEFAULT_HISTOGRAM_BINS = 200
SPLINE_ORDER = 3
#: The reference corrected all four modalities.
DEFAULT_MODALITIES = MODALITIES
MAX_DEFAULT_WORKERS = 4

STATUS_CORRECTED = "corrected"
STATUS_SKIPPED = "skipped"


# ----------------------------------------------------------------------------------------------
# Pure helpers


def control_points_for_distance(size, spacing, spline_distance_mm, spline_order=SPLINE_ORDER):
    # type: (Sequence[int], Sequence[float], float, int) -> Tuple[int, ...]
    """Number of B-spline control points per axis for a knot distance in millimetres.

    ANTs' mapping: a physical extent of ``(size - 1) * spacing`` needs
    ``ceil(extent / distance)`` spans (at least one), and a B-spline of order ``k`` over ``n``
    spans has ``n + k`` control points.

    Args:
        size: voxels per axis.
        spacing: voxel size per axis in mm (same axis order as ``size``).
        spline_distance_mm: wanted distance between knots, in mm.
        spline_order: B-spline order (3, cubic).

    Returns:
        Tuple of control-point counts, one per axis of ``size``.

    Raises:
        ValueError: non-positive distance, size or spacing, or mismatched lengths.
    """
    if not spline_distance_mm > 0:
        raise ValueError("spline distance must be > 0 mm, got %r" % (spline_distance_mm,))
    if len(size) != len(spacing):
        raise ValueError("size %s and spacing %s have different lengths" % (tuple(size), tuple(spacing)))
    points = []
    for voxels, step in zip(size, spacing):
        if voxels < 1 or not step > 0:
            raise ValueError("invalid size %s / spacing %s" % (tuple(size), tuple(spacing)))
        extent = (voxels - 1) * float(step)
        # A small tolerance keeps extent == k * distance at k spans despite rounding.
        spans = max(1, int(math.ceil(extent / float(spline_distance_mm) - 1e-9)))
        points.append(spans + int(spline_order))
    return tuple(points)


def parse_iterations(text):
    # type: (str) -> Tuple[int, ...]
    """Parse an ANTs-style iteration schedule such as ``50x50x30x20``.

    Raises:
        ValueError: empty, non-integer or non-positive entries.
    """
    parts = str(text).strip().lower().split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError("iterations %r: expected positive integers joined by 'x', e.g. 50x50x30x20"
                         % (text,))
    if not values or any(value < 1 for value in values):
        raise ValueError("iterations %r: every level needs at least 1 iteration" % (text,))
    return values


def format_iterations(iterations):
    # type: (Sequence[int]) -> str
    """The ANTs spelling of an iteration schedule: ``(50, 50, 30, 20)`` -> ``50x50x30x20``."""
    return "x".join(str(int(value)) for value in iterations)


def parse_modalities(text):
    # type: (str) -> Tuple[str, ...]
    """Parse a comma-separated modality list (``flair,t2,t1,t1ce``).

    Raises:
        ValueError: an unknown or repeated modality, or an empty list.
    """
    names = tuple(name.strip().lower() for name in str(text).split(",") if name.strip())
    if not names:
        raise ValueError("no modality given (choose from %s)" % ", ".join(MODALITIES))
    unknown = [name for name in names if name not in MODALITIES]
    if unknown:
        raise ValueError("unknown modality %s (choose from %s)" % (", ".join(unknown), ", ".join(MODALITIES)))
    if len(set(names)) != len(names):
        raise ValueError("modality listed twice in %r" % (text,))
    return names


def _check_parameters(shrink_factor, iterations, spline_distance_mm, convergence_threshold,
                      histogram_bins):
    if int(shrink_factor) != shrink_factor or shrink_factor < 1:
        raise ValueError("shrink factor must be an integer >= 1, got %r" % (shrink_factor,))
    iterations = tuple(iterations)
    if not iterations or any(int(value) != value or value < 1 for value in iterations):
        raise ValueError("iterations must be a non-empty sequence of integers >= 1, got %r"
                         % (iterations,))
    if not spline_distance_mm > 0:
        raise ValueError("spline distance must be > 0 mm, got %r" % (spline_distance_mm,))
    if not convergence_threshold >= 0:
        raise ValueError("convergence threshold must be >= 0, got %r" % (convergence_threshold,))
    if int(histogram_bins) != histogram_bins or histogram_bins < 2:
        raise ValueError("histogram bins must be an integer >= 2, got %r" % (histogram_bins,))


# ----------------------------------------------------------------------------------------------
# Library

#: Stop requests, only ever set by the command line's processes (a library caller never sees
#: them set): a signal noted in this process, and the pool's event shared with the workers.
_SIGNALLED = threading.Event()
_STOP = None
#: Worker processes only: the process must end (SIGTERM, or the main process died), and a
#: case is being processed (the watchdog waits for it to stop before ending the process).
_TERMINATE = threading.Event()
_BUSY = threading.Event()
#: How often a worker checks that its parent is alive, and how long a terminating worker
#: waits for its running N4 to stop and clean up before it exits anyway.
PARENT_POLL_SECONDS = 0.5
TERMINATE_GRACE_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _Stopped(KeyboardInterrupt):
    """Raised inside N4's iteration callback to stop it (SimpleITK reports a RuntimeError)."""


def _stop_requested():
    return _SIGNALLED.is_set() or (_STOP is not None and _STOP.is_set())


def _raise_if_stop_requested():
    if _stop_requested():
        raise _Stopped("stop requested")


def _quiet_interrupts(kind, value, traceback):
    """``sys.excepthook`` for the command's processes: SimpleITK prints the exception that
    ended a callback through the hook; an interrupt is expected there, not a crash."""
    if not issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)


def _as_sitk_image(image, spacing):
    """Return (float32 SimpleITK image, its array in SimpleITK's (z, y, x) order)."""
    if isinstance(image, sitk.Image):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError("expected a scalar 3-D image, got dimension %d with %d components"
                             % (image.GetDimension(), image.GetNumberOfComponentsPerPixel()))
        if spacing is not None and not np.allclose(spacing, image.GetSpacing()):
            raise ValueError("spacing %s differs from the image's own spacing %s"
                             % (tuple(spacing), image.GetSpacing()))
        result = sitk.Cast(image, sitk.sitkFloat32)
        return result, sitk.GetArrayFromImage(result)
    array = np.asarray(image)
    if array.ndim != 3:
        raise ValueError("expected a 3-D volume, got shape %s" % (array.shape,))
    if spacing is None or len(spacing) != 3:
        raise ValueError("a numpy volume needs its voxel spacing (3 values in mm), got %r" % (spacing,))
    array = np.ascontiguousarray(array, dtype=np.float32)
    # GetImageFromArray reads array axes (0, 1, 2) as SimpleITK axes (z, y, x).
    result = sitk.GetImageFromArray(array)
    result.SetSpacing(tuple(float(step) for step in reversed(tuple(spacing))))
    return result, array


def _mask_array(mask, shape):
    if isinstance(mask, sitk.Image):
        mask = sitk.GetArrayFromImage(mask)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise ValueError("mask shape %s differs from the image shape %s" % (mask.shape, tuple(shape)))
    return mask != 0


def correct_volume(image, spacing=None, shrink_factor=DEFAULT_SHRINK_FACTOR,
                   iterations=DEFAULT_ITERATIONS, spline_distance_mm=DEFAULT_SPLINE_DISTANCE_MM,
                   mask=None, convergence_threshold=DEFAULT_CONVERGENCE_THRESHOLD,
                   histogram_bins=DEFAULT_HISTOGRAM_BINS):
    """N4-correct one volume: estimate the bias field on a shrunk copy, divide at full size.

    Args:
        image: 3-D numpy array, or a scalar 3-D ``SimpleITK.Image``.
        spacing: voxel size in mm per array axis (required for an array; for a SimpleITK image
            ``None`` or equal to the image's spacing).
        shrink_factor: integer subsampling factor per axis for the estimate (ANTs ``-s``).
        iterations: maximum iterations per fitting level; its length is the number of levels
            (ANTs ``-c [50x50x30x20]``).
        spline_distance_mm: B-spline knot distance in mm (ANTs ``-b [300]``); see
            :func:`control_points_for_distance`.
        mask: optional array (same shape as the image array) or SimpleITK image; nonzero marks
            voxels used for the estimate. Default: the nonzero voxels. Either way only voxels
            with positive intensity are used.
        convergence_threshold: stop a level early when the field changes less than this
            (0: run every iteration, like ANTs).
        histogram_bins: bins of the intensity histogram N4 sharpens.

    Returns:
        (corrected, bias_field): float32 arrays shaped like the input array (for a SimpleITK
        input: like ``sitk.GetArrayFromImage(image)``, axes z, y, x). ``corrected = image /
        bias_field``; voxels that were 0 stay 0. The field is defined up to a global scale.

    Raises:
        ValueError: bad parameters, a non-3-D image, NaN/infinite values, a mask of the wrong
            shape, or no positive voxel to estimate from.
        RuntimeError: SimpleITK failed.
    """
    _check_parameters(shrink_factor, iterations, spline_distance_mm, convergence_threshold,
                      histogram_bins)
    full, array = _as_sitk_image(image, spacing)
    if not np.all(np.isfinite(array)):
        raise ValueError("the volume contains NaN or infinite values")
    estimate = array > 0
    if mask is not None:
        estimate &= _mask_array(mask, array.shape)
    if not estimate.any():
        raise ValueError("no voxel with positive intensity%s to estimate the bias field from"
                         % ("" if mask is None else " inside the mask"))
    mask_image = sitk.GetImageFromArray(estimate.astype(np.uint8))
    mask_image.CopyInformation(full)

    factors = [int(min(shrink_factor, size)) for size in full.GetSize()]
    _check_thickness(array.shape[::-1], factors)
    small = sitk.Shrink(full, factors)
    small_mask = sitk.Shrink(mask_image, factors)
    if not sitk.GetArrayViewFromImage(small_mask).any():
        raise ValueError("the mask has no voxel left after shrinking by %d" % shrink_factor)

    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(value) for value in iterations])
    corrector.SetSplineOrder(SPLINE_ORDER)
    corrector.SetNumberOfControlPoints(
        list(control_points_for_distance(full.GetSize(), full.GetSpacing(), spline_distance_mm)))
    corrector.SetConvergenceThreshold(float(convergence_threshold))
    corrector.SetNumberOfHistogramBins(int(histogram_bins))
    # A callback per iteration lets Python run signal handlers during the C++ filter, and
    # raising in it is the only way to stop N4 early (ITK's N4 ignores Abort()).
    corrector.AddCommand(sitk.sitkIterationEvent, _raise_if_stop_requested)
    try:
        corrector.Execute(small, small_mask)
    except RuntimeError as error:
        # The callback fails only by an interrupt: ours, or a default Ctrl-C handler's.
        if _stop_requested() or "Python Callable" in str(error):
            raise KeyboardInterrupt("N4 correction interrupted")
        raise

    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(full))
    bias_field = np.exp(log_field).astype(np.float32)
    corrected = (array / bias_field).astype(np.float32)
    corrected[array == 0] = 0
    return corrected, bias_field


def _check_thickness(size, factors):
    """Refuse a volume that N4's B-spline cannot span: every axis needs at least 2 voxels after
    shrinking (ITK otherwise stops with "Zero-valued spacing is not supported").

    Args:
        size: voxels per axis, in SimpleITK's (x, y, z) order.
        factors: the shrink factor per axis.

    Raises:
        ValueError: the thinnest axis, its size and what it shrinks to.
    """
    for axis, (voxels, factor) in enumerate(zip(size, factors)):
        if voxels // factor < 2:
            raise ValueError("the volume is too thin for N4: its axis %d has %d voxel(s), %d after "
                             "shrinking by %d; N4 needs at least 2 per axis after shrinking "
                             "(a thicker volume, or --shrink-factor 1 for 2 or 3 voxels)"
                             % (2 - axis, voxels, voxels // factor, factor))


def _write_like(array, reference, path):
    """Write ``array`` as float32 NIfTI at ``path`` with the geometry of nibabel ``reference``."""
    import nibabel as nib

    header = reference.header.copy()
    header.set_data_dtype(np.float32)
    klass = type(reference) if isinstance(reference, nib.Nifti1Image) else nib.Nifti1Image
    if klass is not type(reference):
        header = None
    image = klass(np.asarray(array, dtype=np.float32), reference.affine, header)
    image.header.set_slope_inter(1.0, 0.0)
    nib.save(image, path)


def correct_file(src, dst, **params):
    """Correct one NIfTI file and write the float32 result atomically.

    The result goes to a temporary file in the folder of ``dst`` which is then renamed over
    ``dst`` (``os.replace``), so an interrupted run never leaves a truncated ``dst``; the
    temporary file is removed on any error. ``src`` is only read.

    Args:
        src: input ``.nii`` / ``.nii.gz`` file.
        dst: output path (``.nii`` or ``.nii.gz``); may not be ``src``.
        **params: keyword arguments of :func:`correct_volume` (not ``mask``).

    Returns:
        ``dst``.

    Raises:
        FileNotFoundError: ``src`` is missing.
        ValueError: ``src`` is unreadable or not 3-D, the correction failed, or ``dst`` has no
            NIfTI extension or equals ``src``; the message names the file.
    """
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("refusing to overwrite the original %s" % src)
    _, extension = split_nifti_extension(os.path.basename(dst))
    if not extension:
        raise ValueError("output %s must end in .nii.gz or .nii" % dst)
    data, reference = load_nifti(src, np.float32)
    spacing = tuple(float(step) for step in reference.header.get_zooms()[:3])
    try:
        corrected, _ = correct_volume(data, spacing, **params)
    except (ValueError, RuntimeError) as error:
        raise ValueError("N4 correction of %s failed: %s" % (src, first_line(error)))

    with atomic_output(dst, suffix=extension) as temporary:
        _write_like(corrected, reference, temporary)
    return dst


def remove_stale_outputs(case, log=None):
    """Remove the temporary files of corrected outputs in a case folder that a killed N4 process
    left behind (one line each to stderr, or to ``log``); returns their paths."""
    targets = set(os.path.basename(corrected_path(path)) for path in case.images.values())
    folder = os.path.dirname(os.path.abspath(case.images["flair"]))
    return remove_stale_temporaries(folder, lambda name, suffix: name in targets, log or _note)


def _note(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def correct_case(case, overwrite=False, modalities=DEFAULT_MODALITIES, **params):
    """Correct the modalities of one case, writing ``corrected_path(original)`` beside each.

    Args:
        case: a :class:`~generators.brats.Case` (originals are never modified).
        overwrite: recompute outputs that already exist (default: skip them).
        modalities: which modalities to correct (default: all four).
        **params: keyword arguments of :func:`correct_volume`.

    Returns:
        OrderedDict modality -> ``"corrected"`` or ``"skipped"``.

    Raises:
        FileNotFoundError, ValueError: from :func:`correct_file`, naming the file; the
            modalities before the failing one are already written.
    """
    statuses = OrderedDict()
    remove_stale_outputs(case)
    for modality in modalities:
        if modality not in case.images:
            raise ValueError("unknown modality %r for case %s" % (modality, case.case_id))
        source = case.images[modality]
        target = corrected_path(source)
        if os.path.exists(target) and not overwrite:
            statuses[modality] = STATUS_SKIPPED
            continue
        correct_file(source, target, **params)
        statuses[modality] = STATUS_CORRECTED
    return statuses


# ----------------------------------------------------------------------------------------------
# Running many cases (the command line is densenet3d_keras.cli.n4)




def available_cpus():
    # type: () -> int
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(workers, cpus=None):
    # type: (int, Optional[int]) -> int
    """SimpleITK threads for each of ``workers`` processes so that workers x threads ~ CPUs."""
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, workers))


def _interrupt(signum, frame):
    """SIGTERM handler of the pool's main process: unwind like Ctrl-C."""
    raise KeyboardInterrupt("signal %d" % signum)


def _note_signal(signum, frame):
    """SIGINT/SIGTERM handler of processes running N4: N4 polls the flag once per iteration."""
    _SIGNALLED.set()


def _set_parent_death_signal(signum):
    # type: (int) -> bool
    """Linux: have the kernel send ``signum`` to this process when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``). Returns False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _terminate_worker(signum, frame):
    """SIGTERM handler of a worker process, also what the kernel sends when the main process
    dies: stop N4 at its next iteration; the watchdog then ends the process."""
    _SIGNALLED.set()
    _TERMINATE.set()


def _watchdog(parent):
    """Thread of a worker process: end the process when it was sent SIGTERM or its parent is
    gone (the portable check, polled), once no case is being processed. A running N4 stops
    at its next iteration and removes its temporary file first; an idle worker, blocked
    waiting for the next case, exits at once."""
    deadline = None
    while True:
        if os.getppid() != parent:
            _SIGNALLED.set()
            _TERMINATE.set()
        if not _TERMINATE.is_set():
            _TERMINATE.wait(PARENT_POLL_SECONDS)
            continue
        if deadline is None:
            deadline = time.time() + TERMINATE_GRACE_SECONDS
        if not _BUSY.is_set() or time.time() > deadline:
            os._exit(128 + signal.SIGTERM)
        time.sleep(0.05)


def _init_worker(threads, stop=None, parent=None):
    """Set up a process that runs cases: SimpleITK threads, stop event, signal handlers, and
    exit when the main process dies (even by SIGKILL), so that no orphan keeps running.

    Args:
        threads: SimpleITK threads of this process.
        stop: the pool's shared stop event.
        parent: process id of the main process (default: this process's parent).
    """
    global _STOP
    _STOP = stop
    _SIGNALLED.clear()
    _TERMINATE.clear()
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(int(threads))
    sys.excepthook = _quiet_interrupts
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:  # e.g. nohup: keep ignoring
        signal.signal(signal.SIGINT, _note_signal)
    signal.signal(signal.SIGTERM, _terminate_worker)
    parent = os.getppid() if parent is None else parent
    _set_parent_death_signal(signal.SIGTERM)
    # The parent may have died before prctl: the watchdog's first check sees that.
    watchdog = threading.Thread(target=_watchdog, args=(parent,), name="n4-parent-watchdog")
    watchdog.daemon = True
    watchdog.start()


def _process_case(case, overwrite, modalities, params):
    """Worker entry point: returns (statuses, seconds); checks for a stop between files."""
    start = time.time()
    statuses = OrderedDict()
    _BUSY.set()
    try:
        for modality in modalities:
            if _stop_requested():
                raise KeyboardInterrupt("stopped before %s of %s" % (modality, case.case_id))
            statuses.update(correct_case(case, overwrite=overwrite, modalities=(modality,),
                                         **params))
    finally:
        _BUSY.clear()
    return statuses, time.time() - start






def run_inline(cases, overwrite, modalities, params):
    """Correct the cases one after another in this process; yields
    ``(case, statuses, seconds, error)`` per case (a failing case does not stop the others)."""
    for case in cases:
        start = time.time()
        try:
            statuses, seconds = _process_case(case, overwrite, modalities, params)
        except Exception as error:  # reported per case; the run carries on
            yield case, None, time.time() - start, error
        else:
            yield case, statuses, seconds, None


def run_pool(cases, overwrite, modalities, params, workers, threads):
    """Correct the cases in ``workers`` spawned processes of ``threads`` SimpleITK threads each;
    yields ``(case, statuses, seconds, error)`` as cases finish."""
    # Spawned (not forked) workers: forking a process whose ITK thread pool already exists can
    # deadlock, and a fresh interpreter is cheap next to one N4 run.
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    starts = {}
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                   initializer=_init_worker,
                                   initargs=(threads, stop, os.getpid()))
    futures = OrderedDict()
    try:
        for case in cases:
            future = executor.submit(_process_case, case, overwrite, modalities, params)
            futures[future] = case
            starts[future] = time.time()
        for future in as_completed(futures):
            case = futures[future]
            try:
                statuses, seconds = future.result()
            except BrokenProcessPool:
                yield case, None, time.time() - starts[future], RuntimeError(
                    "worker process died (killed, or out of memory?)")
            except Exception as error:
                yield case, None, time.time() - starts[future], error
            else:
                yield case, statuses, seconds, None
    except BaseException:
        # Ctrl-C / SIGTERM: running N4s stop at their next iteration, their temporary outputs
        # are removed, and queued cases do not start.
        stop.set()
        raise
    finally:
        for future in futures:
            future.cancel()
        executor.shutdown(wait=True)







@contextlib.contextmanager
def interrupt_handling(workers):
    """Ctrl-C / SIGTERM handling of the main process for the length of a run.

    With one worker this process runs N4 and only notes the signal (N4 aborts at its next
    iteration); with a pool it unwinds at once and stops the workers. Ignored signals (nohup)
    stay ignored; the previous handlers are restored afterwards.
    """
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(number)
            if previous is None or previous == signal.SIG_IGN:
                continue
            handlers[number] = previous
            signal.signal(number, _note_signal if workers == 1 else
                          (_interrupt if number == signal.SIGTERM else signal.default_int_handler))
    _SIGNALLED.clear()
    excepthook = sys.excepthook
    if workers == 1:
        sys.excepthook = _quiet_interrupts
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        sys.excepthook = excepthook
        _SIGNALLED.clear()


def run_cases(cases, overwrite, modalities, params, workers, threads):
    """:func:`run_inline` with one worker, else :func:`run_pool`."""
    if workers == 1:
        sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(threads)
        return run_inline(cases, overwrite, modalities, params)
    return run_pool(cases, overwrite, modalities, params, workers, threads)
