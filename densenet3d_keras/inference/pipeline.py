"""Whole-case prediction of a list of cases: the case loop and the output files.

The run is a resolved :class:`~densenet3d_keras.inference.config.PredictConfig`.

Each case becomes ``<out>/<case id>.nii.gz``: uint8 labels {0, 1, 2, 4} (BraTS 2017-2021) or
{0, 1, 2, 3} (BraTS 2023; ``auto`` follows each case's own layout), on the flair's voxel grid
with its header (qform and sform). ``save_probabilities`` adds
``<out>/<case id>_probabilities.nii.gz``: float32 ``(X, Y, Z, 5)``, channel k the probability of
internal label k (a softmax over labels 0, 1, 2 and 4; channel 3, no label, is 0), so the argmax
of the file is the network's label map; voxels that were not scored have probability 1 for
channel 0.
With ``postprocess`` (a settings file of :mod:`densenet3d_keras.inference.postprocess`), the
label maps are postprocessed before they are written; probabilities stay the network's.
Every file is written under a temporary name and renamed into place.

How a case is segmented is the run's inferer's business
(:mod:`densenet3d_keras.inference.inferers`: patch windows, tiles, the box streamed in slabs,
and test-time mirroring and ensembles averaging those); the loop here loads it once, then
reads each case, asks the inferer for its segmentation and writes the files. With ``tta`` or
``ensemble`` the written probabilities are the averages. ``part_id`` / ``num_parts`` split a
run's cases between processes (:func:`part_of`).
"""
import json
import os
import tempfile
import time

from densenet3d_keras.core import memory
from densenet3d_keras.core.fileio import make_output_folder
from densenet3d_keras.core.labels import from_internal_labels
from densenet3d_keras.inference.inferers.registry import build_inferer
from densenet3d_keras.inference.output import write_nifti_like
from densenet3d_keras.inference.postprocess import apply_postprocessing, settings_from_dict
from generators.brats import discover_cases, load_case, resolve_case_list
from generators.volumes import load_case_volumes, load_nifti

PROBABILITIES_SUFFIX = "_probabilities"


def part_of(cases, part_id, num_parts):
    """The cases of one part of a run split ``num_parts`` ways.

    The case ids are sorted and part ``part_id`` takes every ``num_parts``-th of them starting
    at ``part_id`` (``sorted(ids)[part_id::num_parts]``), so parts ``0 .. num_parts - 1``
    together hold every case exactly once whatever order the cases were listed in.

    Args:
        cases: objects with a ``case_id`` (ids unique).
        part_id: ``0 <= part_id < num_parts``.
        num_parts: ``>= 1``.

    Returns:
        list of the part's cases, in the order of ``cases``.

    Raises:
        ValueError: a part id or count out of range.
    """
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise ValueError("part %r of %r: need 0 <= part id < number of parts"
                         % (part_id, num_parts))
    chosen = set(sorted(case.case_id for case in cases)[part_id::num_parts])
    return [case for case in cases if case.case_id in chosen]


def select_cases(config):
    """The input cases (N4-corrected if asked) and the same cases as given (for evaluation).

    Raises:
        FileNotFoundError, ValueError: a missing or incomplete case, or one listed twice.
    """
    require_label = config.evaluate
    if config.case_dir:
        cases = [load_case(config.case_dir, require_label=require_label)]
    else:
        names = resolve_case_list(config.root_path, config.case_list, default_name="")
        cases = discover_cases(config.root_path, names, require_label=require_label,
                               skip_incomplete=config.skip_incomplete)
    ids = [case.case_id for case in cases]
    duplicates = sorted(set(i for i in ids if ids.count(i) > 1))
    if duplicates:
        raise ValueError("case listed more than once: %s" % ", ".join(duplicates))
    inputs = [case.corrected() for case in cases] if config.n4correction else cases
    return inputs, cases


