"""The resolved configuration of a prediction run: a typed record, checked once, printed at the start.

:class:`PredictConfig` holds every option with its default (``predict_keras.py``'s flags take
their defaults from :data:`DEFAULTS`); :func:`resolve` checks the options given and fills in
the derived ones: the model name the checkpoint records when ``-mn`` is not given, N4
correction as the checkpoint's training recorded it, the padding of the method, whether the
fcn method streams (not with an ``engine`` other than TensorFlow: tiles).
"""
from dataclasses import asdict, dataclass, field, fields
from typing import List, Optional

from densenet3d_keras.core import compat
from densenet3d_keras.core.labels import NO_CAVITY_CLASS
from densenet3d_keras.inference.engines import ENGINE_TILE_SIZES, check_engine
from densenet3d_keras.inference.inferers.registry import METHODS
from densenet3d_keras.inference.postprocess import load_settings
from densenet3d_keras.inference.streaming import DEFAULT_REUSE, DEFAULT_SLAB, streaming_supported
from densenet3d_keras.inference.tiling import DEFAULT_TILE_SIZE
from densenet3d_keras.models.checkpoints import read_run_config
from densenet3d_keras.models.loading import model_name_of
from densenet3d_keras.models.pretrained import POSTPROCESSING as PRETRAINED_POSTPROCESSING
from densenet3d_keras.models.pretrained import is_pretrained, resolve_checkpoint
from generators.brats import check_outside_root
from densenet3d_keras.models.presets import architecture_of, n4_for_model, resolve_model_name


@dataclass
class PredictConfig(object):
    """A prediction run; field names are those printed at its start. The defaults are the
    command line's; ``None`` in ``model_name``, ``n4correction``, ``architecture`` and
    ``margin`` and ``"auto"`` in ``padding`` are filled in by :func:`resolve`."""

    checkpoint: Optional[str] = None
    out: Optional[str] = None
    #: ``None``: the model the checkpoint records (else dense24).
    model_name: Optional[str] = None
    architecture: Optional[str] = None
    margin: Optional[int] = None
    root_path: Optional[str] = None
    case_list: Optional[str] = None
    case_dir: Optional[str] = None
    skip_incomplete: bool = False
    #: ``None``: what the checkpoint's training recorded, else false.
    n4correction: Optional[bool] = None
    n4correction_from: str = "default"
    method: str = "fcn"
    stream: bool = True
    slab: int = DEFAULT_SLAB
    shape_reuse: int = DEFAULT_REUSE
    #: ``None``: the engine's, :data:`~densenet3d_keras.inference.engines.ENGINE_TILE_SIZES`.
    tile_size: Optional[int] = None
    batch_size: Optional[int] = None
    #: ``"auto"``: the method's (valid for fcn, same for patch).
    padding: str = "auto"
    label_convention: str = "auto"
    save_probabilities: bool = False
    evaluate: bool = False
    #: ``--evaluate``'s lesion-wise settings (``GLI``, ``MEN``, ``MET``, ``PED``, ``SSA``) and how
    #: BraTS 2024 cases' HD95, sensitivity and specificity are scored (``masks``, ``official``).
    challenge: str = "GLI"
    brats2024_legacy_metrics: str = "masks"
    overlays: bool = False
    graph_mode: bool = False
    #: What runs the network: ``tensorflow``, ``openvino`` or ``onnxruntime``.
    engine: str = "tensorflow"
    precision: str = "float32"
    intra_op_threads: Optional[int] = None
    inter_op_threads: Optional[int] = None
    postprocess: Optional[str] = None
    postprocess_settings: Optional[dict] = None
    tta: bool = False
    ensemble: List[str] = field(default_factory=list)
    part_id: int = 0
    num_parts: int = 1

    def to_dict(self):
        """The configuration as a JSON-serialisable dict."""
        return asdict(self)


#: Every option at its default: what the command line's flags default to.
DEFAULTS = PredictConfig()
#: ``--postprocess`` value that turns postprocessing off (also the pretrained model's).
NO_POSTPROCESSING = "none"
#: Fields of :class:`PredictConfig`.
FIELDS = tuple(f.name for f in fields(PredictConfig))


def _default(values, name):
    """``values[name]``, or :data:`DEFAULTS`' when it is missing or ``None``."""
    value = values.get(name)
    return getattr(DEFAULTS, name) if value is None else value


def _training_n4(checkpoint):
    """``n4correction`` recorded in the training ``config.json`` beside a checkpoint, or None."""
    value = read_run_config(checkpoint).get("n4correction")
    return value if isinstance(value, bool) else None


def _n4_choice(values):
    """``(n4correction, where it came from)``: the model name, the flag, the training
    ``config.json`` beside the checkpoint, or false."""
    chosen = n4_for_model(values["model_name"], values["n4correction"])
    if chosen is not None:
        return chosen, "flag" if values["n4correction"] is not None else "model name"
    recorded = _training_n4(values["checkpoint"])
    return bool(recorded), "checkpoint config.json" if recorded is not None else "default"


def _check_sources(values):
    if not values["checkpoint"]:
        raise ValueError("give the checkpoint with -m <file or folder>")
    if bool(values["root_path"]) == bool(values["case_dir"]):
        raise ValueError("give either a dataset root (-r) or one case folder (-i)")
    if values["case_list"] and not values["root_path"]:
        raise ValueError("--list needs a dataset root (-r)")
    if values.get("skip_incomplete") and not values["root_path"]:
        raise ValueError("--skip-incomplete needs a dataset root (-r)")
    if not values["out"]:
        raise ValueError("give an output folder with -o <folder>")
    check_outside_root(values["out"], values["root_path"], "output folder (-o)")
    if values.get("label_convention") == "brats2024":
        raise ValueError("--label-convention brats2024: %s" % NO_CAVITY_CLASS)


