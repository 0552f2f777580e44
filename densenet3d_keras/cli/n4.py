"""``python -m generators.n4``: N4 bias-field correction of a BraTS dataset with SimpleITK.

Usage::

    python -m generators.n4 <dataset root> [--workers N] [--list train.txt] [--overwrite]
        [--skip-incomplete] [--shrink-factor 3] [--iterations 50x50x30x20]
        [--spline-distance 300] [--convergence-threshold 0] [--modalities flair,t2,t1,t1ce]

Writes ``<case>_<modality>_corrected.nii.gz`` beside each original (see :mod:`generators.n4`).
Cases run in spawned worker processes, each limited to ``CPUs // workers`` SimpleITK threads.
Exit codes: 0 every case succeeded, 1 at least one case failed (the others are still
corrected), 2 bad arguments or dataset, 130 interrupted.
"""
import os
import sys
from collections import OrderedDict
from typing import List, Optional  # noqa: F401 (type comments)

from densenet3d_keras.cli.runner import ArgumentParser, run_command
from densenet3d_keras.core.errors import first_line
from generators import n4
from generators.brats import discover_cases, resolve_case_list


def build_parser():
    """The ``python -m generators.n4`` argument parser."""
    parser = ArgumentParser(
        prog="python -m generators.n4",
        description="N4 bias-field correction of BraTS cases with SimpleITK; writes "
                    "<case>_<modality>_corrected.nii.gz beside each original.")
    parser.add_argument("root", help="dataset root with one folder per case")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel worker processes (default: min(%d, CPUs))" % n4.MAX_DEFAULT_WORKERS)
    parser.add_argument("--list", default=None,
                        help="case list file (one folder name per line; relative paths are also "
                             "looked up in the root); default: every case folder")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing outputs")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="leave out (and list) folders under the root that are not complete "
                             "cases, instead of stopping")
    parser.add_argument("--shrink-factor", type=int, default=n4.DEFAULT_SHRINK_FACTOR,
                        help="subsampling for the estimate (default %(default)s)")
    parser.add_argument("--iterations", default=n4.format_iterations(n4.DEFAULT_ITERATIONS),
                        help="iterations per fitting level (default %(default)s)")
    parser.add_argument("--spline-distance", type=float, default=n4.DEFAULT_SPLINE_DISTANCE_MM,
                        help="B-spline knot distance in mm (default %(default)s)")
    parser.add_argument("--convergence-threshold", type=float, default=n4.DEFAULT_CONVERGENCE_THRESHOLD,
                        help="stop a level when the field changes less than this "
                             "(default %(default)s: all iterations, as ANTs)")
    parser.add_argument("--modalities", default=",".join(n4.DEFAULT_MODALITIES),
                        help="comma-separated modalities to correct (default %(default)s)")
    return parser


def _resolve(args):
    """Validate the arguments into (cases, params, modalities, workers); ValueError/OSError."""
    if not os.path.isdir(args.root):
        raise FileNotFoundError("dataset root not found: %s" % args.root)
    iterations = n4.parse_iterations(args.iterations)
    modalities = n4.parse_modalities(args.modalities)
    params = dict(shrink_factor=args.shrink_factor, iterations=iterations,
                  spline_distance_mm=args.spline_distance,
                  convergence_threshold=args.convergence_threshold)
    n4._check_parameters(histogram_bins=n4.DEFAULT_HISTOGRAM_BINS, **params)
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be >= 1, got %d" % args.workers)
    names = resolve_case_list(args.root, args.list) if args.list else None
    cases = discover_cases(args.root, names, skip_incomplete=args.skip_incomplete)
    workers = args.workers if args.workers is not None else min(n4.MAX_DEFAULT_WORKERS, n4.available_cpus())
    return cases, params, modalities, max(1, min(workers, len(cases)))


def n4_command(args):
    """Resolve the arguments and correct the cases; returns the exit code."""
    cases, params, modalities, workers = _resolve(args)
    threads = n4.threads_per_worker(workers)
    print("n4: %d case(s) under %s; %d worker(s) x %d SimpleITK thread(s); shrink factor %d, "
          "iterations %s, spline distance %g mm, convergence threshold %g, modalities %s%s"
          % (len(cases), args.root, workers, threads, params["shrink_factor"],
             n4.format_iterations(params["iterations"]), params["spline_distance_mm"],
             params["convergence_threshold"], ",".join(modalities),
             ", overwrite" if args.overwrite else ""))
    sys.stdout.flush()
    with n4.interrupt_handling(workers):
        return _run(cases, args.overwrite, modalities, params, workers, threads)


def main(argv=None):
    # type: (Optional[List[str]]) -> int
    """Run ``python -m generators.n4``; returns the exit code (0 ok, 1 a case failed, 2 bad
    arguments, 130 interrupted)."""
    return run_command(build_parser(), n4_command, argv)


def _run(cases, overwrite, modalities, params, workers, threads):
    """Correct the cases, print progress and a summary; returns the exit code."""
    results = n4.run_cases(cases, overwrite, modalities, params, workers, threads)

    counts = OrderedDict([("corrected", 0), ("skipped", 0), ("failed", 0)])
    files = OrderedDict([(n4.STATUS_CORRECTED, 0), (n4.STATUS_SKIPPED, 0)])
    failures = []
    try:
        for done, (case, statuses, seconds, error) in enumerate(results, 1):
            prefix = "[%d/%d] %s" % (done, len(cases), case.case_id)
            if error is not None:
                counts["failed"] += 1
                failures.append((case.case_id, first_line(error)))
                sys.stderr.write("%s FAILED after %.1f s: %s\n" % (prefix, seconds, first_line(error)))
                sys.stderr.flush()
                continue
            for status in statuses.values():
                files[status] += 1
            written = sum(1 for status in statuses.values() if status == n4.STATUS_CORRECTED)
            if written:
                counts["corrected"] += 1
                print("%s done in %.1f s (%d file(s) corrected, %d already present)"
                      % (prefix, seconds, written, len(statuses) - written))
            else:
                counts["skipped"] += 1
                print("%s skipped (all %d outputs exist; --overwrite recomputes them)"
                      % (prefix, len(statuses)))
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: no partial _corrected file is left behind; "
                         "run again to finish (existing outputs are skipped)\n")
        return 130

    print("n4 summary: %d case(s) corrected, %d skipped, %d failed (%d file(s) written, %d already present)"
          % (counts["corrected"], counts["skipped"], counts["failed"],
             files[n4.STATUS_CORRECTED], files[n4.STATUS_SKIPPED]))
    for case_id, message in failures:
        sys.stderr.write("failed: %s: %s\n" % (case_id, message))
    return 1 if failures else 0