def prepare_output(out_dir):
    """Create the output folder and check that files can be written in it.

    Returns:
        True when this call created the folder.

    Raises:
        OSError: the folder cannot be created or written (the message names it).
    """
    created = make_output_folder(out_dir)
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=out_dir)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        remove_if_empty(out_dir, created)
        raise OSError("cannot write to output folder %s: %s" % (out_dir, error.strerror or error))
    return created


def remove_if_empty(out_dir, created):
    """Remove ``out_dir`` again if this run ``created`` it and it is still empty."""
    if created:
        try:
            os.rmdir(out_dir)
        except OSError:
            pass


def final_labels(config, labels):
    """The internal label map to write: ``labels`` postprocessed as the run's settings say.

    Args:
        config: :class:`~densenet3d_keras.inference.config.PredictConfig` (``postprocess_settings`` ``None``: unchanged).
        labels: uint8 internal label map of the network.

    Returns:
        uint8 internal label map (a new array when postprocessed).
    """
    if not config.postprocess_settings:
        return labels
    return apply_postprocessing(labels, settings_from_dict(config.postprocess_settings))


def write_case(config, case, volumes, segmentation, method):
    """Write a case's label map (and probabilities); returns the paths written.

    Args:
        config: :class:`~densenet3d_keras.inference.config.PredictConfig`.
        case: the case (:class:`generators.brats.Case`): its id and label convention.
        volumes: its :class:`generators.volumes.CaseVolumes` (the header written).
        segmentation: its :class:`~densenet3d_keras.inference.predict.Segmentation`.
        method: what segmented it, for the files' descriptions (the inferer's
            :meth:`~densenet3d_keras.inference.inferers.base.Inferer.describe`).

    Returns:
        list of the paths written.
    """
    convention = (case.label_convention if config.label_convention == "auto"
                  else config.label_convention)
    labels = from_internal_labels(final_labels(config, segmentation.labels), convention)
    description = "%s labels (%s)" % (method, convention)
    written = [os.path.join(config.out, case.case_id + ".nii.gz")]
    write_nifti_like(written[0], labels, volumes.header, description)
    if config.save_probabilities:
        written.append(os.path.join(config.out, case.case_id + PROBABILITIES_SUFFIX + ".nii.gz"))
        write_nifti_like(written[1], segmentation.probabilities(), volumes.header,
                         "%s softmax of labels 0-4" % method)
    return written


def check_inputs(config, inputs, cases, log=print):
    """Read every case through the loader prediction uses, and discard it.

    A bad case (missing or corrupt file, grids that differ, NaN or infinite voxels, values
    out of float32 range, an empty brain) or, with ``evaluate``, a bad label map (grid,
    non-integer values, labels outside the convention) then stops the run before the first
    prediction is written. One case is in memory at a time; it is decoded again when it is
    predicted, which costs a few seconds per case next to the prediction itself. A case whose
    estimated peak memory (:func:`densenet3d_keras.core.memory.predict_bytes`) exceeds what the
    machine has available gets a warning line; the run goes ahead.

    Raises:
        FileNotFoundError, ValueError: from :func:`generators.volumes.load_case_volumes`,
            naming the file.
    """
    started = time.time()
    for case, original in zip(inputs, cases):
        volumes = load_case_volumes(case, with_label=config.evaluate, cavity_ok=True)
        memory.warn_if_short(log, "predicting case %s (%s)"
                             % (case.case_id, memory.describe_shape(volumes.shape)),
                             memory.predict_bytes(volumes.shape, config.save_probabilities))
        if config.overlays and original.images["flair"] != case.images["flair"]:
            # Overlays are drawn on the original flair, not on the N4-corrected one read here.
            flair, _ = load_nifti(original.images["flair"])
            if flair.shape != volumes.shape:
                raise ValueError("case %s: flair %s has shape %s but %s has %s"
                                 % (case.case_id, original.images["flair"], flair.shape,
                                    case.images["flair"], volumes.shape))
            del flair
        del volumes
    log("%d case(s) checked%s in %.1f s" % (len(inputs), " with their label maps"
                                            if config.evaluate else "", time.time() - started))


