#!/usr/bin/env python
"""Segment BraTS cases with a trained model and write BraTS submission files.

Usage::

    python predict_keras.py -m <checkpoint file or folder> -mn dense24
        (-r <dataset root> [--list test.txt] [--skip-incomplete] | -i <case dir>) -o <out dir>
        [--method fcn|patch] [--tile-size 88] [--batch-size N] [--padding auto|same|valid]
        [-nc true|false] [--label-convention auto|brats2017|brats2023]
        [--save-probabilities] [--evaluate] [--overlays]
    python predict_keras.py --demo

Writes ``<out>/<case id>.nii.gz`` per case: uint8 labels {0, 1, 2, 4} (BraTS 2017-2021) or
{0, 1, 2, 3} (BraTS 2023; ``auto`` follows each case's own layout), on the flair's voxel grid
with its header (qform and sform), so it overlays on the flair in any viewer.
``--save-probabilities`` adds ``<out>/<case id>_probabilities.nii.gz``: float32
``(X, Y, Z, 5)``, channel k the softmax probability of internal label k (0 background,
1 necrotic / non-enhancing core, 2 edema, 3 unused, 4 enhancing tumour, whatever the label
convention of the label file); voxels that were not scored have probability 1 for channel 0.

Methods (see :mod:`densenet3d_keras.inference`): ``fcn`` (default) runs the network fully
convolutionally over tiles of at most ``--tile-size`` voxels per axis covering the brain's
bounding box (outside it the label is 0); ``patch`` is the reference's 38^3 sliding window
(every window run), 20-50 times slower, for checking. Both give the same labels at every voxel
at least 13 voxels from the edge; ``patch`` leaves that rim unscored (label 0).

``--evaluate`` then scores the predictions against each case's ``seg`` file with
:func:`densenet3d_keras.evaluation.evaluate_folder` (``<out>/metrics.csv``,
``<out>/summary.json``) and prints the Dice / HD95 table; ``--overlays`` (implies
``--evaluate``) also writes ``<out>/overlays/<case id>.png``.

``--demo`` predicts the test cases of the ``train_keras.py --demo`` dataset with the newest
checkpoint in ``runs/dense24`` into ``runs/dense24/demo_prediction`` and evaluates them with
overlays; explicit flags override those defaults.

Before the first output is written, the output folder is checked, the checkpoint loaded, and
every case read through the loader prediction uses (with ``--evaluate`` with its label map),
so a bad case anywhere in the list stops the run with nothing written. A folder under ``-r``
that is not a complete case is an error, or with ``--skip-incomplete`` left out and named.

Exit codes: 0 success; 2 any failure (bad arguments, a checkpoint for another model or with
weights that do not fit, a missing or unreadable input, an output folder that cannot be
written); 130 interrupted. Failures print one line ``error: ...`` on stderr; every output file
is written under a temporary name and renamed into place, so a failure leaves no partial file.
"""
import json
import os
import sys
import tempfile
import time

from densenet3d_keras.cli import OneLineArgumentParser, str2bool
from densenet3d_keras.fileio import make_output_folder
from generators.brats import LABEL_CONVENTIONS

#: Exit code for every failure (argparse's own usage errors use 2 as well).
EXIT_ERROR = 2
METHODS = ("fcn", "patch")
DEFAULT_TILE_SIZE = 88  # densenet3d_keras.inference.DEFAULT_TILE_SIZE (not imported: TensorFlow)
PROBABILITIES_SUFFIX = "_probabilities"
DEMO = {"checkpoint": os.path.join("runs", "dense24"), "model_name": "dense24",
        "case_list": "test.txt", "out": os.path.join("runs", "dense24", "demo_prediction")}


