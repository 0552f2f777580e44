"""The patients of a training run: case selection and the preprocessing cache."""
import time

from generators.brats import discover_cases, resolve_case_list
from generators.cache import load_cached


def select_cases(config):
    """The training cases of a configuration (list file, ``train.txt`` or all), N4 applied."""
    names = resolve_case_list(config.root_path, config.train_list)
    cases = discover_cases(config.root_path, names, require_label=True,
                           skip_incomplete=config.skip_incomplete)
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
