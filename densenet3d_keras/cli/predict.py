#!/usr/bin/env python
"""``predict_keras.py``: segment BraTS cases with a trained model, write BraTS submission files.

Usage::

    python predict_keras.py -m <checkpoint file or folder> -mn dense24
        (-r <dataset root> [--list test.txt] [--skip-incomplete] | -i <case dir>) -o <out dir>
        [--method fcn|patch] [--slab 12] [--shape-reuse 16] [--tiles [--tile-size 88]] [--batch-size N]
        [--padding auto|same|valid]
        [-nc true|false] [--label-convention auto|brats2017|brats2023]
        [--save-probabilities] [--evaluate [--challenge GLI] [--brats2024-legacy-metrics masks]] [--overlays]
        [--postprocess settings.json]
        [--tta] [--ensemble <checkpoint> ...] [--part-id I --num-parts N]
        [--engine tensorflow|openvino|onnxruntime]
        [--precision float32|bf16|mixed_float16] [--intra-op-threads N] [--inter-op-threads N]
    python predict_keras.py -m pretrained (-r <dataset root> | -i <case dir>) -o <out dir> [--evaluate]
    python predict_keras.py --demo

``-m pretrained`` is the shipped dense24 trained on ten real BraTS 2018 cases
(:mod:`densenet3d_keras.models.pretrained`, its ``MODEL_CARD.md``): the architecture, padding
and N4 setting come from it, and its postprocessing settings apply unless ``--postprocess``
names others (``--postprocess none``: none).

Writes ``<out>/<case id>.nii.gz`` per case: uint8 labels {0, 1, 2, 4} (BraTS 2017-2021) or
{0, 1, 2, 3} (BraTS 2023; ``auto`` follows each case's own layout), on the flair's voxel grid
with its header (qform and sform), so it overlays on the flair in any viewer.
``--save-probabilities`` adds ``<out>/<case id>_probabilities.nii.gz``: float32
``(X, Y, Z, 5)``, channel k the probability of internal label k (0 background,
1 necrotic / non-enhancing core, 2 edema, 3 unused and always 0, 4 enhancing tumour, whatever
the label convention of the label file): a softmax over the four labels, so its argmax is the
label map before postprocessing; voxels that were not scored have probability 1 for channel 0.

Methods (see :mod:`densenet3d_keras.inference.predict`): ``fcn`` (default) runs the network fully
convolutionally over the brain's bounding box (outside it the label is 0), streamed through the
network in slabs of ``--slab`` planes so that no layer computes a voxel twice
(:mod:`densenet3d_keras.inference.streaming`); ``--tiles`` runs it over overlapping tiles of at
most ``--tile-size`` voxels per axis instead (slower, same labels; graph mode always uses
tiles). ``patch`` is the reference's 38^3 sliding window (every window run), 20-50 times
slower, for checking. All give the same labels at every voxel at least 13 voxels from the
edge; ``patch`` leaves that rim unscored (label 0).

``--engine openvino`` or ``onnxruntime`` runs the network's ONNX graph
(:mod:`densenet3d_keras.inference.engines`) over tiles instead of TensorFlow: OpenVINO in
float32 or bf16 (the fastest on CPUs with AVX-512 BF16 / AMX), ONNX Runtime in float32. Each
is an optional extra (``pip install 'densenet3d-keras[openvino]'``, ``[onnx]``); without it the
run stops with one line naming the extra. Tiles, ``--tta``, ``--ensemble``, ``--postprocess``
and ``--evaluate`` work the same on every engine.

``--postprocess settings.json`` postprocesses every label map before it is written (small
connected components, small enhancing tumour: :mod:`densenet3d_keras.inference.postprocess`;
``evaluate_keras.py --choose-postprocessing`` writes such a file); the settings are read and
checked before anything is predicted and printed with the run's configuration.

``--tta`` averages the softmax probabilities of the 8 mirror images (every subset of the three
spatial axes flipped) of the box, each tile or each window; ``--ensemble CKPT [CKPT ...]`` adds checkpoints
(files or run folders, the ``-mn`` architecture, read with the ``-nc`` of ``-m``) whose softmax
probabilities are averaged with those of ``-m``, each model with the same weight (with
``--tta``: over models x mirror images). Labels are the argmax of the averaged probabilities,
and ``--save-probabilities`` writes them (:mod:`densenet3d_keras.inference.averaging`). Each
mirror image and model is one more forward pass: ``--tta`` takes about 8 times as long.

``--part-id I --num-parts N`` predicts only part I of the run's cases: the sorted case ids
``[I::N]``, so N processes with I = 0 .. N-1 and the same other flags share the work, each
case predicted by exactly one of them. A part without cases says so and exits 0. A split run
cannot ``--evaluate`` (the parts would overwrite each other's ``metrics.csv``): run
``evaluate_keras.py`` on the output folder afterwards.

``--evaluate`` then scores the predictions against each case's ``seg`` file with
:func:`densenet3d_keras.evaluation.report.evaluate_folder` (``<out>/metrics.csv``,
``<out>/summary.json``; ``--challenge`` and ``--brats2024-legacy-metrics`` as in
``evaluate_keras.py``) and prints the Dice / HD95 table; ``--overlays`` (implies
``--evaluate``) also writes ``<out>/overlays/<case id>.png``.

``--demo`` predicts the test cases of the ``train_keras.py --demo`` dataset with the best
validated checkpoint in ``runs/dense24`` (``dense24_best.h5``; the newest if there is none) into ``runs/dense24/demo_prediction`` and evaluates them with
overlays; explicit flags override those defaults.

Before the first output is written, the output folder is checked, every checkpoint loaded, and
every case read through the loader prediction uses (with ``--evaluate`` with its label map),
so a bad case anywhere in the list stops the run with nothing written. A folder under ``-r``
that is not a complete case is an error, or with ``--skip-incomplete`` left out and named.

Exit codes: see :mod:`densenet3d_keras.cli.runner`; every output file is written under a
temporary name and renamed into place, so a failure leaves no partial file.
"""
import os
import sys

