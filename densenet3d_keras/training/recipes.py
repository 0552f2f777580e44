"""Named training configurations (``--recipe``): sets of flag values chosen by measurement.

Without ``--recipe`` a run trains as the reference did (docs/spec.md), which the ModelZoo
scripts run. A recipe fills in the flags it names unless they are given on the command line,
so ``--recipe real -e 10`` is the recipe with ten epochs.

``real``: training on real, skull-stripped BraTS scans within a CPU budget; chosen by the
cross-validation on real cases in docs/real_data.md, where its figures and the comparisons
behind each value are.
"""

#: Recipe name -> {configuration key: value}; keys are :class:`TrainConfig` fields, except
#: ``patch_size``, which sets the three patch-size flags.
RECIPES = {
    "real": {
        "padding": "valid",
        "precision": "bf16",
        "patch_size": 48,
        "sampling": "balanced",
        "shuffle": True,
        "augment": "flip,intensity",
        "lr_schedule": "poly",
        "lr": 1e-3,
        "n_pos": 24,
        "n_neg": 12,
        "num_epochs": 16,
    },
}


def apply_recipe(args, given=()):
    """Fill parsed flags (an ``argparse.Namespace``) with the values of ``args.recipe``.

    Args:
        args: the parsed ``train_keras.py`` flags; ``args.recipe`` is a name of
            :data:`RECIPES` or ``None`` (nothing changes).
        given: configuration keys set on the command line
            (:func:`densenet3d_keras.cli.train.given_options`); they keep their values.

    Returns:
        ``args``.

    Raises:
        ValueError: an unknown recipe name (the choices are listed).
    """
    name = getattr(args, "recipe", None)
    if name is None:
        return args
    if name not in RECIPES:
        raise ValueError("unknown recipe %r (choose from %s)" % (name, ", ".join(sorted(RECIPES))))
    for key, value in RECIPES[name].items():
        if key == "patch_size":
            for flag in ("hsize", "wsize", "csize"):
                if flag not in given:
                    setattr(args, flag, value)
        elif key not in given:
            setattr(args, key, value)
    return args
