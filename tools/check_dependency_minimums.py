#!/usr/bin/env python
"""Minimum-version check of ``make lint``: what this code uses of its runtime dependencies
(NumPy, SciPy, Matplotlib, nibabel, h5py, SimpleITK) exists in the lowest version of each that
``pyproject.toml`` allows, so that those minimums are true (also for Python 3.7 / TensorFlow 1.15
installs, ``requirements/ascend.txt``, whose lower bounds must not be below them).

The CPython 3.7 x86-64 wheel of each minimum version is downloaded once into
``~/.cache/densenet3d_keras/minimums/`` and read like TensorFlow's (see
:mod:`tools.conformance.project`), without version switches: all of the code is checked. Only
the Python parts of a library can be read: functions implemented in C (much of NumPy, SciPy's
compiled routines, SimpleITK's filters behind its generated ``SimpleITK.py``) are taken on trust,
their names included where the Python layer imports them wholesale.

Output: ``file:line name (not in <library> <version>)`` per finding, then a summary line; exit
code 1 when there is a finding or a lower bound of ``requirements/ascend.txt`` is below one of
``pyproject.toml``.
"""
import argparse
import os
import re
import sys
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.check_ascend_requirements import REQUIREMENTS, Requirement, requirements  # noqa: E402
from tools.check_tf115 import project_modules  # noqa: E402
from tools.conformance.library import Libraries, Library  # noqa: E402
from tools.conformance.project import Walk  # noqa: E402
from tools.conformance.sources import WheelTree  # noqa: E402
from tools.conformance.wheels import cache_root, fetch  # noqa: E402

PLATFORM = "manylinux2014_x86_64"


def minimums(root):
    """``{distribution: lowest version}`` of the runtime dependencies in ``pyproject.toml``."""
    with open(os.path.join(root, "pyproject.toml")) as handle:
        block = re.search(r"^dependencies = \[(.*?)\]", handle.read(), re.S | re.M).group(1)
    found = {}
    for item in re.findall(r'"([^"]+)"', block):
        requirement = Requirement(item)
        lows = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
        if lows:
            found[requirement.name] = lows[0]
    return found


def _full(version):
    """``1.4`` -> ``1.4.0`` (the version in the wheel's file name)."""
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def lower_bounds_below(root, lowest):
    """Requirements of ``requirements/ascend.txt`` whose lower bound is below pyproject's."""
    from packaging.version import Version

    with open(os.path.join(root, REQUIREMENTS)) as handle:
        text = handle.read()
    found = []
    for machine in ("x86_64", "aarch64"):
        for requirement in requirements(text, machine):
            low = lowest.get(requirement.name)
            allowed = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==")]
            if low and (not allowed or Version(allowed[0]) < Version(low)):
                found.append("%s: %s allows versions below %s (pyproject.toml)" % (REQUIREMENTS, requirement, low))
    return sorted(set(found))


def dependency_libraries(lowest, cache):
    """``Libraries`` of the minimum version of every dependency, by its top-level packages."""
    libraries = {}
    for name, version in sorted(lowest.items()):
        wheel = fetch(name, _full(version), cache, PLATFORM)
        library = Library(WheelTree(wheel), "%s %s" % (name, _full(version)), wheel + ".summaries.json",
                          os.path.basename(wheel))
        for package in top_level(wheel, name):
            libraries[package] = library
    return Libraries(libraries)


def top_level(wheel, name):
    """The top-level packages a wheel installs (its ``top_level.txt``, else its name)."""
    with zipfile.ZipFile(wheel) as archive:
        listed = [n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")]
        if listed:
            return [line.strip() for line in archive.read(listed[0]).decode().splitlines()
                    if line.strip() and not line.startswith("_")]
    return [name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=ROOT)
    parser.add_argument("--cache", default=os.path.join(cache_root(), "minimums"))
    args = parser.parse_args(argv)
    started = time.time()
    lowest = minimums(args.root)
    libraries = dependency_libraries(lowest, args.cache)
    walk = Walk(libraries, args.root, tuple(sorted(libraries.by_package)))
    findings = ["%s:%d %s" % finding for finding in walk.run(project_modules(args.root))]
    libraries.save()
    findings += lower_bounds_below(args.root, lowest)
    for line in findings:
        print(line)
    print("dependency minimums: %s; %d finding(s) (%.1f s)"
          % (", ".join("%s %s" % (n, _full(v)) for n, v in sorted(lowest.items())), len(findings),
             time.time() - started))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