from densenet3d_keras.cli.evaluate import add_scoring_flags
from densenet3d_keras.cli.progress import TextProgress
from densenet3d_keras.cli.runner import (ArgumentParser, add_graph_mode_flag, add_thread_flags,
                                         apply_graph_mode, given_options, run_command, str2bool)
from densenet3d_keras.core.compat import PRECISION_POLICIES
from densenet3d_keras.core.labels import LABEL_CONVENTIONS
from densenet3d_keras.inference.config import DEFAULTS
from densenet3d_keras.inference.engines import ENGINE_TILE_SIZES, ENGINES
from densenet3d_keras.inference.inferers.registry import METHODS
from densenet3d_keras.models.pretrained import MODEL_CARD, is_pretrained


def add_averaging_and_part_flags(parser):
    """``--tta``, ``--ensemble CKPT [CKPT ...]`` and ``--part-id I --num-parts N`` (see the
    module docstring), in two argument groups of ``parser``."""
    averaging = parser.add_argument_group("averaging")
    averaging.add_argument("--tta", action="store_true",
                           help="test-time mirroring: average the softmax probabilities over "
                                "the 8 flips of the three axes (8 times the prediction time)")
    averaging.add_argument("--ensemble", dest="ensemble", nargs="+", default=DEFAULTS.ensemble,
                           metavar="CKPT",
                           help="more checkpoints (files or folders) of the -mn architecture: "
                                "average the softmax probabilities of -m and these")
    parts = parser.add_argument_group("parts of a run")
    parts.add_argument("--part-id", dest="part_id", type=int, default=DEFAULTS.part_id, metavar="I",
                       help="with --num-parts N: predict only the sorted case ids [I::N] "
                            "(0 <= I < N; default %d)" % DEFAULTS.part_id)
    parts.add_argument("--num-parts", dest="num_parts", type=int, default=DEFAULTS.num_parts, metavar="N",
                       help="split the run's cases into N parts for N processes (default %d)"
                            % DEFAULTS.num_parts)


