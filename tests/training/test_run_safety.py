"""The save folder of a training run: refusals before anything is written, the lock, pruning
only the run's own checkpoints, stale temporary files, write errors that name the file."""
import errno
import json
import os
import socket
import subprocess
import sys

import pytest

import train_keras
from densenet3d_keras.cli.train import build_parser
from densenet3d_keras.training.config import resolve


def _run(args, capsys):
    code = train_keras.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def dead_pid():
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def save(tmp_path):
    return tmp_path / "run"


@pytest.fixture
def args(small_dataset, cache_dir, save, tmp_path):
    """Training flags for one batch per epoch: one case, --performance 1."""
    with open(os.path.join(small_dataset, "train.txt")) as handle:
        first = handle.read().split()[0]
    case_list = tmp_path / "one_case.txt"
    case_list.write_text(first + "\n")
    return ["-mn", "tiny", "-r", small_dataset, "--train-list", str(case_list), "--n-pos", "2",
            "--n-neg", "2", "-bs", "2", "--performance", "1", "--padding", "valid",
            "--cache-dir", cache_dir, "-sp", str(save)]


def _listing(folder):
    return sorted(os.listdir(str(folder)))


def _lock(folder, pid, host=None):
    holder = {"pid": pid, "host": host or socket.gethostname(), "started": "2024-01-02 03:04:05"}
    (folder / ".lock").write_text(json.dumps(holder))
    return holder


def _refused(code, err, *parts):
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


# -- refusals: one line, before anything is written or computed -----------------------------

def test_fresh_run_refuses_a_folder_with_another_runs_checkpoints(args, save, cache_dir, capsys):
    save.mkdir()
    (save / "dense24_epoch_017.h5").write_bytes(b"earlier run")
    (save / "config.json").write_text('{"model_name": "dense24"}')
    code, _, err = _run(args + ["-e", "2"], capsys)
    _refused(code, err, "save folder %s already holds checkpoints of another run "
                        "(dense24_epoch_017.h5); resume it with -c true -lp %s, or choose another -sp"
             % (save, save))
    assert _listing(save) == ["config.json", "dense24_epoch_017.h5"]  # no lock, nothing new
    assert (save / "config.json").read_text() == '{"model_name": "dense24"}'
    assert not os.path.exists(cache_dir)  # refused before the data were even prepared


@pytest.mark.parametrize("host", [None, "another-host"])
def test_second_run_refuses_while_the_folder_is_locked(args, save, cache_dir, capsys, host):
    save.mkdir()
    holder = _lock(save, os.getpid(), host)  # a live process (this one), or one elsewhere
    code, _, err = _run(args, capsys)
    _refused(code, err, "save folder %s is in use by another run (pid %d on %s, started "
                        "2024-01-02 03:04:05)" % (save, os.getpid(), holder["host"]))
    assert _listing(save) == [".lock"] and json.loads((save / ".lock").read_text()) == holder
    assert not os.path.exists(cache_dir)


