"""The patients of a training run: case selection and the preprocessing cache."""
import time

from generators.brats import discover_cases, resolve_case_list
from generators.cache import load_cached


def select_cases(config, held_out=(), log=print):
    """The training cases of a configuration (list file, ``train.txt`` or all), N4 applied.

    Args:
        config: the resolved configuration.
        held_out: ids of validation cases. Without a training list they are left out of
            "every case under the root" (with a log line); a training list naming one is an error.
        log: callable taking a line.

    Raises:
        ValueError: the training list names a held-out case.
    """
    names = resolve_case_list(config.root_path, config.train_list)
    cases = discover_cases(config.root_path, names, require_label=True,
                           skip_incomplete=config.skip_incomplete)
    held_out = set(held_out)
    if held_out and names is None:
        cases = [case for case in cases if case.case_id not in held_out]
        log("training on every case under %s except the %d validation case(s)"
            % (config.root_path, len(held_out)))
        if not cases:
            raise ValueError("no training case left under %s besides the --val-list cases" % config.root_path)
    overlap = sorted(set(case.case_id for case in cases) & held_out)
    if overlap:
        raise ValueError("--val-list %s names training cases: %s (a validation case must not be "
                         "trained on)" % (config.val_list, ", ".join(overlap)))
    if config.n4correction:
        cases = [case.corrected() for case in cases]
    return cases


def prepare_cases(cases, cache_dir=None, patch_size=38, log=print):
    """Load every case through the preprocessing cache, reporting progress."""
    prepared = []
    started = time.time()
    for index, case in enumerate(cases, 1):
        prepared.append(load_cached(case, cache_dir, minimum=patch_size))
        log("prepared case %d/%d: %s (%.1f s)" % (index, len(cases), case.case_id, time.time() - started))
    return prepared