def add_method_flags(parser):
    """``--method``, ``--slab``, ``--shape-reuse``, ``--tiles``, ``--tile-size``, ``--batch-size``, ``--padding``;
    returns their argument group."""
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=list(METHODS), default=DEFAULTS.method,
                        help="; ".join("%s: %s" % (name, entry.help) for name, entry in METHODS.items()))
    method.add_argument("--slab", dest="slab", type=int, default=DEFAULTS.slab,
                        help="fcn: planes per slab of the streamed box (bounds memory; "
                             "default %d)" % DEFAULTS.slab)
    method.add_argument("--shape-reuse", dest="shape_reuse", type=int, default=DEFAULTS.shape_reuse, metavar="N",
                        help="fcn: stream a box on the compiled slab shape of an earlier case up to N "
                             "voxels larger per axis (zero-padded; same labels) instead of compiling "
                             "its own, which takes about 10 s and 100 MB per shape; 0: compile "
                             "every box's shape (default %d)" % DEFAULTS.shape_reuse)
    method.add_argument("--tiles", dest="tiles", action="store_true",
                        help="fcn: run the model over overlapping tiles instead of streaming "
                             "the box in slabs (what graph mode does; slower, same labels)")
    method.add_argument("--tile-size", dest="tile_size", type=int, default=DEFAULTS.tile_size,
                        help="fcn with --tiles or another --engine: largest tile edge in voxels "
                             "(bounds memory; outputs per tile are 26 fewer; default %s)"
                             % ", ".join("%s %d" % item for item in sorted(ENGINE_TILE_SIZES.items())))
    method.add_argument("--batch-size", dest="batch_size", type=int, default=DEFAULTS.batch_size,
                        help="tiles (fcn) or windows (patch) per model call (default: fcn as "
                             "many tiles as fit one --tile-size^3 tile, patch 4)")
    method.add_argument("--padding", choices=("auto", "same", "valid"), default=DEFAULTS.padding,
                        help="convolution padding of the inference model: same weights and "
                             "logits either way; auto = valid for fcn (less compute), same for "
                             "patch (the reference)")
    return method


def build_parser():
    """The command-line parser.

    Returns:
        argparse.ArgumentParser.
    """
    parser = ArgumentParser(
        prog="predict_keras.py",
        description="Segment BraTS cases with a trained hierarchical dense 3-D CNN and write "
                    "<out>/<case id>.nii.gz label maps on the flair's grid.")
    model = parser.add_argument_group("model")
    model.add_argument("-m", "--model-path", dest="checkpoint", default=DEFAULTS.checkpoint,
                       help="checkpoint file, or a folder (its newest checkpoint)")
    model.add_argument("-mn", "--model-name", "--model", dest="model_name", default=DEFAULTS.model_name,
                       help="architecture the checkpoint holds (default: the one it records, "
                            "else dense24)")
    data = parser.add_argument_group("input")
    data.add_argument("-r", "--root-path", dest="root_path", default=DEFAULTS.root_path,
                      help="dataset root with one folder per case")
    data.add_argument("--list", dest="case_list", default=DEFAULTS.case_list,
                      help="case list with -r (one case id per line; relative names are also "
                           "looked up in the root). Default: every case under the root")
    data.add_argument("-i", "--input", dest="case_dir", default=DEFAULTS.case_dir,
                      help="one case folder (instead of -r)")
    data.add_argument("--skip-incomplete", dest="skip_incomplete", action="store_true",
                      help="with -r and no --list: leave out (and list) folders under the root "
                           "that are not complete cases, instead of stopping")
    data.add_argument("-nc", "--n4correction", dest="n4correction", type=str2bool, default=DEFAULTS.n4correction,
                      metavar="{true,false}",
                      help="read the N4-corrected files like training (default: what the "
                           "checkpoint folder's config.json records, else false)")
    method = add_method_flags(parser)
    add_graph_mode_flag(method)
    add_speed_flags(method)
    add_averaging_and_part_flags(parser)
    output = parser.add_argument_group("output")
    output.add_argument("-o", "--out", dest="out", default=DEFAULTS.out, help="output folder")
    output.add_argument("--label-convention", dest="label_convention", default=DEFAULTS.label_convention,
                        choices=("auto",) + tuple(LABEL_CONVENTIONS),
                        help="labels written: brats2017 {0,1,2,4}, brats2023 {0,1,2,3}, or auto "
                             "(each case's own layout)")
    output.add_argument("--save-probabilities", dest="save_probabilities", action="store_true",
                        help="also write <case>_probabilities.nii.gz (float32, X x Y x Z x 5)")
    output.add_argument("--postprocess", dest="postprocess", default=DEFAULTS.postprocess, metavar="SETTINGS.json",
                        help="postprocess each label map with these settings (as written by "
                             "evaluate_keras.py --choose-postprocessing) before writing it; "
                             "'none': no postprocessing (default: none, except -m pretrained: "
                             "its own settings)")
    output.add_argument("--evaluate", action="store_true",
                        help="score the predictions against the cases' seg files "
                             "(metrics.csv, summary.json in the output folder)")
    add_scoring_flags(output)
    output.add_argument("--overlays", action="store_true",
                        help="also write overlays/<case>.png (implies --evaluate)")
    parser.add_argument("--demo", action="store_true", help="predict and evaluate the test cases of "
                        "the train_keras.py --demo dataset with runs/dense24 (its best checkpoint)")
    return parser



