"""The resolved configuration of a training run: a typed record checked once, saved as JSON.

:func:`resolve` turns parsed command-line flags (``densenet3d_keras.cli.train``) into a
:class:`TrainConfig`, checking every value; the run logs it at the start and saves it as
``config.json`` beside the checkpoints.
"""
import json
import os
from dataclasses import asdict, dataclass, fields
from typing import Optional

from densenet3d_keras.core import geometry
from densenet3d_keras.core import compat
from densenet3d_keras.core.fileio import write_json_atomic
from densenet3d_keras.models.presets import DEFAULT_MODEL_NAME, architecture_of, n4_for_model, resolve_model_name
from densenet3d_keras.runtime.npu import DEFAULT_PRECISION_MODE, parse_loss_scale
from generators.augment import parse_augment
from generators.brats import check_outside_root
from generators.sampling import SAMPLING_MODES

LR_SCHEDULES = ("constant", "poly")


@dataclass
class TrainConfig(object):
    """Everything a training run needs; field names are the JSON keys of ``config.json``.

    The defaults are the command line's (``train_keras.py``'s flags take theirs from
    :data:`DEFAULTS`); ``architecture`` and ``output_size`` are derived by :func:`resolve`.
    """

    root_path: Optional[str] = None
    train_list: Optional[str] = None
    n4correction: bool = False
    cache_dir: Optional[str] = None
    skip_incomplete: bool = False
    demo: bool = False
    model_name: str = DEFAULT_MODEL_NAME
    architecture: Optional[str] = None
    padding: str = "same"
    summary: bool = False
    batch_size: int = 2
    num_epochs: int = 5
    lr: float = 5e-4
    n_pos: int = 200
    n_neg: int = 200
    seed: int = 0
    patch_size: int = geometry.PATCH_SIZE
    output_size: int = geometry.OUTPUT_SIZE
    max_batches_per_patient: Optional[int] = None
    workers: int = 1
    save_path: Optional[str] = None
    load_path: Optional[str] = None
    continue_training: bool = False
    log_dir: Optional[str] = None
    keep: int = 15
    gpu: Optional[str] = None
    precision: str = "float32"
    intra_op_threads: Optional[int] = None
    inter_op_threads: Optional[int] = None
    strategy: str = "auto"
    scale_lr: bool = False
    precision_mode: str = DEFAULT_PRECISION_MODE
    loss_scale: object = None
    graph_mode: bool = False
    val_list: Optional[str] = None
    val_every: int = 1
    tensorboard: Optional[str] = None
    reduce_lr_on_plateau: Optional[list] = None
    early_stopping: Optional[int] = None
    sampling: str = "reference"
    shuffle: bool = False
    augment: tuple = ()
    lr_schedule: str = "constant"
    recipe: Optional[str] = None

    def to_dict(self):
        """The configuration as a JSON-serialisable dict."""
        return asdict(self)


#: Every option at its default: what the command line's flags default to.
DEFAULTS = TrainConfig()
#: Fields of :class:`TrainConfig`.
FIELDS = tuple(f.name for f in fields(TrainConfig))

_MINIMA = (("-bs", "batch_size", 1), ("-e", "num_epochs", 1), ("--n-pos", "n_pos", 0),
           ("--n-neg", "n_neg", 0), ("--keep", "keep", 1), ("--workers", "workers", 1),
           ("--performance", "max_batches_per_patient", 1),
           ("--intra-op-threads", "intra_op_threads", 0),
           ("--inter-op-threads", "inter_op_threads", 0), ("--val-every", "val_every", 1),
           ("--early-stopping", "early_stopping", 1))


def _patch_sizes(values, margin):
    """``(patch size, output size)`` from the ``-hs -ws -cs -ps`` flags."""
    sizes = (values.pop("hsize"), values.pop("wsize"), values.pop("csize"))
    if len(set(sizes)) != 1:
        raise ValueError("non-cubic patches are not supported: -hs %d -ws %d -cs %d" % sizes)
    out = geometry.output_size(sizes[0], margin)
    psize = values.pop("psize")
    if psize is not None and psize != out:
        raise ValueError("-ps %d does not match the model: a %d-voxel patch gives %d-voxel outputs"
                         % (psize, sizes[0], out))
    return sizes[0], out


