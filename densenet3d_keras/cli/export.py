"""``export_keras.py``: a checkpoint as a frozen TensorFlow graph for Ascend offline inference,
or as an ONNX graph.

``python export_keras.py -m <checkpoint or folder> -o model.pb [--format pb|savedmodel|onnx]
[--input-size 38|N] [--batch-size N] [--padding valid|same] [-mn NAME]`` writes a frozen
``GraphDef`` (or a TensorFlow 1.x SavedModel folder, or an ``.onnx`` file) atomically and prints
its input and output node names and shapes, and for ``pb`` an ATC command line to convert it
(see :mod:`densenet3d_keras.inference.export`). ``onnx`` has dynamic spatial axes unless
``--input-size`` is given, needs the ``onnx`` extra, and is checked against the Keras model
when ONNX Runtime is installed.
"""
import sys

from densenet3d_keras.cli.runner import ArgumentParser, run_command


def build_parser():
    """The ``export_keras.py`` argument parser."""
    from densenet3d_keras.inference.export import FORMATS

    parser = ArgumentParser(
        prog="export_keras.py",
        description="Export a trained checkpoint as a frozen TensorFlow graph (.pb) for "
                    "Ascend ATC / offline inference, as a SavedModel, or as an ONNX graph.")
    parser.add_argument("-m", "--model-path", dest="checkpoint", required=True,
                        help="checkpoint file, or a folder (its newest checkpoint), or "
                             "'pretrained' (the shipped model)")
    parser.add_argument("-o", "--out", dest="out", required=True,
                        help="output .pb file (a SavedModel folder with --format savedmodel, an "
                             ".onnx file with --format onnx)")
    parser.add_argument("-mn", "--model-name", "--model", dest="model_name", default=None,
                        help="architecture (default: the one the checkpoint records)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="pb",
                        help="pb: frozen GraphDef (ATC --framework=3); savedmodel: TF1 SavedModel; "
                             "onnx: ONNX graph (needs pip install '.[onnx]')")
    parser.add_argument("--input-size", dest="input_size", type=int, default=None,
                        help="cubic input edge in voxels (outputs are 26 fewer; default 38, the "
                             "training patch; onnx: dynamic depth, height and width)")
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=None,
                        help="fixed batch size (default: dynamic, set by ATC --input_shape)")
    parser.add_argument("--padding", choices=("valid", "same"), default="valid",
                        help="convolution padding: same weights and logits, valid computes less")
    return parser


def _shape(shape):
    return ",".join("-1" if size is None else str(size) for size in shape)


def describe(info):
    """Lines printed after an export: where, which model, node names, shapes, ATC command."""
    from densenet3d_keras.inference.export import INPUT_NODE, OUTPUT_NODES

    atc_shape = ",".join(["1" if info["input_shape"][0] is None else str(info["input_shape"][0])]
                         + [str(s) for s in info["input_shape"][1:]])
    lines = ["exported %s (epoch %s, %s padding) from %s -> %s (%s)"
             % (info["model_name"], info["epoch"], info["padding"],
                info["checkpoint"], info["out"], info["format"]),
             "input node: %s float32 [%s] (NDHWC: flair, t2, t1, t1ce, normalised)"
             % (INPUT_NODE, _shape(info["input_shape"]))]
    for name, shape in zip(OUTPUT_NODES, info["output_shapes"]):
        lines.append("output node: %s float32 [%s] (logits)" % (name, _shape(shape)))
    lines.append("operators: %s" % ", ".join(info["ops"]))
    if info["format"] == "onnx":
        lines.append(_onnx_check_line(info))
    if info["format"] == "pb":
        lines.append("atc --framework=3 --model=%s --output=<name> --soc_version=<Ascend310...> "
                     "--input_format=NDHWC --input_shape=\"%s:%s\" --out_nodes=\"%s\""
                     % (info["out"], INPUT_NODE, atc_shape,
                        ";".join(name + ":0" for name in OUTPUT_NODES)))
    return lines


def _onnx_check_line(info):
    """How the ONNX graph compared with the Keras model (or why it was not compared)."""
    check = info.get("check")
    if check is None:
        return ("not checked against the Keras model: onnxruntime is not installed "
                "(pip install 'densenet3d-keras[onnx]')")
    return ("checked with ONNX Runtime on a random [%s] input: largest logit difference %.2g "
            "(largest logit %.3g), labels equal on %.2f%% of voxels"
            % (_shape(check["shape"]), check["max_difference"], check["max_logit"],
               100 * check["labels_equal"]))


def export_command(args):
    """Export and print the node names. Returns 0."""
    from densenet3d_keras.cli.runner import apply_graph_mode
    from densenet3d_keras.inference.export import export

    apply_graph_mode(False)  # honours DENSENET3D_GRAPH_MODE; the export has its own graph anyway
    if args.input_size is None and args.fmt != "onnx":
        args.input_size = 38
    if args.input_size is not None and args.input_size <= 26:
        raise ValueError("--input-size must be > 26 (the network's 2 x 13 margin), got %d"
                         % args.input_size)
    from densenet3d_keras.models.pretrained import resolve_checkpoint

    info = export(resolve_checkpoint(args.checkpoint), args.out, args.fmt, model_name=args.model_name,
                  input_size=args.input_size, padding=args.padding, batch_size=args.batch_size)
    for line in describe(info):
        sys.stdout.write(line + "\n")
    return 0


def main(argv=None):
    """Run ``export_keras.py``; returns the exit code (0, 2 bad input, 130 interrupted)."""
    return run_command(build_parser(), export_command, argv)