def _pretrained_options(values):
    """``-m pretrained``: the shipped checkpoint, and its postprocessing settings unless
    ``--postprocess`` names others; ``--postprocess none`` turns postprocessing off."""
    postprocess = values.get("postprocess") or None
    if is_pretrained(values["checkpoint"]):
        try:
            values["checkpoint"] = resolve_checkpoint(values["checkpoint"])
        except FileNotFoundError as error:
            raise ValueError(str(error))
        if postprocess is None:
            postprocess = PRETRAINED_POSTPROCESSING
    values["postprocess"] = None if postprocess == NO_POSTPROCESSING else postprocess


def _check_part(values):
    """Check ``part_id`` / ``num_parts`` (and that a split run does not evaluate)."""
    part_id, num_parts = values["part_id"], values["num_parts"]
    if num_parts < 1:
        raise ValueError("--num-parts must be >= 1, got %d" % num_parts)
    if not 0 <= part_id < num_parts:
        raise ValueError("--part-id must be in 0..%d (--num-parts %d), got %d"
                         % (num_parts - 1, num_parts, part_id))
    if num_parts > 1 and (values["evaluate"] or values["overlays"]):
        raise ValueError("--evaluate and --overlays need the whole run: with --num-parts %d "
                         "every part would overwrite metrics.csv; score the output folder "
                         "with evaluate_keras.py when all parts are done" % num_parts)


def _averaging_options(values):
    """Fill in ``tta``, ``ensemble``, ``part_id`` and ``num_parts`` (defaults: off, one part)."""
    values["tta"] = bool(values.get("tta"))
    values["ensemble"] = [str(path) for path in _default(values, "ensemble")]
    values["part_id"] = int(_default(values, "part_id"))
    values["num_parts"] = int(_default(values, "num_parts"))
    _check_part(values)


def _count_option(values, name, minimum):
    """``values[name]`` (its default if unset), checked to be at least ``minimum`` (its flag
    in the message)."""
    values[name] = _default(values, name)
    if values[name] < minimum:
        raise ValueError("--%s must be >= %d, got %d" % (name.replace("_", "-"), minimum, values[name]))


def _method_options(values):
    """Check the method's options; fill in its padding and whether fcn streams (``stream``:
    not with ``--tiles`` nor where it cannot run, in graph mode)."""
    if values["method"] not in METHODS:
        raise ValueError("unknown method %r (choose from %s)" % (values["method"], ", ".join(METHODS)))
    if values["tile_size"] is None:
        values["tile_size"] = ENGINE_TILE_SIZES.get(_default(values, "engine"), DEFAULT_TILE_SIZE)
    if values["tile_size"] <= 2 * values["margin"]:
        raise ValueError("--tile-size must exceed 2 x margin = %d, got %d"
                         % (2 * values["margin"], values["tile_size"]))
    if values["batch_size"] is not None and values["batch_size"] < 1:
        raise ValueError("--batch-size must be >= 1, got %d" % values["batch_size"])
    if values["padding"] == "auto":
        values["padding"] = METHODS[values["method"]].padding
    tiles = bool(values.pop("tiles", False))
    _count_option(values, "slab", 1)
    _count_option(values, "shape_reuse", 0)
    values["stream"] = values["method"] == "fcn" and not tiles and streaming_supported() is None


def _engine_options(values):
    """Check ``engine`` with the precision and method; an engine other than TensorFlow runs
    the fcn method over tiles (no streaming)."""
    values["engine"] = _default(values, "engine")
    check_engine(values["engine"], values["precision"])
    if values["engine"] != "tensorflow":
        if values["method"] != "fcn":
            raise ValueError("--engine %s runs --method fcn (over tiles), not --method %s"
                             % (values["engine"], values["method"]))
        if values["padding"] != "valid":
            raise ValueError("--engine %s runs the valid-padding network (the same logits); "
                             "drop --padding %s" % (values["engine"], values["padding"]))
        values["stream"] = False


def resolve(values):
    """Check prediction options and fill in the derived ones.

    Args:
        values: dict with fields of :class:`PredictConfig` (missing ones take their
            defaults), as the command line sets them, plus ``tiles`` (``--tiles``).

    Returns:
        :class:`PredictConfig`.

    Raises:
        ValueError: missing, unknown or inconsistent options, naming the flag.
    """
    unknown = sorted(set(values) - set(FIELDS) - {"tiles"})
    if unknown:
        raise ValueError("unknown configuration keys: %s" % ", ".join(unknown))
    values = dict(DEFAULTS.to_dict(), **values)
    _check_sources(values)
    _pretrained_options(values)
    values["model_name"] = model_name_of(values["checkpoint"], values["model_name"])
    values["n4correction"], values["n4correction_from"] = _n4_choice(values)
    values["architecture"], _ = resolve_model_name(values["model_name"])
    values["margin"] = architecture_of(values["model_name"]).margin
    _method_options(values)
    values["overlays"] = bool(values["overlays"])
    _averaging_options(values)
    values["graph_mode"] = bool(values.get("graph_mode"))
    values["precision"] = values.get("precision") or DEFAULTS.precision
    _engine_options(values)
    if values["engine"] == "tensorflow":  # the other engines' precision is their own
        compat.check_precision(values["precision"], values["graph_mode"])
    values["evaluate"] = bool(values["evaluate"] or values["overlays"])
    if values["postprocess"]:
        values["postprocess_settings"] = load_settings(values["postprocess"]).to_dict()
    return PredictConfig(**values)
