"""Export for offline inference: a frozen TensorFlow graph (Ascend ATC converts it to .om), a
SavedModel, or an ONNX graph (OpenVINO, ONNX Runtime and other runtimes).

The network is rebuilt from a checkpoint in a TensorFlow 1.x graph of its own (a fresh
``tf.Graph`` with its own session, so the same code runs in a graph-mode process, in an eager
TensorFlow 2 process and on TensorFlow 1.15), called once in inference mode on a placeholder,
and frozen with ``tf.compat.v1.graph_util.convert_variables_to_constants``: every variable
becomes a constant and everything the outputs do not need (training ops, the Keras input
layers) is pruned. Batch norm uses its moving statistics; there is no learning-phase switch
and no function library (the XLA-fused copies are off in graph mode), only plain operators.

Node names (also printed by ``export_keras.py``):

- :data:`INPUT_NODE` ``input``: float32 ``(batch, N, N, N, 4)``, channels flair, t2, t1, t1ce,
  each normalised as in training (``generators.volumes``); ``batch`` is dynamic unless fixed.
- :data:`OUTPUT_NODES` ``wt_logits`` ``(batch, N-26, N-26, N-26, 2)`` and ``labels_logits``
  ``(batch, N-26, N-26, N-26, 5)``: logits of the whole-tumour and the label head (softmax
  and argmax on the host, as ``predict_keras.py`` does; label k is internal label k).

``onnx`` writes the valid-padding network as built by
:func:`densenet3d_keras.inference.onnx_graph.onnx_model` (same input and output names and
layouts, dynamic spatial axes unless an input size is given) and checks it against the Keras
model with ONNX Runtime when that is installed (:func:`check_onnx`).
"""
import os
import shutil
import tempfile

from densenet3d_keras.inference.engines import require_package
from densenet3d_keras.models.checkpoints import find_checkpoint
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.core.fileio import write_bytes_atomic
from densenet3d_keras.core.geometry import PATCH_SIZE
from densenet3d_keras.models.loading import load_model, model_name_of
from densenet3d_keras.models.presets import architecture_of

INPUT_NODE = "input"
OUTPUT_NODES = ("wt_logits", "labels_logits")
FORMATS = ("pb", "savedmodel", "onnx")
#: Largest logit difference from the Keras model :func:`check_onnx` accepts, relative to the
#: largest logit (float32 rounding in another order of summation: about 1e-6 measured).
ONNX_TOLERANCE = 1e-5
#: What ``--format onnx`` needs: the package, and the extra that installs it.
ONNX_PACKAGE = ("onnx", "onnx")
#: The SavedModel signature of ``--format savedmodel``.
SIGNATURE = "serving_default"


