"""The save folder of a training run: one run at a time, and only that run's checkpoints.

Rules (README, "Training"):

- Before anything is written, the save folder (``-sp``), the log folder (``--log-dir``) and
  the TensorBoard folder (``--tensorboard``) must be folders this process can write, or can
  create.
- The run holds ``<save>/.lock`` (pid, host and start time, created exclusively) from before
  its first write until it ends, also on an error or an interrupt. A second run refuses,
  naming the holder; the lock of a process that is gone (same host) is taken over with a note.
- A fresh run (not ``-c true``) refuses a save folder that holds checkpoints of another run;
  so does a resumed run whose checkpoint is in another folder. A run resumed in its own folder
  refuses checkpoints of itself later than the epoch it resumes after (they would be
  overwritten) and counts its earlier ones towards ``--keep``. Checkpoints of other models in
  that folder are left alone. (``--demo`` replaces an earlier demo run's checkpoints.)
- Temporary files of checkpoints, ``checkpoint.json``, ``config.json``, ``history.csv`` and
  the learning curves left by a killed process (see :func:`densenet3d_keras.core.fileio.atomic_output`) are removed, with a note.

In a data-parallel run only the chief writes the save folder, so only the chief takes the lock
and applies these checks; every worker checks that it can write its log folder.
"""
import io
import json
import os
import socket
import time

from densenet3d_keras.models.checkpoints import (POINTER,
                                                 RUN_CONFIG,
                                                 checkpoint_epoch,
                                                 checkpoint_prefix,
                                                 find_checkpoint,
                                                 is_checkpoint_name,
                                                 list_best_checkpoints,
                                                 list_checkpoints,
                                                 read_checkpoint_info,
                                                 read_run_config)
from callbacks.history import CURVES, HISTORY
from densenet3d_keras.core.fileio import make_output_folder, pid_alive, remove_stale_temporaries

LOCK = ".lock"
CONFIG = RUN_CONFIG
_SHOWN = 3


