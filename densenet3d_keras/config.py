"""Command-line flags of the training command and the one resolved configuration they give.

The flags keep the reference's short forms (``-r``, ``-mn``, ``-bs``, ``-e``, ``-nc``, ``-sp``,
``-lp``, ``-c``, ``-gpu``, ``-hs``/``-ws``/``-cs``, ``-ps``) and add long forms. Boolean flags
take ``true``/``false`` (the reference's ``type=bool`` turned ``-nc False`` into True).
"""
import argparse
import json
import os

from densenet3d_keras import geometry
from densenet3d_keras.cli import OneLineArgumentParser, str2bool  # noqa: F401 (str2bool re-exported)
from densenet3d_keras.compat import IS_TF1, PRECISION_POLICIES
from densenet3d_keras.distribute import STRATEGIES
from densenet3d_keras.models import MODEL_NAMES, margins, ARCHITECTURES, resolve_model_name
from densenet3d_keras.npu import DEFAULT_PRECISION_MODE, PRECISION_MODES, parse_loss_scale


def build_parser():
    """The ``train_keras.py`` argument parser."""
    parser = OneLineArgumentParser(
        prog="train_keras.py",
        description="Train the hierarchical dense 3-D CNN for brain-tumour segmentation on BraTS.")
    data = parser.add_argument_group("data")
    data.add_argument("-r", "--root-path", dest="root_path", default=None,
                      help="dataset root with one folder per case")
    data.add_argument("--train-list", dest="train_list", default=None,
                      help="case list file (default: <root>/train.txt if present, else every case)")
    data.add_argument("-nc", "--n4correction", dest="n4correction", type=str2bool, default=None,
                      metavar="{true,false}", help="read the N4-corrected files (default false)")
    data.add_argument("--cache-dir", dest="cache_dir", default=None,
                      help="preprocessing cache (default $DENSENET3D_CACHE or ~/.cache/densenet3d_keras)")
    data.add_argument("--skip-incomplete", dest="skip_incomplete", action="store_true",
                      help="leave out (and list) case folders under the root that are not "
                           "complete cases, instead of stopping")
    data.add_argument("--demo", action="store_true",
                      help="generate a small synthetic BraTS-like dataset and train on it")
    model = parser.add_argument_group("model")
    model.add_argument("-mn", "--model-name", "--model", dest="model_name", default="dense24",
                       help="one of: %s" % ", ".join(MODEL_NAMES))
    model.add_argument("--padding", choices=("same", "valid"), default="same",
                       help="'same' as the reference, or 'valid': identical weights and inference "
                            "logits, several times faster training")
    model.add_argument("--summary", action="store_true", help="print model.summary() and exit")
    train = parser.add_argument_group("training")
    train.add_argument("-bs", "--batch-size", dest="batch_size", type=int, default=2)
    train.add_argument("-e", "--num-epochs", dest="num_epochs", type=int, default=5)
    train.add_argument("--lr", dest="lr", type=float, default=5e-4, help="Adam learning rate")
    train.add_argument("--n-pos", dest="n_pos", type=int, default=200,
                       help="tumour patch centres per patient and epoch")
    train.add_argument("--n-neg", dest="n_neg", type=int, default=200,
                       help="background patch centres per patient and epoch")
    train.add_argument("--seed", dest="seed", type=int, default=0)
    train.add_argument("-hs", "--height-size", dest="hsize", type=int, default=geometry.PATCH_SIZE)
    train.add_argument("-ws", "--width-size", dest="wsize", type=int, default=geometry.PATCH_SIZE)
    train.add_argument("-cs", "--channel-size", dest="csize", type=int, default=geometry.PATCH_SIZE,
                       help="patch size along the third axis")
    train.add_argument("-ps", "--pred-size", dest="psize", type=int, default=None,
                       help="output block size (patch size - 26)")
    train.add_argument("--performance", dest="max_batches_per_patient", nargs="?", type=int,
                       const=5, default=None,
                       help="performance run: only the first N batches (default 5) of each patient")
    train.add_argument("--workers", dest="workers", type=int, default=1,
                       help="Keras data-loading threads")
    output = parser.add_argument_group("output")
    output.add_argument("-sp", "--save-path", dest="save_path", default=None,
                        help="checkpoint folder (default runs/<model>)")
    output.add_argument("-lp", "--load-path", dest="load_path", default=None,
                        help="checkpoint file or folder to start from")
    output.add_argument("-c", "--continue-training", dest="continue_training", type=str2bool,
                        default=False, metavar="{true,false}",
                        help="resume optimizer state and epoch count from --load-path")
    output.add_argument("--log-dir", dest="log_dir", default=None,
                        help="folder of train_<ASCEND_DEVICE_ID>.log (default: the save path)")
    output.add_argument("--keep", dest="keep", type=int, default=15, help="checkpoints to keep")
    device = parser.add_argument_group("device")
    device.add_argument("-gpu", "--gpu-id", dest="gpu", default=None,
                        help="CUDA_VISIBLE_DEVICES for this run (e.g. 0 or 0,1)")
    device.add_argument("--precision", choices=sorted(PRECISION_POLICIES), default="float32",
                        help="float32, or Keras mixed precision with bfloat16 or float16 "
                             "computation (TensorFlow 2; docs/performance.md)")
    device.add_argument("--intra-op-threads", dest="intra_op_threads", type=int, default=None,
                        help="threads per TensorFlow op (0: one per core; default: half the "
                             "cores on a CPU-only machine, else 0)")
    device.add_argument("--inter-op-threads", dest="inter_op_threads", type=int, default=None,
                        help="TensorFlow ops run at once (0: one per core; default: 2 on a "
                             "CPU-only machine, running the two pathways side by side, else 0)")
    scale = parser.add_argument_group("scale-out (docs/distributed.md)")
    scale.add_argument("--strategy", choices=STRATEGIES, default="auto",
                       help="tf.distribute strategy: auto = multiworker with a TF_CONFIG cluster, "
                            "mirrored with several GPUs, else default")
    scale.add_argument("--scale-lr", dest="scale_lr", action="store_true",
                       help="multiply --lr by the number of workers / Ascend ranks")
    scale.add_argument("--precision-mode", dest="precision_mode", choices=PRECISION_MODES,
                       default=DEFAULT_PRECISION_MODE,
                       help="Ascend NPU precision mode (must_keep_origin_dtype: pure FP32)")
    scale.add_argument("--loss-scale", dest="loss_scale", default=None,
                       help="Ascend NPU loss scaling: dynamic or a fixed number (default off)")
    return parser