def frozen_graph(checkpoint, model_name=None, input_size=PATCH_SIZE, padding="valid",
                 batch_size=None):
    """The frozen ``GraphDef`` of a checkpoint and what it holds.

    Args:
        checkpoint: checkpoint file or folder (its newest checkpoint).
        model_name: architecture (default: the one the checkpoint records, else dense24).
        input_size: cubic input edge in voxels (> 26; the outputs are 26 fewer).
        padding: ``"valid"`` (less arithmetic) or ``"same"``: the same logits.
        batch_size: a fixed batch, or ``None`` for a dynamic one.

    Returns:
        ``(graph_def, info)``: info has ``checkpoint``, ``epoch``, ``model_name``,
        ``input_shape``, ``output_shapes``, ``padding`` and ``ops`` (sorted operator types).

    Raises:
        FileNotFoundError, ValueError: no checkpoint, unfit weights, bad sizes.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError("--batch-size must be >= 1, got %d" % batch_size)
    path = find_checkpoint(checkpoint)
    model_name = model_name_of(path, model_name)
    graph = tf.Graph()
    with graph.as_default():
        session = compat.new_session()
        compat.set_keras_session(session)
        try:
            model, path, recorded = load_model(path, model_name, input_size, padding)
            inputs = tf.compat.v1.placeholder(tf.float32, [batch_size] + [input_size] * 3 + [4],
                                              name=INPUT_NODE)
            outputs = model(inputs, training=False)
            for name, tensor in zip(OUTPUT_NODES, outputs):
                tf.identity(tensor, name=name)
            graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(
                compat.keras_session(), graph.as_graph_def(), list(OUTPUT_NODES))
        finally:
            session.close()
    keras.backend.clear_session()
    _drop_unused_functions(graph_def)
    out_size = model.outputs[0].shape.as_list()[1]
    info = {"checkpoint": path, "epoch": recorded["epoch"], "model_name": model_name,
            "padding": padding, "input_shape": [batch_size] + [input_size] * 3 + [4],
            "output_shapes": [[batch_size] + [out_size] * 3 + [k] for k in (2, 5)],
            "ops": sorted(set(node.op for node in graph_def.node))}
    return graph_def, info


_CALLING_OPS = ("If", "StatelessIf", "While", "StatelessWhile", "PartitionedCall",
                "StatefulPartitionedCall", "Case", "StatelessCase")


def _drop_unused_functions(graph_def):
    """Remove the function library when no node calls it (TensorFlow 2 leaves the branches of
    the pruned training-mode ``cond`` there; ATC and TensorFlow 1.15 need none)."""
    names = set(function.signature.name for function in graph_def.library.function)
    if not any(node.op in names or node.op in _CALLING_OPS for node in graph_def.node):
        del graph_def.library.function[:]
        del graph_def.library.gradient[:]


def _write_savedmodel(graph_def, out):
    """Write a TensorFlow 1.x SavedModel of a frozen graph to folder ``out`` atomically."""
    parent = os.path.dirname(os.path.abspath(out))
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".", dir=parent)
    target = os.path.join(staging, "model")
    try:
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
            with tf.compat.v1.Session(graph=graph) as session:
                builder = tf.compat.v1.saved_model.Builder(target)
                signature = tf.compat.v1.saved_model.predict_signature_def(
                    {INPUT_NODE: graph.get_tensor_by_name(INPUT_NODE + ":0")},
                    {name: graph.get_tensor_by_name(name + ":0") for name in OUTPUT_NODES})
                builder.add_meta_graph_and_variables(
                    session, [tf.compat.v1.saved_model.tag_constants.SERVING],
                    signature_def_map={SIGNATURE: signature})
                builder.save()
        if os.path.isdir(out):
            os.rename(out, os.path.join(staging, "old"))  # removed with the staging folder
        os.rename(target, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export(checkpoint, out, fmt="pb", **kwargs):
    """Export a checkpoint as a frozen graph (``pb``) or a SavedModel folder, atomically.

    Keyword arguments are those of :func:`frozen_graph` (of :func:`export_onnx` for ``onnx``).
    Returns its ``info`` plus ``out`` and ``format``.

    Raises:
        FileNotFoundError, ValueError: see :func:`frozen_graph`; an unknown format, or an
            output that may not be written over (:func:`check_output`).
        OSError: the output cannot be written (the message names it).
    """
    if fmt not in FORMATS:
        raise ValueError("--format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    if fmt == "onnx":
        require_package(*ONNX_PACKAGE)
    check_output(checkpoint, out, fmt)
    if fmt == "onnx":
        return export_onnx(checkpoint, out, **kwargs)
    graph_def, info = frozen_graph(checkpoint, **kwargs)
    if fmt == "pb":
        write_bytes_atomic(out, graph_def.SerializeToString())
    else:
        _write_savedmodel(graph_def, out)
    info.update({"out": out, "format": fmt})
    return info


def check_output(checkpoint, out, fmt):
    """Refuse an output that would destroy something: the input, a folder holding it, or an
    existing file or folder that is not an earlier export of the same format.

    An earlier export (or an empty folder, for a SavedModel) is replaced atomically; anything
    else is left alone and the export stops before it computes anything.

    Args:
        checkpoint: the checkpoint argument (file or folder).
        out: the output path.
        fmt: ``"pb"``, ``"savedmodel"`` or ``"onnx"``.

    Raises:
        FileNotFoundError: the output's parent folder does not exist.
        ValueError: the output is the input or holds it, or exists and is not an earlier
            export of this format (the message says what it is).
    """
    real_out = os.path.realpath(out)
    sources = [checkpoint]
    if os.path.isdir(checkpoint):
        try:
            sources.append(find_checkpoint(checkpoint))
        except (OSError, ValueError):
            pass  # frozen_graph reports it
    for source in sources:
        real = os.path.realpath(source)
        if real == real_out:
            raise ValueError("output %s is the input %s; choose another -o" % (out, source))
        if real.startswith(real_out.rstrip(os.sep) + os.sep):
            raise ValueError("output %s holds the input %s; choose another -o" % (out, source))
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError("output folder does not exist: %s" % parent)
    if not os.path.lexists(out):
        return
    if fmt in ("pb", "onnx"):
        if os.path.isdir(out):
            raise ValueError("output %s is a folder; give a .%s file name" % (out, fmt))
        if not (_is_frozen_export if fmt == "pb" else _is_onnx_export)(out):
            raise ValueError("output %s exists and is not an earlier export (%s with "
                             "nodes %s); choose another -o or remove it"
                             % (out, "a frozen graph" if fmt == "pb" else "an ONNX graph",
                                ", ".join((INPUT_NODE,) + OUTPUT_NODES)))
    elif os.path.isfile(out):
        raise ValueError("output %s is a file; --format savedmodel writes a folder" % out)
    elif os.listdir(out) and not _is_savedmodel_export(out):
        entries = sorted(os.listdir(out))
        raise ValueError("output folder %s exists and is not an earlier SavedModel export (it "
                         "holds %s); choose another -o or remove it"
                         % (out, ", ".join(entries[:4]) + (" ..." if len(entries) > 4 else "") or "nothing"))


def _is_frozen_export(path):
    """Whether ``path`` is a ``GraphDef`` with this exporter's input and output nodes."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError and others on foreign bytes
        return False
    names = set(node.name for node in graph_def.node)
    return set((INPUT_NODE,) + OUTPUT_NODES) <= names


