"""Names that the installed, newer TensorFlow defines (TensorFlow 2 and its Keras 2, tf-keras).

Used for values whose type the walk does not know: an attribute that TensorFlow 2 defines but
TensorFlow 1.15 nowhere does is reported. Only the packages whose objects this project handles
are read (Keras, framework, ops, training, client, eager, data, distribute, saved_model); the
NumPy-compatible API of TensorFlow 2 (``ops/numpy_ops``) is left out, since its names are NumPy's.
"""
import importlib.util
import json
import os

from tools.conformance.library import code_version, defined_names, module_names

PACKAGES = (("tf_keras", ""), ("tensorflow", "python/keras"), ("tensorflow", "python/framework"),
            ("tensorflow", "python/ops"), ("tensorflow", "python/training"), ("tensorflow", "python/client"),
            ("tensorflow", "python/eager"), ("tensorflow", "python/data"), ("tensorflow", "python/distribute"),
            ("tensorflow", "python/saved_model"))
SKIPPED = ("numpy_ops", "_test.py")


def folders():
    """The installed folders read (those that exist)."""
    found = []
    for package, sub in PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = os.path.join(list(spec.submodule_search_locations)[0], sub)
        if os.path.isdir(folder):
            found.append(folder)
    return found


def newer_names(cache_folder):
    """Names defined in :func:`folders`, cached in ``cache_folder`` by version and location."""
    places = folders()
    if not places:
        return None
    key = "%s|%s" % (code_version(), "|".join("%s@%d" % (p, int(os.path.getmtime(p))) for p in places))
    path = os.path.join(cache_folder, "newer-names.json")
    if os.path.isfile(path):
        with open(path) as handle:
            data = json.load(handle)
        if data.get("key") == key:
            return set(data["names"])
    names = set()
    for place in places:
        for folder, _, files in os.walk(place):
            if any(part in folder for part in SKIPPED):
                continue
            for name in files:
                names |= module_names([os.path.relpath(os.path.join(folder, name), place)])
                if name.endswith(".py") and not name.endswith(SKIPPED):
                    with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
                        names |= defined_names(handle.read())
    if not os.path.isdir(cache_folder):
        os.makedirs(cache_folder)
    temporary = path + ".tmp%d" % os.getpid()
    with open(temporary, "w") as handle:
        json.dump({"key": key, "names": sorted(names)}, handle)
    os.replace(temporary, path)
    return names


def common_names():
    """Names that values of other kinds have (NumPy arrays and generators, Python's own types):
    on a value of unknown type such a name says nothing about TensorFlow."""
    import builtins

    import numpy

    kinds = [numpy, numpy.ndarray, numpy.random.Generator, numpy.random.RandomState, builtins,
             str, bytes, list, dict, set, tuple, int, float, object]
    return set(name for kind in kinds for name in dir(kind))
