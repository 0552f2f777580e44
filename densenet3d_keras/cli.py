"""What the command lines share: one-line usage errors and boolean flags.

Needs no TensorFlow, so ``--help`` and usage errors stay instant.
"""
import argparse
import sys

#: Exit code of every failure, usage errors included.
EXIT_ERROR = 2
#: Exit code after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130

_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, like every other error:
    ``error: argument -c/--continue-training: expected true or false, got 'x' (see --help)``
    on stderr and exit code 2 (argparse's default prints the whole usage first)."""

    def error(self, message):
        sys.stderr.write("error: %s (see --help)\n" % message)
        sys.exit(EXIT_ERROR)


def str2bool(value):
    """Parse ``true/false`` (and yes/no, 1/0, on/off) for argparse.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % (value,))