def _is_savedmodel_export(folder):
    """Whether ``folder`` holds only a SavedModel with this exporter's signature."""
    from tensorflow.core.protobuf import saved_model_pb2

    entries = set(os.listdir(folder))
    if "saved_model.pb" not in entries or not entries <= {"saved_model.pb", "variables", "assets"}:
        return False
    try:
        with open(os.path.join(folder, "saved_model.pb"), "rb") as handle:
            model = saved_model_pb2.SavedModel()
            model.ParseFromString(handle.read())
    except Exception:  # protobuf raises DecodeError and others on foreign bytes
        return False
    return any(SIGNATURE in graph.signature_def
               and INPUT_NODE in graph.signature_def[SIGNATURE].inputs for graph in model.meta_graphs)


def load_frozen_graph(path):
    """Read a frozen ``GraphDef`` written by :func:`export` (``pb``)."""
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as handle:
        graph_def.ParseFromString(handle.read())
    return graph_def


def _is_onnx_export(path):
    """Whether ``path`` is an ONNX model with this exporter's input and outputs."""
    import onnx

    try:
        graph = onnx.load(path, load_external_data=False).graph
    except Exception:  # protobuf raises DecodeError and others on foreign bytes
        return False
    return ([value.name for value in graph.input] == [INPUT_NODE]
            and [value.name for value in graph.output] == list(OUTPUT_NODES))