def build_parser():
    """The command-line parser.

    Returns:
        argparse.ArgumentParser.
    """
    parser = OneLineArgumentParser(
        prog="predict_keras.py",
        description="Segment BraTS cases with a trained hierarchical dense 3-D CNN and write "
                    "<out>/<case id>.nii.gz label maps on the flair's grid.")
    model = parser.add_argument_group("model")
    model.add_argument("-m", "--model-path", dest="checkpoint", default=None,
                       help="checkpoint file, or a folder (its newest checkpoint)")
    model.add_argument("-mn", "--model-name", "--model", dest="model_name", default="dense24",
                       help="architecture the checkpoint holds (default dense24)")
    data = parser.add_argument_group("input")
    data.add_argument("-r", "--root-path", dest="root_path", default=None,
                      help="dataset root with one folder per case")
    data.add_argument("--list", dest="case_list", default=None,
                      help="case list with -r (one case id per line; relative names are also "
                           "looked up in the root). Default: every case under the root")
    data.add_argument("-i", "--input", dest="case_dir", default=None,
                      help="one case folder (instead of -r)")
    data.add_argument("--skip-incomplete", dest="skip_incomplete", action="store_true",
                      help="with -r and no --list: leave out (and list) folders under the root "
                           "that are not complete cases, instead of stopping")
    data.add_argument("-nc", "--n4correction", dest="n4correction", type=str2bool, default=None,
                      metavar="{true,false}",
                      help="read the N4-corrected files like training (default: what the "
                           "checkpoint folder's config.json records, else false)")
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=METHODS, default="fcn",
                        help="fcn: fully convolutional over tiles (default); patch: the "
                             "reference 38^3 sliding window (slow, for checking)")
    method.add_argument("--tile-size", dest="tile_size", type=int, default=DEFAULT_TILE_SIZE,
                        help="fcn: largest tile edge in voxels (bounds memory; outputs per tile "
                             "are 26 fewer; default %d)" % DEFAULT_TILE_SIZE)
    method.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                        help="tiles (fcn) or windows (patch) per model call (default: fcn as "
                             "many tiles as fit one --tile-size^3 tile, patch 4)")
    method.add_argument("--padding", choices=("auto", "same", "valid"), default="auto",
                        help="convolution padding of the inference model: same weights and "
                             "logits either way; auto = valid for fcn (less compute), same for "
                             "patch (the reference)")
    output = parser.add_argument_group("output")
    output.add_argument("-o", "--out", dest="out", default=None, help="output folder")
    output.add_argument("--label-convention", dest="label_convention", default="auto",
                        choices=("auto",) + tuple(LABEL_CONVENTIONS),
                        help="labels written: brats2017 {0,1,2,4}, brats2023 {0,1,2,3}, or auto "
                             "(each case's own layout)")
    output.add_argument("--save-probabilities", dest="save_probabilities", action="store_true",
                        help="also write <case>_probabilities.nii.gz (float32, X x Y x Z x 5)")
    output.add_argument("--evaluate", action="store_true",
                        help="score the predictions against the cases' seg files "
                             "(metrics.csv, summary.json in the output folder)")
    output.add_argument("--overlays", action="store_true",
                        help="also write overlays/<case>.png (implies --evaluate)")
    parser.add_argument("--demo", action="store_true",
                        help="predict and evaluate the test cases of the train_keras.py --demo "
                             "dataset with runs/dense24")
    return parser


def _training_n4(checkpoint):
    """``n4correction`` recorded in the training ``config.json`` beside a checkpoint, or None."""
    folder = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    path = os.path.join(folder or ".", "config.json")
    try:
        with open(path) as handle:
            value = json.load(handle).get("n4correction")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def resolve(args):
    """Check the parsed flags and fill in defaults.

    Returns:
        dict: the resolved configuration (JSON-serialisable).

    Raises:
        ValueError: missing or inconsistent flags, naming them.
    """
    from densenet3d_keras.models import ARCHITECTURES, margins, resolve_model_name

    config = dict(vars(args))
    if config["demo"]:
        from densenet3d_keras.training import demo_root

        if not config["checkpoint"]:
            config["checkpoint"] = DEMO["checkpoint"]
            if not os.path.exists(config["checkpoint"]):
                raise FileNotFoundError("no demo checkpoint in %s: run `python train_keras.py "
                                        "--demo` first" % config["checkpoint"])
        if not config["case_dir"]:
            config["root_path"] = config["root_path"] or demo_root(None)
            config["case_list"] = config["case_list"] or DEMO["case_list"]
        config["out"] = config["out"] or DEMO["out"]
        config["evaluate"] = True
        config["overlays"] = True
    if not config["checkpoint"]:
        raise ValueError("give the checkpoint with -m <file or folder>")
    if bool(config["root_path"]) == bool(config["case_dir"]):
        raise ValueError("give either a dataset root (-r) or one case folder (-i)")
    if config["case_list"] and not config["root_path"]:
        raise ValueError("--list needs a dataset root (-r)")
    if config["skip_incomplete"] and not config["root_path"]:
        raise ValueError("--skip-incomplete needs a dataset root (-r)")
    if not config["out"]:
        raise ValueError("give an output folder with -o <folder>")
    architecture, n4_default = resolve_model_name(config["model_name"])
    if n4_default is False:
        if config["n4correction"]:
            raise ValueError("model %s was trained on uncorrected data; drop -nc true"
                             % config["model_name"])
        config["n4correction"] = False
    if config["n4correction"] is None:
        recorded = _training_n4(config["checkpoint"])
        config["n4correction"] = bool(recorded)
        config["n4correction_from"] = "checkpoint config.json" if recorded is not None else "default"
    else:
        config["n4correction_from"] = "flag"
    margin = margins(ARCHITECTURES[architecture])[1]
    if config["tile_size"] <= 2 * margin:
        raise ValueError("--tile-size must exceed 2 x margin = %d, got %d"
                         % (2 * margin, config["tile_size"]))
    if config["batch_size"] is not None and config["batch_size"] < 1:
        raise ValueError("--batch-size must be >= 1, got %d" % config["batch_size"])
    if config["padding"] == "auto":
        config["padding"] = "valid" if config["method"] == "fcn" else "same"
    config["overlays"] = bool(config["overlays"])
    config["evaluate"] = bool(config["evaluate"] or config["overlays"])
    config["architecture"] = architecture
    config["margin"] = margin
    return config


