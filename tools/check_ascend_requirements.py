#!/usr/bin/env python
"""Ascend install check of ``make lint``: ``requirements/ascend.txt`` resolves with pip for
CPython 3.7 on x86-64 and on aarch64, and names every runtime dependency of ``pyproject.toml``.

For each platform the file's environment markers are evaluated for CPython 3.7 on Linux on that
machine (pip would evaluate them for the machine it runs on), and pip resolves what applies as
binary wheels for ``manylinux2014`` (``pip install --dry-run --python-version 3.7 --platform
... --only-binary=:all:``; it reads the wheels' metadata, it installs nothing).

Some pinned versions have no CPython 3.7 wheel on PyPI for a platform and are built from their
source archive on the host (:data:`SOURCE_BUILT`). pip cannot build for another platform, so for
those the check makes sure the source archive of the pinned version is on PyPI, and lets the
resolution go on with a metadata-only wheel of that name and version that requires what the
package's ``setup.py`` requires.

A resolution that succeeded is remembered in ``~/.cache/densenet3d_keras/ascend-resolve/`` (keyed
by the file, this check and the platform), so later runs need no network; a change of the file
resolves again. Exit code 1 when a platform does not resolve or a dependency is missing.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tools.conformance.wheels import cache_root  # noqa: E402

try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
except ImportError:  # pip's own copy
    from pip._vendor.packaging.markers import Marker  # noqa: F401
    from pip._vendor.packaging.requirements import Requirement

REQUIREMENTS = os.path.join("requirements", "ascend.txt")
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}
#: Pinned in the file, but with no CPython 3.7 wheel on PyPI for these machines: pip builds them
#: from the source archive on the host. name -> (machines, what the archive's setup.py requires).
SOURCE_BUILT = {
    "gast": (("x86_64", "aarch64"), []),             # 0.2.2: source archive only (pure Python)
    "h5py": (("aarch64",), ["numpy>=1.7", "six"]),   # 2.10.0: no aarch64 wheel; RUN_REQUIRES of setup.py
}


def environment(machine):
    """PEP 508 marker variables of CPython 3.7 on Linux on ``machine``."""
    return {"python_version": "3.7", "python_full_version": "3.7.17", "platform_machine": machine,
            "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "implementation_version": "3.7.17", "platform_release": "", "platform_version": "",
            "extra": ""}


def requirements(text, machine):
    """The requirements of ``text`` that apply on ``machine`` (markers evaluated, then dropped)."""
    found = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(environment(machine)):
            requirement.marker = None
            found.append(requirement)
    return found


def pinned_version(requirement):
    pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    if len(pins) != 1:
        raise ValueError("%s is built from source and must be pinned with ==, not %r"
                         % (requirement.name, str(requirement.specifier)))
    return pins[0]


def metadata_wheel(folder, name, version, requires):
    """A wheel holding only the metadata of ``name==version`` (for the resolver)."""
    stem = "%s-%s" % (re.sub(r"[-.]+", "_", name), version)
    path = os.path.join(folder, stem + "-py3-none-any.whl")
    metadata = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n%s" % (
        name, version, "".join("Requires-Dist: %s\n" % r for r in requires))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(stem + ".dist-info/METADATA", metadata)
        archive.writestr(stem + ".dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: densenet3d-keras\n"
                                                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        archive.writestr(stem + ".dist-info/RECORD", "")
    return path


def pip(*arguments):
    command = [sys.executable, "-m", "pip"] + list(arguments)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    lines = [line for line in (result.stderr + result.stdout).splitlines()
             if line.strip() and not line.startswith("WARNING: Location")]
    return result.returncode, "\n".join(lines[-15:])


def source_archive(name, version, folder):
    """Make sure the source archive of ``name==version`` is on PyPI (kept in ``folder``)."""
    prefix = "%s-%s." % (name, version)
    if os.path.isdir(folder) and any(f.startswith(prefix) for f in os.listdir(folder)):
        return None
    code, output = pip("download", "--quiet", "--no-deps", "--no-binary", ":all:", "--dest", folder,
                       "%s==%s" % (name, version))
    return None if code == 0 else "no source archive of %s==%s: %s" % (name, version, output)


def resolve(wanted, machine, cache):
    """``(resolved "name version" list, problem or None)`` for one machine."""
    scratch = tempfile.mkdtemp(prefix="ascend-resolve-")
    links = os.path.join(scratch, "links")
    os.makedirs(links)
    lines = []
    for requirement in wanted:
        built = SOURCE_BUILT.get(requirement.name)
        if built and machine in built[0]:
            version = pinned_version(requirement)
            problem = source_archive(requirement.name, version, os.path.join(cache, "sdists"))
            if problem:
                return [], problem
            metadata_wheel(links, requirement.name, version, built[1])
        lines.append(str(requirement))
    listing = os.path.join(scratch, "requirements.txt")
    with open(listing, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    report = os.path.join(scratch, "report.json")
    code, output = pip("install", "--dry-run", "--quiet", "--ignore-installed", "--target",
                       os.path.join(scratch, "target"), "--python-version", "3.7", "--platform",
                       PLATFORMS[machine], "--only-binary=:all:", "--find-links", links,
                       "--report", report, "-r", listing)
    if code != 0:
        return [], output
    with open(report) as handle:
        installed = json.load(handle)["install"]
    return sorted("%s %s" % (item["metadata"]["name"], item["metadata"]["version"]) for item in installed), None


def missing_dependencies(root, text):
    """Runtime dependencies of ``pyproject.toml`` that the requirements file does not name."""
    with open(os.path.join(root, "pyproject.toml")) as handle:
        project = handle.read()
    block = re.search(r"^dependencies = \[(.*?)\]", project, re.S | re.M).group(1)
    needed = set(Requirement(item).name.lower() for item in re.findall(r'"([^"]+)"', block))
    named = set(r.name.lower() for machine in PLATFORMS for r in requirements(text, machine))
    return sorted(needed - named)


def check(root, cache, log=print):
    """Resolve the file for every platform (or recall an earlier resolution); the problems."""
    with open(os.path.join(root, REQUIREMENTS)) as handle:
        text = handle.read()
    problems = ["%s: %s is a runtime dependency (pyproject.toml) but is not named"
                % (REQUIREMENTS, name) for name in missing_dependencies(root, text)]
    with open(os.path.abspath(__file__), "rb") as handle:
        key = hashlib.sha1(text.encode("utf-8") + handle.read()).hexdigest()[:16]
    for machine in sorted(PLATFORMS):
        remembered = os.path.join(cache, "%s-%s.json" % (machine, key))
        if os.path.isfile(remembered):
            with open(remembered) as handle:
                resolved = json.load(handle)
            log("%s: CPython 3.7 / %s resolves (as before): %s" % (REQUIREMENTS, machine, ", ".join(resolved)))
            continue
        resolved, problem = resolve(requirements(text, machine), machine, cache)
        if problem:
            problems.append("%s does not resolve for CPython 3.7 on %s:\n%s" % (REQUIREMENTS, machine, problem))
            continue
        log("%s: CPython 3.7 / %s resolves: %s" % (REQUIREMENTS, machine, ", ".join(resolved)))
        with open(remembered, "w") as handle:
            json.dump(resolved, handle)
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=ROOT)
    parser.add_argument("--cache", default=os.path.join(cache_root(), "ascend-resolve"))
    args = parser.parse_args(argv)
    started = time.time()
    if not os.path.isdir(args.cache):
        os.makedirs(args.cache)
    problems = check(args.root, args.cache)
    for problem in problems:
        print(problem)
    print("ascend requirements: %d problem(s) (%.1f s)" % (len(problems), time.time() - started))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
