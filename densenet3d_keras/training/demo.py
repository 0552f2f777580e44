"""The ``--demo`` run: a synthetic BraTS-like dataset and training sizes for a 2-core CPU."""
import os

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


def apply_demo_defaults(config, given=()):
    """Fill a ``--demo`` configuration: its dataset and sizes, except options in ``given``.

    Args:
        config: the resolved configuration.
        given: configuration keys set on the command line
            (:func:`densenet3d_keras.cli.train.given_options`).
    """
    config.root_path = config.root_path or demo_root(config.cache_dir)
    if "val_list" not in given:
        config.val_list = os.path.join(config.root_path, "val.txt")
    for key in ("n_pos", "n_neg", "num_epochs", "padding"):
        if key not in given:
            setattr(config, key, DEMO[key])
    return config