def export_onnx(checkpoint, out, model_name=None, input_size=None, padding="valid", batch_size=None):
    """Write the ONNX graph of a checkpoint to ``out`` atomically, checked against Keras.

    Args:
        checkpoint: checkpoint file or folder (its newest checkpoint).
        out: the ``.onnx`` file.
        model_name: architecture (default: the one the checkpoint records, else dense24).
        input_size: cubic input edge (> 26), or ``None`` for dynamic spatial axes.
        padding: ``"valid"`` only (the graph is the valid-padding network; ``same`` gives the
            same logits with more arithmetic).
        batch_size: a fixed batch, or ``None`` for a dynamic one.

    Returns:
        dict as :func:`frozen_graph`'s ``info`` plus ``out``, ``format``, ``bytes`` and ``check``
        (:func:`check_onnx`'s result, or ``None`` without ONNX Runtime).

    Raises:
        FileNotFoundError, ValueError: no checkpoint, unfit weights, bad sizes, a check that fails.
    """
    from densenet3d_keras.inference.onnx_graph import onnx_model

    if padding != "valid":
        raise ValueError("--format onnx writes the valid-padding network (the same logits as "
                         "same padding, less arithmetic); drop --padding %s" % padding)
    if batch_size is not None and batch_size < 1:
        raise ValueError("--batch-size must be >= 1, got %d" % batch_size)
    path = find_checkpoint(checkpoint)
    model_name = model_name_of(path, model_name)
    model, path, recorded = load_model(path, model_name, input_size, "valid")
    proto = onnx_model(model, model_name, input_size, batch_size,
                       doc="%s (epoch %s) from %s" % (model_name, recorded["epoch"], path))
    check = check_onnx(proto, model, input_size, batch_size or 1)
    data = proto.SerializeToString()
    write_bytes_atomic(out, data)
    keras.backend.clear_session()
    margin = 2 * architecture_of(model_name).margin
    spatial = [input_size] * 3 if input_size else [None] * 3
    return {"checkpoint": path, "epoch": recorded["epoch"], "model_name": model_name, "padding": "valid",
            "input_shape": [batch_size] + spatial + [4],
            "output_shapes": [[batch_size] + [None if s is None else s - margin for s in spatial] + [k]
                              for k in (2, 5)],
            "ops": sorted(set(node.op_type for node in proto.graph.node)), "out": out, "format": "onnx",
            "bytes": len(data), "check": check}


def check_onnx(proto, model, input_size=None, batch_size=1, seed=0):
    """Run an ONNX graph with ONNX Runtime beside the Keras model on one random input.

    Args:
        proto: the ``onnx.ModelProto``.
        model: the Keras model it was built from.
        input_size: the graph's cubic input edge, or ``None`` (dynamic: a 40 x 41 x 42 input).
        batch_size: the batch of the input (the graph's, if it fixes one).
        seed: of the standard-normal input (normalised channels look like that).

    Returns:
        ``None`` without ONNX Runtime, else ``{"shape", "max_difference", "max_logit",
        "labels_equal"}`` (the largest absolute logit difference over both outputs, the
        largest absolute logit, the share of voxels whose label is the same).

    Raises:
        ValueError: the labels differ or the logits differ by more than
            :data:`ONNX_TOLERANCE` times the largest logit.
    """
    import numpy as np

    try:
        import onnxruntime
    except ImportError:
        return None
    shape = (batch_size,) + ((input_size,) * 3 if input_size else (40, 41, 42)) + (4,)
    batch = np.random.RandomState(seed).standard_normal(shape).astype(np.float32)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NODES), {INPUT_NODE: batch})
    want = [np.asarray(x, dtype=np.float32) for x in model.predict_on_batch(batch)]
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(got, want))
    largest = max(float(np.max(np.abs(b))) for b in want)
    labels = float(np.mean(got[1].argmax(-1) == want[1].argmax(-1)))
    result = {"shape": list(shape), "max_difference": difference, "max_logit": largest, "labels_equal": labels}
    if labels < 1.0 or difference > ONNX_TOLERANCE * max(1.0, largest):
        raise ValueError("the ONNX graph does not compute what the Keras model does: largest logit "
                         "difference %.3g (largest logit %.3g), labels equal on %.4f%%"
                         % (difference, largest, 100 * labels))
    return result
