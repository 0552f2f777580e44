"""Frozen-graph export for Ascend offline inference (ATC converts a TensorFlow GraphDef to .om).

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
"""
import os
import shutil
import tempfile

from densenet3d_keras.models.checkpoints import find_checkpoint
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.core.fileio import write_bytes_atomic
from densenet3d_keras.core.geometry import PATCH_SIZE
from densenet3d_keras.models.loading import load_model, model_name_of

INPUT_NODE = "input"
OUTPUT_NODES = ("wt_logits", "labels_logits")
FORMATS = ("pb", "savedmodel")
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

    Keyword arguments are those of :func:`frozen_graph`. Returns its ``info`` plus ``out``
    and ``format``.

    Raises:
        FileNotFoundError, ValueError: see :func:`frozen_graph`; an unknown format, or an
            output that may not be written over (:func:`check_output`).
        OSError: the output cannot be written (the message names it).
    """
    if fmt not in FORMATS:
        raise ValueError("--format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    check_output(checkpoint, out, fmt)
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
        fmt: ``"pb"`` or ``"savedmodel"``.

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
    if fmt == "pb":
        if os.path.isdir(out):
            raise ValueError("output %s is a folder; give a .pb file name" % out)
        if not _is_frozen_export(out):
            raise ValueError("output %s exists and is not an earlier export (a frozen graph with "
                             "nodes %s); choose another -o or remove it"
                             % (out, ", ".join((INPUT_NODE,) + OUTPUT_NODES)))
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