def predict_cases(config, inferer, inputs, progress_for=None, log=print):
    """Segment every input case with a loaded inferer and write its files.

    Args:
        config: :class:`~densenet3d_keras.inference.config.PredictConfig`.
        inferer: the run's :class:`~densenet3d_keras.inference.inferers.base.Inferer`, loaded.
        inputs: cases to read (see :func:`select_cases`).
        progress_for: ``progress_for(label, unit)`` returns a ``progress(done, total)``
            callback for one case, or ``None`` for no progress output.
        log: callable taking one line.

    Returns:
        The paths written.
    """
    written = []
    started = time.time()
    for index, case in enumerate(inputs, 1):
        volumes = load_case_volumes(case, with_label=False)
        label = "[%d/%d] %s" % (index, len(inputs), case.case_id)
        progress = progress_for(label, inferer.unit) if progress_for is not None else None
        segmentation = inferer.segment(volumes, progress)
        written += write_case(config, case, volumes, segmentation, inferer.describe())
        log("%s: %s, %s in %.1f s -> %s" % (label, "x".join(str(s) for s in volumes.shape),
                                           inferer.describe_passes(segmentation), segmentation.seconds,
                                           os.path.join(config.out, case.case_id + ".nii.gz")))
        del volumes, segmentation
    log("%d case(s) segmented in %.1f s" % (len(inputs), time.time() - started))
    return written


def remove_derived(out_dir, derived, case_ids, log=print):
    """Remove the files in ``out_dir`` that were computed from earlier predictions there
    (an evaluation's ``metrics.csv``, ``summary.json``, overlays), so that none is left
    describing label maps this run replaces.

    Args:
        out_dir: the output folder.
        derived: file names relative to ``out_dir``; ``{case}`` in one stands for each case id.
        case_ids: the cases this run predicts.
        log: callable taking one line, if anything was removed.

    Returns:
        The removed paths.
    """
    removed = []
    for template in derived:
        names = [template.format(case=case) for case in case_ids] if "{case}" in template else [template]
        for name in names:
            path = os.path.join(out_dir, name)
            if os.path.isfile(path):
                os.remove(path)
                removed.append(path)
    if removed:
        log("removed %s of an earlier evaluation in %s: %s described the predictions this run "
            "replaces" % (", ".join(os.path.relpath(p, out_dir) for p in removed), out_dir,
                          "they" if len(removed) > 1 else "it"))
    return removed


def run(config, progress_for=None, log=print, derived=()):
    """Select the cases, prepare the output folder and predict. Returns ``(cases, written)``.

    With ``num_parts`` > 1 only the cases of :func:`part_of` are predicted and returned; a
    part without cases logs so and returns ``([], [])`` without touching the output folder.
    Before anything is written: the output folder, every checkpoint (the run's inferer,
    :func:`~densenet3d_keras.inference.inferers.registry.build_inferer`, loaded), then every
    input (:func:`check_inputs`). Then the files ``derived`` names are removed
    (:func:`remove_derived`). An output folder this call created is removed again if nothing
    was written.
    """
    inputs, cases = select_cases(config)
    log("predict: " + json.dumps(config.to_dict(), sort_keys=True))
    if config.num_parts > 1:
        total = len(cases)
        inputs = part_of(inputs, config.part_id, config.num_parts)
        cases = part_of(cases, config.part_id, config.num_parts)
        log("part %d of %d: %d of the run's %d case(s)%s"
            % (config.part_id, config.num_parts, len(cases), total,
               "" if cases else ", nothing to do"))
        if not cases:
            return [], []
    created = prepare_output(config.out)
    written = []
    try:
        inferer = build_inferer(config)
        inferer.load(log)
        check_inputs(config, inputs, cases, log)
        remove_derived(config.out, derived, [case.case_id for case in cases], log)
        written = predict_cases(config, inferer, inputs, progress_for, log)
    finally:
        if not written:
            remove_if_empty(config.out, created)
    return cases, written
