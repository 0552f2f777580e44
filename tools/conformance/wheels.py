"""Wheels fetched once with pip into the user's cache (``~/.cache/densenet3d_keras/``)."""
import glob
import os
import subprocess
import sys


def cache_root():
    """``$XDG_CACHE_HOME/densenet3d_keras`` (default ``~/.cache/densenet3d_keras``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "densenet3d_keras")


def fetch(name, version, folder, platform, python_version="3.7"):
    """The wheel of ``name==version`` for ``platform`` in ``folder``, downloaded with pip the first time.

    Raises:
        RuntimeError: pip could not download it (its message included).
    """
    found = _existing(name, version, folder)
    if found:
        return found
    if not os.path.isdir(folder):
        os.makedirs(folder)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", python_version, "--platform", platform, "--dest", folder,
               "%s==%s" % (name, version)]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    found = _existing(name, version, folder)
    if result.returncode != 0 or not found:
        raise RuntimeError("could not download %s==%s for %s: %s"
                           % (name, version, platform, (result.stderr or result.stdout).strip()[-2000:]))
    return found


def _existing(name, version, folder):
    pattern = "%s-%s-*.whl" % (name.replace("-", "_"), version)
    matches = sorted(glob.glob(os.path.join(folder, pattern)))
    return matches[0] if matches else None