def test_unusable_output_folders_fail_before_anything_is_written(args, save, tmp_path, cache_dir, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, _, err = _run(args[:-1] + [str(blocker)], capsys)
    _refused(code, err, "save folder %s exists and is not a folder" % blocker)
    code, _, err = _run(args + ["--log-dir", str(blocker / "logs")], capsys)
    _refused(code, err, "cannot create log folder %s: %s is not a folder" % (blocker / "logs", blocker))
    assert not save.exists() and not os.path.exists(cache_dir)


# -- runs that go ahead -----------------------------------------------------------------------

def test_resume_in_place_prunes_only_its_own_and_cleans_up(keras_session, args, save, capsys, dead_pid):
    from densenet3d_keras.models.checkpoints import save_checkpoint
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    save.mkdir()
    save_checkpoint(compile_model(build_model("tiny")), str(save / "tiny_epoch_001.h5"), 1, "tiny", "valid")
    (save / "checkpoint.json").write_text('{"latest": "tiny_epoch_001.h5", "epoch": 1}')
    (save / "dense24_epoch_017.h5").write_bytes(b"another model's run")
    _lock(save, dead_pid)  # left by a killed run
    stale = [".tiny_epoch_002.h5.%d.0123abcd.tmp.h5" % dead_pid,
             ".checkpoint.json.%d.89abcdef.tmp" % dead_pid, ".config.json.%d.deadbeef.tmp" % dead_pid]
    kept = [".tiny_epoch_002.h5.%d.00000000.tmp.h5" % os.getpid(),  # its writer is alive
            ".notes.txt.%d.11111111.tmp" % dead_pid]  # not a file of a training run
    for name in stale + kept:
        (save / name).write_bytes(b"partial")

    code, out, err = _run(args + ["-e", "2", "--keep", "1", "-c", "true", "-lp", str(save)], capsys)
    assert code == 0, err
    assert (save / "tiny_epoch_002.h5").is_file()  # the old pruning deleted it right after saving
    assert "resumed from %s after epoch 1" % (save / "tiny_epoch_001.h5") in out
    assert "took over the stale lock %s of pid %d" % (save / ".lock", dead_pid) in out
    for name in stale:
        assert "removed %s, left by process %d" % (save / name, dead_pid) in out
    # --keep 1 counts the resumed epoch 1 (removed), never the other model's file.
    assert _listing(save) == sorted(kept + ["checkpoint.json", "config.json", "dense24_epoch_017.h5",
                                            "history.csv", "learning_curves.png", "tiny_epoch_002.h5",
                                            "train_0.log"])
    assert (save / "dense24_epoch_017.h5").read_bytes() == b"another model's run"
    log = (save / "train_0.log").read_text()
    assert "took over the stale lock" in log and "removed %s" % (save / stale[0]) in log


def test_disk_full_while_checkpointing_exits_2_with_one_line(keras_session, args, save, capsys, monkeypatch):
    real = os.fsync

    def fsync(descriptor):  # the disk fills up while the checkpoint is written
        if os.readlink("/proc/self/fd/%d" % descriptor).endswith(".tmp.h5"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    code, _, err = _run(args + ["-e", "1"], capsys)
    assert code == 2 and err == ("error: cannot write checkpoint %s: No space left on device\n"
                                 % (save / "tiny_epoch_001.h5"))
    assert _listing(save) == ["config.json", "train_0.log"]  # no temporary file, no lock


def test_resume_refuses_a_checkpoint_of_another_architecture(keras_session, args, save, tmp_path, capsys):
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    # A plain Keras file (no densenet3d attributes) holding a tiny model; -mn says dense24.
    foreign = str(tmp_path / "plain.h5")
    compile_model(build_model("tiny")).save(foreign)
    # (Same padding as the file: before the check, this trained the file's tiny network as dense24.)
    code, _, err = _run(["-mn", "dense24"] + args[2:] + ["--padding", "same", "-c", "true", "-lp", foreign],
                        capsys)
    _refused(code, err, "the weights in %s do not fit a dense24 model: layer " % foreign,
             "in the file")
    assert not save.exists()  # the lock and the folder it created are gone again


# -- the run folder and its lock as a library ---------------------------------------------------

def _config(save, *extra):
    return resolve(build_parser().parse_args(["-r", "data", "-mn", "tiny", "-sp", str(save)] + list(extra)))


def test_lock_is_released_on_interrupt_and_not_taken_by_other_workers(save):
    from densenet3d_keras.training.run_folder import RunFolder, RunLock, read_lock

    with pytest.raises(KeyboardInterrupt):
        with RunFolder(_config(save)):
            assert read_lock(str(save / ".lock"))["pid"] == os.getpid()
            raise KeyboardInterrupt()
    assert not save.exists()
    with RunFolder(_config(save), is_chief=False):  # a non-chief worker writes no checkpoints here
        assert not save.exists()
    lock = RunLock(str(save.parent))
    lock.acquire()
    with pytest.raises(OSError, match="in use by another run \\(pid %d" % os.getpid()):
        RunLock(str(save.parent)).acquire()
    lock.release()
    assert not (save.parent / ".lock").exists()


def _tagged(path, epoch):
    import h5py

    with h5py.File(str(path), "w") as handle:
        handle.attrs["densenet3d_epoch"] = epoch
        handle.attrs["densenet3d_model"] = "tiny"


def test_resume_in_place_counts_earlier_and_refuses_later_checkpoints(save, tmp_path):
    from densenet3d_keras.training.run_folder import RunFolder

    save.mkdir()
    for epoch in (1, 2, 3):
        _tagged(save / ("tiny_epoch_%03d.h5" % epoch), epoch)
    (save / "dense24_epoch_009.h5").write_bytes(b"x")
    with RunFolder(_config(save, "-c", "true", "-lp", str(save / "tiny_epoch_003.h5"))) as folder:
        assert folder.previous == [str(save / ("tiny_epoch_%03d.h5" % e)) for e in (1, 2, 3)]
    with pytest.raises(ValueError, match="holds checkpoints of this run after epoch 2, which resuming "
                                         "from tiny_epoch_002.h5 would overwrite \\(tiny_epoch_003.h5\\)"):
        with RunFolder(_config(save, "-c", "true", "-lp", str(save / "tiny_epoch_002.h5"))):
            pass
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _tagged(elsewhere / "tiny_epoch_005.h5", 5)
    with pytest.raises(ValueError, match="already holds checkpoints of another run"):
        with RunFolder(_config(save, "-c", "true", "-lp", str(elsewhere))):
            pass
    assert _listing(save) == ["dense24_epoch_009.h5", "tiny_epoch_001.h5", "tiny_epoch_002.h5",
                              "tiny_epoch_003.h5"]


def test_demo_replaces_only_an_earlier_demo_run(save):
    from densenet3d_keras.training.run_folder import RunFolder

    save.mkdir()
    (save / "tiny_epoch_001.h5").write_bytes(b"x")
    (save / "config.json").write_text('{"demo": false}')
    with pytest.raises(ValueError, match="already holds checkpoints of another run"):
        with RunFolder(_config(save, "--demo")):
            pass
    (save / "config.json").write_text('{"demo": true}')
    notes = []
    with RunFolder(_config(save, "--demo"), log=notes.append):
        pass
    assert _listing(save) == ["config.json"] and "earlier --demo run" in notes[0]