class TextProgress(object):
    """A progress bar for one case on a text stream (``\\r`` updates on a terminal, else a line
    every 10 %).

    Args:
        stream: where to write (stderr).
        label: text before the bar.
        unit: what is counted (``tiles``, ``windows``).
    """

    WIDTH = 30

    def __init__(self, stream, label, unit):
        self.stream = stream
        self.label = label
        self.unit = unit
        self.started = time.time()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_decile = -1

    def __call__(self, done, total):
        fraction = float(done) / max(total, 1)
        decile = int(fraction * 10)
        if not self.tty and decile == self.last_decile and done < total:
            return
        self.last_decile = decile
        filled = int(round(fraction * self.WIDTH))
        elapsed = time.time() - self.started
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        text = "%s [%s%s] %d/%d %s, %.0f s, ~%.0f s left" % (
            self.label, "#" * filled, "." * (self.WIDTH - filled), done, total, self.unit,
            elapsed, eta)
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def main(argv=None):
    """Run the prediction.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on failure (the reason printed as one line on stderr), 130 when
        interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        config = resolve(args)
        return _run(config)
    except (OSError, ValueError) as error:
        message = str(error).strip().splitlines()
        sys.stderr.write("error: %s\n" % (message[0] if message else type(error).__name__))
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


def _select_cases(config):
    """Input cases (N4-corrected if asked) and the same cases for evaluation."""
    from generators.brats import discover_cases, load_case, resolve_case_list

    require_label = config["evaluate"]
    if config["case_dir"]:
        cases = [load_case(config["case_dir"], require_label=require_label)]
    else:
        names = resolve_case_list(config["root_path"], config["case_list"], default_name="")
        cases = discover_cases(config["root_path"], names, require_label=require_label,
                               skip_incomplete=config["skip_incomplete"])
    ids = [case.case_id for case in cases]
    duplicates = sorted(set(i for i in ids if ids.count(i) > 1))
    if duplicates:
        raise ValueError("case listed more than once: %s" % ", ".join(duplicates))
    inputs = [case.corrected() for case in cases] if config["n4correction"] else cases
    return inputs, cases


def _prepare_output(out_dir):
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
        _remove_if_empty(out_dir, created)
        raise OSError("cannot write to output folder %s: %s" % (out_dir, error.strerror or error))
    return created


def _remove_if_empty(out_dir, created):
    if created:
        try:
            os.rmdir(out_dir)
        except OSError:
            pass


def _run(config):
    inputs, cases = _select_cases(config)
    print("predict: " + json.dumps(config, sort_keys=True))
    sys.stdout.flush()
    # Before anything is written: the output folder, the checkpoint, then every input.
    created = _prepare_output(config["out"])
    written = []
    try:
        model = _load_model(config)
        _check_inputs(config, inputs, cases)
        written = _predict_all(config, model, inputs)
    finally:
        if not written:
            _remove_if_empty(config["out"], created)
    if config["evaluate"]:
        _evaluate(config, cases)
    return 0


def _load_model(config):
    from densenet3d_keras import inference

    model, path, info = inference.load_model(config["checkpoint"], config["model_name"],
                                             config["method"], config["padding"])
    print("model %s (%s padding) from %s (epoch %s)"
          % (config["model_name"], config["padding"], path, info["epoch"]))
    sys.stdout.flush()
    return model


def _check_inputs(config, inputs, cases):
    """Read every case through the loader prediction uses, and discard it.

    A bad case (missing or corrupt file, grids that differ, NaN or infinite voxels, values
    out of float32 range, an empty brain) or, with ``--evaluate``, a bad label map (grid,
    non-integer values, labels outside the convention) then stops the run before the first
    prediction is written. One case is in memory at a time; it is decoded again when it is
    predicted, which costs a few seconds per case next to the prediction itself.

    Raises:
        FileNotFoundError, ValueError: from :func:`generators.volumes.load_case_volumes`,
            naming the file.
    """
    from generators.volumes import load_case_volumes, load_nifti

    started = time.time()
    for case, original in zip(inputs, cases):
        volumes = load_case_volumes(case, with_label=config["evaluate"])
        if config["overlays"] and original.images["flair"] != case.images["flair"]:
            # Overlays are drawn on the original flair, not on the N4-corrected one read here.
            flair, _ = load_nifti(original.images["flair"])
            if flair.shape != volumes.shape:
                raise ValueError("case %s: flair %s has shape %s but %s has %s"
                                 % (case.case_id, original.images["flair"], flair.shape,
                                    case.images["flair"], volumes.shape))
            del flair
        del volumes
    print("%d case(s) checked%s in %.1f s" % (len(inputs), " with their label maps"
                                              if config["evaluate"] else "",
                                              time.time() - started))
    sys.stdout.flush()


def _predict_all(config, model, inputs):
    from densenet3d_keras import inference
    from generators.brats import from_internal_labels
    from generators.volumes import load_case_volumes

    written = []
    started = time.time()
    for index, case in enumerate(inputs, 1):
        volumes = load_case_volumes(case, with_label=False)
        label = "[%d/%d] %s" % (index, len(inputs), case.case_id)
        if config["method"] == "fcn":
            progress = TextProgress(sys.stderr, label, "tiles")
            segmentation = inference.predict_fcn(
                model, volumes.image, volumes.background, margin=config["margin"],
                tile_size=config["tile_size"], batch_size=config["batch_size"], progress=progress)
        else:
            progress = TextProgress(sys.stderr, label, "windows")
            segmentation = inference.predict_patch(
                model, volumes.image, volumes.background, margin=config["margin"],
                batch_size=config["batch_size"] or inference.PATCH_BATCH_SIZE, progress=progress)
        convention = (case.label_convention if config["label_convention"] == "auto"
                      else config["label_convention"])
        labels = from_internal_labels(segmentation.labels, convention)
        description = "%s %s labels (%s)" % (config["model_name"], config["method"], convention)
        target = os.path.join(config["out"], case.case_id + ".nii.gz")
        inference.write_nifti_like(target, labels, volumes.header, description)
        written.append(target)
        if config["save_probabilities"]:
            target = os.path.join(config["out"], case.case_id + PROBABILITIES_SUFFIX + ".nii.gz")
            inference.write_nifti_like(target, segmentation.probabilities(), volumes.header,
                                       "%s %s softmax of labels 0-4" % (config["model_name"],
                                                                         config["method"]))
            written.append(target)
        print("%s: %s, %d %s of %s voxels in %.1f s -> %s"
              % (label, "x".join(str(s) for s in volumes.shape), segmentation.num_passes,
                 "tiles" if config["method"] == "fcn" else "windows",
                 "x".join(str(s) for s in segmentation.pass_shape), segmentation.seconds,
                 os.path.join(config["out"], case.case_id + ".nii.gz")))
        sys.stdout.flush()
        del volumes, segmentation, labels
    print("%d case(s) segmented in %.1f s" % (len(inputs), time.time() - started))
    return written


def _evaluate(config, cases):
    from densenet3d_keras.evaluation import OVERLAY_DIR, evaluate_folder
    from evaluate_keras import format_header, format_row

    width = max([len("median")] + [len(case.case_id) for case in cases])
    print(format_header(width))

    def progress(index, total, row):
        print(format_row(row["case"], row, width))
        sys.stdout.flush()

    rows, summary = evaluate_folder(config["out"], cases, config["out"],
                                    convention=config["label_convention"],
                                    overlays=config["overlays"], progress=progress)
    print("-" * len(format_header(width)))
    for statistic in ("mean", "std", "median"):
        values = dict((name, stats[statistic]) for name, stats in summary["metrics"].items())
        print(format_row(statistic, values, width))
    print("metrics: %s, %s" % (os.path.join(config["out"], "metrics.csv"),
                               os.path.join(config["out"], "summary.json")))
    if config["overlays"]:
        for row in rows:
            print("overlay: %s" % os.path.join(config["out"], OVERLAY_DIR, row["case"] + ".png"))


if __name__ == "__main__":
    sys.exit(main())
