#!/usr/bin/env python
"""Run every benchmark script in this folder (``make bench``), one process each, in name order.

Each script prints its own figures and ratios; this runner adds a header per script and exits
non-zero if any script failed. ``python benchmarks/run_all.py inference`` runs only the
scripts whose names contain one of the given words.
"""
import glob
import os
import subprocess
import sys
import time


def main(argv=None):
    words = list(sys.argv[1:] if argv is None else argv)
    here = os.path.dirname(os.path.abspath(__file__))
    scripts = [p for p in sorted(glob.glob(os.path.join(here, "*.py")))
               if os.path.basename(p) not in ("run_all.py", "__init__.py")
               and not os.path.basename(p).startswith("_")
               and (not words or any(w in os.path.basename(p) for w in words))]
    failed = []
    for script in scripts:
        name = os.path.basename(script)
        print("=" * 72)
        print("benchmark %s" % name)
        print("=" * 72)
        sys.stdout.flush()
        started = time.time()
        code = subprocess.call([sys.executable, script], cwd=os.path.dirname(here))
        print("[%s finished in %.0f s, exit code %d]" % (name, time.time() - started, code))
        if code != 0:
            failed.append(name)
    if failed:
        print("failed: %s" % ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