def add_speed_flags(group):
    """``--engine``, ``--precision`` and the thread counts."""
    group.add_argument("--engine", choices=list(ENGINES), default=DEFAULTS.engine,
                       help="what runs the network: tensorflow (default; slabs or tiles, GPUs, "
                            "NPUs), openvino (CPUs: fastest with --precision bf16; pip install "
                            "'.[openvino]') or onnxruntime (float32, portable; pip install "
                            "'.[onnx]'); other engines run over tiles")
    group.add_argument("--precision", choices=sorted(PRECISION_POLICIES), default=DEFAULTS.precision,
                       help="float32, or Keras mixed precision: bf16 (bfloat16 compute, for CPUs "
                            "with AVX-512 BF16 / AMX) or mixed_float16 (GPUs); docs/performance.md")
    add_thread_flags(group)


def resolve(args, given=None):
    """The :class:`~densenet3d_keras.inference.config.PredictConfig` of parsed flags.

    Args:
        args: the parsed flags.
        given: the flags given on the command line (:func:`~densenet3d_keras.cli.runner.given_options`),
            which ``--demo`` leaves as they are; ``None``: those that differ from their default.

    Raises:
        ValueError, FileNotFoundError: see :func:`densenet3d_keras.inference.config.resolve`;
            ``--demo`` without a demo run.
    """
    from densenet3d_keras.inference.config import resolve as resolve_config
    from densenet3d_keras.training.demo import PREDICTION_DEMO, apply_demo_defaults

    if given is None:
        given = set(key for key, value in vars(args).items() if value != getattr(DEFAULTS, key, None))
    values = vars(apply_demo_defaults(args, given, PREDICTION_DEMO) if args.demo else args)
    return resolve_config(dict((key, value) for key, value in values.items() if key != "demo"))


def _log(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def evaluate_predictions(config, cases):
    """Score the written predictions against the cases' label maps and print the table."""
    from densenet3d_keras.evaluation.report import DEFAULT_METRIC_SET, OVERLAY_DIR, evaluate_folder
    from densenet3d_keras.evaluation.table import ResultsTable

    table = ResultsTable([case.case_id for case in cases], metric_set=DEFAULT_METRIC_SET)
    rows, summary = evaluate_folder(config.out, cases, config.out,
                                    convention=config.label_convention,
                                    overlays=config.overlays, progress=table,
                                    metric_set=DEFAULT_METRIC_SET, challenge=config.challenge,
                                    legacy_2024=config.brats2024_legacy_metrics)
    table.finish(summary)
    _log("metrics: %s, %s" % (os.path.join(config.out, "metrics.csv"),
                              os.path.join(config.out, "summary.json")))
    if config.overlays:
        for row in rows:
            _log("overlay: %s" % os.path.join(config.out, OVERLAY_DIR, row["case"] + ".png"))


def predict_command(args, argv=None):
    """Resolve the flags, predict every case, then evaluate if asked. Returns 0."""
    args.graph_mode = apply_graph_mode(args.graph_mode)  # before anything runs TensorFlow
    from densenet3d_keras.inference import pipeline
    from densenet3d_keras.runtime import threads

    for flag, value in (("--intra-op-threads", args.intra_op_threads),
                        ("--inter-op-threads", args.inter_op_threads)):
        if value is not None and value < 0:
            raise ValueError("%s must be >= 0, got %d" % (flag, value))
    args.intra_op_threads, args.inter_op_threads = threads.apply_thread_counts(
        args.intra_op_threads, args.inter_op_threads)
    pretrained = is_pretrained(args.checkpoint)
    config = resolve(args, None if argv is None else given_options(build_parser, argv))
    if pretrained:
        _log("model: the pretrained dense24, trained on ten real BraTS 2018 cases; not for "
             "clinical use (%s)" % MODEL_CARD)
    from densenet3d_keras.evaluation.report import CSV_NAME, OVERLAY_DIR, SUMMARY_NAME

    cases, _ = pipeline.run(config, lambda label, unit: TextProgress(sys.stderr, label, unit), _log,
                            derived=(CSV_NAME, SUMMARY_NAME, os.path.join(OVERLAY_DIR, "{case}.png")))
    if config.evaluate:
        evaluate_predictions(config, cases)
    return 0


def main(argv=None):
    """Run ``predict_keras.py``; returns the exit code (0, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(build_parser(), lambda args: predict_command(args, argv), argv)