def parse_plateau(text):
    """``[factor, patience]`` of ``--reduce-lr-on-plateau FACTOR,PATIENCE`` (``None`` stays None).

    Raises:
        ValueError: not two numbers, a factor outside (0, 1) or a patience below 1.
    """
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [part.strip() for part in str(text).split(",")]
    try:
        factor, patience = float(parts[0]), int(parts[1])
        if len(parts) != 2:
            raise IndexError
    except (IndexError, ValueError):
        raise ValueError("--reduce-lr-on-plateau takes FACTOR,PATIENCE (e.g. 0.5,2), got %r" % (text,))
    if not 0.0 < factor < 1.0 or patience < 1:
        raise ValueError("--reduce-lr-on-plateau: the factor must be in (0, 1) and the patience "
                         ">= 1, got %r" % (text,))
    return [factor, patience]


def _check_validation(config):
    needs = [flag for flag, value in (("--reduce-lr-on-plateau", config.reduce_lr_on_plateau),
                                      ("--early-stopping", config.early_stopping)) if value is not None]
    if config.val_every != 1:
        needs.append("--val-every")
    if needs and not config.val_list and not config.demo:
        raise ValueError("%s act on the validation Dice: give validation cases with --val-list"
                         % " and ".join(needs))


def _check_schedule(config):
    if config.sampling not in SAMPLING_MODES:
        raise ValueError("--sampling must be one of %s, got %r" % (", ".join(SAMPLING_MODES), config.sampling))
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError("--lr-schedule must be one of %s, got %r"
                         % (", ".join(LR_SCHEDULES), config.lr_schedule))
    if config.lr_schedule != "constant" and config.reduce_lr_on_plateau:
        raise ValueError("--lr-schedule %s and --reduce-lr-on-plateau both set the learning rate: "
                         "choose one" % config.lr_schedule)


def _check_values(config):
    for flag, key, minimum in _MINIMA:
        value = getattr(config, key)
        if value is not None and value < minimum:
            raise ValueError("%s must be >= %d, got %d" % (flag, minimum, value))
    if config.n_pos + config.n_neg < config.batch_size:
        raise ValueError("--n-pos + --n-neg must be at least the batch size")
    compat.check_precision(config.precision, config.graph_mode)
    if not config.lr > 0:
        raise ValueError("--lr must be positive, got %r" % config.lr)
    if config.continue_training and not config.load_path:
        raise ValueError("-c true needs -lp <checkpoint file or folder>")
    if not config.summary and not config.demo and not config.root_path:
        raise ValueError("give a dataset root with -r <folder> (or --demo)")
    for flag, path in (("save folder (-sp)", config.save_path), ("log folder (--log-dir)", config.log_dir),
                       ("TensorBoard folder (--tensorboard)", config.tensorboard)):
        check_outside_root(path, config.root_path, flag)
    _check_validation(config)
    _check_schedule(config)


def resolve(args):
    """Check parsed flags and fill in the derived values.

    Args:
        args: the ``argparse.Namespace`` of ``densenet3d_keras.cli.train.build_parser()``.

    Returns:
        :class:`TrainConfig`.

    Raises:
        ValueError: inconsistent or out-of-range values, naming the flag.
    """
    values = dict(vars(args))
    architecture, _ = resolve_model_name(values["model_name"])
    values["architecture"] = architecture
    values["n4correction"] = bool(n4_for_model(values["model_name"], values["n4correction"]))
    margin = architecture_of(architecture).margin
    values["patch_size"], values["output_size"] = _patch_sizes(values, margin)
    values["loss_scale"] = parse_loss_scale(values["loss_scale"])
    values["graph_mode"] = bool(values.get("graph_mode")) or compat.graph_mode()
    values["reduce_lr_on_plateau"] = parse_plateau(values.get("reduce_lr_on_plateau"))
    values["augment"] = parse_augment(values.get("augment"))
    if values["save_path"] is None:
        values["save_path"] = os.path.join("runs", values["model_name"].replace("-", "_"))
    if values["log_dir"] is None:
        values["log_dir"] = values["save_path"]
    if values.get("tensorboard") == "":
        values["tensorboard"] = os.path.join(values["save_path"], "tensorboard")
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValueError("unknown configuration keys: %s" % ", ".join(unknown))
    config = TrainConfig(**values)
    _check_values(config)
    return config


def save_config(config, path):
    """Write the resolved configuration as JSON (atomically)."""
    write_json_atomic(path, config.to_dict())


def describe(config):
    """One log line with the resolved configuration."""
    return "config: " + json.dumps(config.to_dict(), sort_keys=True)
