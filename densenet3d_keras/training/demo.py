"""The ``--demo`` runs: a synthetic BraTS-like dataset, and what ``--demo`` fills in for
``train_keras.py`` (sizes for a 2-core CPU) and ``predict_keras.py`` (the demo's checkpoint,
test cases and output folder), each unless given on the command line
(:func:`apply_demo_defaults`).
"""
import os
from collections import OrderedDict

from densenet3d_keras.models.checkpoints import best_checkpoint_name
from generators.cache import default_cache_dir
from generators.synthetic import write_dataset

#: Synthetic dataset of ``--demo``: cases, shape, sampling and epochs sized for a 2-core CPU.
#: The demo trains with valid padding (same weights and inference logits, faster steps) on 3
#: cases, validates on 1 after every epoch, and ``predict_keras.py --demo`` segments the other 2.
DEMO = {"n_cases": 6, "splits": (0.5, 1.0 / 6, 1.0 / 3), "shape": (96, 96, 72), "n_pos": 16,
        "n_neg": 16, "num_epochs": 3, "seed": 7, "padding": "valid"}


def demo_root(cache_dir=None):
    """Folder of the demo dataset (inside the preprocessing cache)."""
    return os.path.join(cache_dir or default_cache_dir(), "demo_data")


def ensure_demo_dataset(root, log=print):
    """Write the synthetic demo dataset into ``root`` unless it is already there."""
    if all(os.path.isfile(os.path.join(root, name)) for name in ("train.txt", "val.txt", "test.txt")):
        return root
    log("writing a synthetic BraTS-like demo dataset (%d cases) to %s" % (DEMO["n_cases"], root))
    write_dataset(root, n_cases=DEMO["n_cases"], shape=DEMO["shape"], seed=DEMO["seed"],
                  splits=DEMO["splits"])
    return root


#: The run folder ``train_keras.py --demo`` writes and ``predict_keras.py --demo`` reads.
PREDICTION_DEMO_RUN = os.path.join("runs", "dense24")


def _demo_checkpoint(options):
    """The demo run's best validated checkpoint, else its folder (its newest).

    Raises:
        FileNotFoundError: no demo run (``train_keras.py --demo`` makes one).
    """
    folder = PREDICTION_DEMO_RUN
    if not os.path.exists(folder):
        raise FileNotFoundError("no demo checkpoint in %s: run `python train_keras.py --demo` first" % folder)
    # The demo validates every epoch: predict with its best epoch, not its last.
    best = os.path.join(folder, best_checkpoint_name("dense24"))
    return best if os.path.isfile(best) else folder


#: What ``train_keras.py --demo`` fills in, in order: option -> value, or a function of the
#: options filled so far.
TRAINING_DEMO = OrderedDict([
    ("root_path", lambda options: demo_root(options.cache_dir)),
    ("val_list", lambda options: os.path.join(options.root_path, "val.txt")),
    ("n_pos", DEMO["n_pos"]),
    ("n_neg", DEMO["n_neg"]),
    ("num_epochs", DEMO["num_epochs"]),
    ("padding", DEMO["padding"]),
])
#: What ``predict_keras.py --demo`` fills in: the demo's test cases (unless one case is
#: given with ``-i``) with its best checkpoint, evaluated with overlays.
PREDICTION_DEMO = OrderedDict([
    ("checkpoint", _demo_checkpoint),
    ("root_path", lambda options: options.root_path if options.case_dir else demo_root(None)),
    ("case_list", lambda options: options.case_list if options.case_dir else "test.txt"),
    ("out", os.path.join(PREDICTION_DEMO_RUN, "demo_prediction")),
    ("evaluate", True),
    ("overlays", True),
])


def apply_demo_defaults(options, given=(), defaults=TRAINING_DEMO):
    """Fill the options of a ``--demo`` run that the command line did not give.

    Args:
        options: the parsed flags or the resolved configuration (set as attributes).
        given: option names set on the command line
            (:func:`densenet3d_keras.cli.runner.given_options`); they keep their values.
        defaults: :data:`TRAINING_DEMO` or :data:`PREDICTION_DEMO`.

    Returns:
        ``options``.

    Raises:
        FileNotFoundError: ``predict_keras.py --demo`` without a demo run to predict with.
    """
    for key, value in defaults.items():
        if key not in given:
            setattr(options, key, value(options) if callable(value) else value)
    return options