def given_options(argv):
    """Configuration keys that ``argv`` sets explicitly (under any of their flag spellings)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def resolve(args):
    """Check the parsed flags and fill in derived values.

    Returns:
        dict: the resolved configuration (JSON-serialisable).

    Raises:
        ValueError: inconsistent or out-of-range values, naming the flag.
    """
    config = dict(vars(args))
    architecture, n4_default = resolve_model_name(config["model_name"])
    config["architecture"] = architecture
    if n4_default is False:
        if config["n4correction"]:
            raise ValueError("model %s trains on uncorrected data; drop -nc true"
                             % config["model_name"])
        config["n4correction"] = False
    elif config["n4correction"] is None:
        config["n4correction"] = False
    sizes = (config["hsize"], config["wsize"], config["csize"])
    if len(set(sizes)) != 1:
        raise ValueError("non-cubic patches are not supported: -hs %d -ws %d -cs %d" % sizes)
    margin = margins(ARCHITECTURES[architecture])[1]
    config["patch_size"] = sizes[0]
    config["output_size"] = geometry.output_size(sizes[0], margin)
    if config["psize"] is not None and config["psize"] != config["output_size"]:
        raise ValueError("-ps %d does not match the model: a %d-voxel patch gives %d-voxel outputs"
                         % (config["psize"], sizes[0], config["output_size"]))
    config["psize"] = config["output_size"]
    for flag, key, minimum in (("-bs", "batch_size", 1), ("-e", "num_epochs", 1),
                               ("--n-pos", "n_pos", 0), ("--n-neg", "n_neg", 0),
                               ("--keep", "keep", 1), ("--workers", "workers", 1),
                               ("--performance", "max_batches_per_patient", 1),
                               ("--intra-op-threads", "intra_op_threads", 0),
                               ("--inter-op-threads", "inter_op_threads", 0)):
        if config[key] is not None and config[key] < minimum:
            raise ValueError("%s must be >= %d, got %d" % (flag, minimum, config[key]))
    if config["n_pos"] + config["n_neg"] < config["batch_size"]:
        raise ValueError("--n-pos + --n-neg must be at least the batch size")
    if config["precision"] != "float32" and IS_TF1:
        raise ValueError("--precision %s needs TensorFlow 2 (Keras mixed precision)" % config["precision"])
    if not config["lr"] > 0:
        raise ValueError("--lr must be positive, got %r" % config["lr"])
    config["loss_scale"] = parse_loss_scale(config["loss_scale"])
    if config["continue_training"] and not config["load_path"]:
        raise ValueError("-c true needs -lp <checkpoint file or folder>")
    if not config["summary"] and not config["demo"] and not config["root_path"]:
        raise ValueError("give a dataset root with -r <folder> (or --demo)")
    if config["save_path"] is None:
        config["save_path"] = os.path.join("runs", config["model_name"].replace("-", "_"))
    if config["log_dir"] is None:
        config["log_dir"] = config["save_path"]
    return config


def save_config(config, path):
    """Write the resolved configuration as JSON (atomically)."""
    from callbacks.checkpoint import write_json_atomic

    write_json_atomic(path, config)


def describe(config):
    """One log line with the resolved configuration."""
    return "config: " + json.dumps(config, sort_keys=True)