def check_output_folder(path, what):
    """Raise unless ``path`` is a folder this process can write, or one it can create.

    Writes nothing.

    Args:
        path: the folder.
        what: how to name it in the message, e.g. ``"save folder"`` or ``"log folder"``.

    Raises:
        OSError: ``path`` (or a parent) is a file or a broken link, or it is not writable.
    """
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise OSError("%s %s is not writable" % (what, path))
        return
    if os.path.lexists(path):
        raise OSError("%s %s exists and is not a folder" % (what, path))
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OSError("cannot create %s %s: %s is not a folder" % (what, path, parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OSError("cannot create %s %s: %s is not writable" % (what, path, parent))


class RunLock(object):
    """``<folder>/.lock``: the folder belongs to one run (this process) until :meth:`release`.

    The file holds ``{"pid", "host", "started"}`` and is created with ``O_CREAT | O_EXCL``.

    Args:
        folder: the save folder (must exist).
        log: callable taking a line, told when a stale lock is taken over.
    """

    def __init__(self, folder, log=None):
        self.folder = folder
        self.path = os.path.join(folder, LOCK)
        self.log = log
        self.held = False
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def acquire(self):
        """Take the lock.

        Raises:
            OSError: another run holds it (the message names its pid and host), or the file
                cannot be created.
        """
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.path)
                if not self._stale(holder):
                    raise OSError(self._busy_message(holder))
                if read_lock(self.path) != holder:  # someone else took it over meanwhile
                    continue
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                if self.log is not None:
                    self.log("took over the stale lock %s of pid %d on %s (started %s), which is "
                             "no longer running" % (self.path, holder["pid"], holder["host"],
                                                    holder.get("started", "?")))
                continue
            except OSError as error:
                raise OSError("cannot create the lock file %s: %s" % (self.path, error.strerror or error))
            try:
                os.write(descriptor, (json.dumps(self.holder, sort_keys=True) + "\n").encode("utf-8"))
            finally:
                os.close(descriptor)
            self.held = True
            return
        raise OSError("cannot take the lock %s: other runs keep taking it" % self.path)

    def release(self):
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        if read_lock(self.path) == self.holder:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass

    def _stale(self, holder):
        return (holder is not None and holder["host"] == self.holder["host"]
                and not pid_alive(holder["pid"]))

    def _busy_message(self, holder):
        if holder is None:
            return ("save folder %s is locked by %s, which names no run; remove it if no run "
                    "uses the folder" % (self.folder, self.path))
        return ("save folder %s is in use by another run (pid %d on %s, started %s); wait for it "
                "or choose another -sp (if that run is gone, remove %s)"
                % (self.folder, holder["pid"], holder["host"], holder.get("started", "?"), self.path))


def read_lock(path):
    """The holder recorded in a lock file, ``{"pid", "host", "started"}``, or ``None`` if the
    file is missing, empty or malformed."""
    try:
        with io.open(path, encoding="utf-8") as handle:
            holder = json.load(handle)
    except (OSError, ValueError):
        return None
    if (not isinstance(holder, dict) or not isinstance(holder.get("pid"), int)
            or not isinstance(holder.get("host"), str)):
        return None
    return holder


def _is_run_output(target, suffix):
    """Whether ``target`` (with a temporary ``suffix``) is a file a training run writes."""
    return ((suffix == ".h5" and is_checkpoint_name(target))
            or (suffix == "" and target in (POINTER, CONFIG, HISTORY))
            or (suffix == ".png" and target == CURVES))


def _names(paths):
    names = sorted(os.path.basename(path) for path in paths)
    return " ".join(names[:_SHOWN]) + (" ..." if len(names) > _SHOWN else "")


class RunFolder(object):
    """The checks and the lock of :mod:`this module <densenet3d_keras.training.run_folder>` around a run.

    Construct it before anything is written (it checks the output folders), enter it before
    the first write (it takes the lock and checks the save folder's checkpoints), and leave it
    when the run ends: it releases the lock, and removes the save folder again if it created
    it and nothing else was written there.

    Args:
        config: the resolved configuration.
        is_chief: whether this process writes the save folder.
        log: callable taking a line, for notes (stale lock or temporary files removed).

    Attributes:
        checkpoint: on a resumed run, the checkpoint file resumed from.
        previous: checkpoints of the run in the save folder from before this process (a run
            resumed in its folder); the checkpoint callback prunes them with its own.
        notes: the lines given to ``log``.
    """

    def __init__(self, config, is_chief=True, log=None):
        self.config = config
        self.folder = config.save_path
        self.is_chief = is_chief
        self.notes = []
        self._log = log
        self.checkpoint = None
        self.previous = []
        self._lock = None
        self._created = False
        if is_chief:
            check_output_folder(self.folder, "save folder")
            if config.tensorboard:
                check_output_folder(config.tensorboard, "TensorBoard folder")
        check_output_folder(config.log_dir, "log folder")
        if config.continue_training:
            self.checkpoint = find_checkpoint(config.load_path, self.note)

    def note(self, line):
        self.notes.append(line)
        if self._log is not None:
            self._log(line)

    def __enter__(self):
        if not self.is_chief:
            return self
        self._created = make_output_folder(self.folder)
        self._lock = RunLock(self.folder, self.note)
        try:
            self._lock.acquire()
            self.previous = self._run_checkpoints()
            remove_stale_temporaries(self.folder, _is_run_output, self.note)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._created:
            self._created = False
            try:
                os.rmdir(self.folder)  # only when empty: this run wrote nothing there
            except OSError:
                pass
        return False

    def _run_checkpoints(self):
        """The run's earlier checkpoints in the save folder; raise if there are others."""
        found = list_checkpoints(self.folder)
        best = list_best_checkpoints(self.folder)
        if not found and not best:
            return []
        config = self.config
        if self.checkpoint is not None and _same_folder(os.path.dirname(self.checkpoint), self.folder):
            prefix = config.model_name.replace("-", "_")
            epoch = read_checkpoint_info(self.checkpoint)["epoch"] or 0
            mine = [path for _, path in found if checkpoint_prefix(path) == prefix]
            later = [path for path in mine if checkpoint_epoch(path) > epoch]
            if later:
                raise ValueError("save folder %s holds checkpoints of this run after epoch %d, which "
                                 "resuming from %s would overwrite (%s); resume from the newest, or "
                                 "choose another -sp" % (self.folder, epoch, os.path.basename(self.checkpoint),
                                                         _names(later)))
            return sorted(mine, key=lambda path: (checkpoint_epoch(path), path))
        if config.demo and _was_demo(self.folder):
            pointer = os.path.join(self.folder, POINTER)
            for path in [path for _, path in sorted(found)] + best + [pointer]:
                if os.path.lexists(path):
                    os.remove(path)
                    self.note("removed %s of the earlier --demo run" % path)
            return []
        if self.checkpoint is not None:
            raise ValueError("save folder %s already holds checkpoints of another run (%s); a run resumed "
                             "from %s must save elsewhere: choose another -sp"
                             % (self.folder, _names([path for _, path in found] + best), self.checkpoint))
        raise ValueError("save folder %s already holds checkpoints of another run (%s); resume it "
                         "with -c true -lp %s, or choose another -sp"
                         % (self.folder, _names([path for _, path in found] + best), self.folder))


def _same_folder(first, second):
    return os.path.realpath(first or ".") == os.path.realpath(second or ".")


def _was_demo(folder):
    """Whether the run that wrote ``folder`` was a ``--demo`` run (by its ``config.json``)."""
    return read_run_config(folder).get("demo") is True
