"""Python source trees to read a library from: a wheel (zip) or a folder.

Module names are those the code imports (``tensorflow.python.keras``); ``roots`` maps a top-level
package to the folder that holds it in the tree (TensorFlow 1.15's wheel keeps ``tensorflow``'s
modules under ``tensorflow_core/``).
"""
import os
import zipfile


class SourceTree(object):
    """Base class: :meth:`read` a module by its dotted name, list :meth:`files`."""

    def __init__(self, roots=None):
        self.roots = dict(roots or {})

    def _paths(self, module):
        head, _, rest = module.partition(".")
        base = self.roots.get(head, head) + ("/" + rest.replace(".", "/") if rest else "")
        return [(base + "/__init__.py", True), (base + ".py", False)]

    def read(self, module):
        """``(source text, is_package)`` of ``module``, or ``None`` if the tree has no such module."""
        for path, is_package in self._paths(module):
            text = self._text(path)
            if text is not None:
                return text, is_package
        return None

    def is_module(self, module):
        return any(self._exists(path) for path, _ in self._paths(module))

    def _text(self, path):
        raise NotImplementedError

    def _exists(self, path):
        raise NotImplementedError

    def files(self):
        """Paths of all ``.py`` files of the tree."""
        raise NotImplementedError


class WheelTree(SourceTree):
    """The Python sources inside a wheel."""

    def __init__(self, path, roots=None):
        super(WheelTree, self).__init__(roots)
        self.path = path
        self._zip = zipfile.ZipFile(path)
        self._names = set(self._zip.namelist())

    def _text(self, path):
        if path not in self._names:
            return None
        return self._zip.read(path).decode("utf-8", "replace")

    def _exists(self, path):
        return path in self._names

    def files(self):
        return sorted(name for name in self._names if name.endswith(".py"))


class FolderTree(SourceTree):
    """The Python sources under a folder (tests plant small libraries this way)."""

    def __init__(self, folder, roots=None):
        super(FolderTree, self).__init__(roots)
        self.folder = folder

    def _text(self, path):
        full = os.path.join(self.folder, path)
        if not os.path.isfile(full):
            return None
        with open(full, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def _exists(self, path):
        return os.path.isfile(os.path.join(self.folder, path))

    def files(self):
        found = []
        for folder, _, names in os.walk(self.folder):
            found += [os.path.relpath(os.path.join(folder, n), self.folder).replace(os.sep, "/")
                      for n in names if n.endswith(".py")]
        return sorted(found)


class MemoryTree(SourceTree):
    """Sources held in memory: ``{path: text}`` (stubs generated from a recorded API)."""

    def __init__(self, files, roots=None):
        super(MemoryTree, self).__init__(roots)
        self.texts = dict(files)

    def _text(self, path):
        return self.texts.get(path)

    def _exists(self, path):
        return path in self.texts

    def files(self):
        return sorted(self.texts)
