"""Run ``train_keras.py`` and SIGKILL the process at a chosen point of an epoch's end.

    python tests/training/kill_at.py POINT EPOCH -- <train_keras.py flags>

POINT is where the process dies when epoch EPOCH (1-based) ends:

* ``pointer``: the epoch's checkpoint (and best copy) are in place, ``checkpoint.json`` is not
  yet rewritten;
* ``history``: ``checkpoint.json`` is rewritten, the epoch's ``history.csv`` row is not written.

Used by tests/training/test_kill_recovery.py; the kill is a real ``kill -9`` of this process.
"""
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv):
    point, epoch = argv[0], int(argv[1])
    flags = argv[argv.index("--") + 1:]
    from callbacks import checkpoint, history

    def die():
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "pointer":
        original = checkpoint.EpochCheckpoint._write_pointer

        def write_pointer(self, name, done):
            if done == epoch:
                die()
            return original(self, name, done)

        checkpoint.EpochCheckpoint._write_pointer = write_pointer
    elif point == "history":
        original_end = history.HistoryCSV.on_epoch_end

        def on_epoch_end(self, index, logs=None):
            if index + 1 == epoch:
                die()
            return original_end(self, index, logs)

        history.HistoryCSV.on_epoch_end = on_epoch_end
    else:
        raise SystemExit("unknown point %r" % point)
    import train_keras

    return train_keras.main(flags)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
