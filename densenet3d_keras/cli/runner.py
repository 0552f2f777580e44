"""What every command line shares: one-line errors, exit codes, interrupts, true/false flags.

Library code raises ``ValueError`` / ``OSError`` (``FileNotFoundError`` included) with a
message naming the file or value; :func:`run_command` prints it as one line ``error: ...``
and returns :data:`EXIT_ERROR`. Ctrl-C (or SIGTERM where a command turns it into
``KeyboardInterrupt``) prints ``interrupted`` and returns :data:`EXIT_INTERRUPTED`.
"""
import argparse
import sys

from densenet3d_keras.core.errors import first_line

#: Bad input, configuration or environment (argparse's own usage errors use 2 as well).
EXIT_ERROR = 2
#: Interrupted (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


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


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose usage errors are one line naming the flag, exit code 2."""

    def error(self, message):
        self.exit(EXIT_ERROR, "error: %s (see --help)\n" % first_line(message))


def report_error(error, stream=None):
    """Print ``error: <first line>`` on ``stream`` (stderr) and return :data:`EXIT_ERROR`."""
    (stream or sys.stderr).write("error: %s\n" % first_line(error))
    return EXIT_ERROR


def add_graph_mode_flag(parser):
    """``--graph-mode``: run on TensorFlow 1.x graphs and sessions (see :func:`apply_graph_mode`)."""
    parser.add_argument("--graph-mode", dest="graph_mode", action="store_true",
                        help="TensorFlow 1.x graph mode and Keras's v1 training loop, as on "
                             "TensorFlow 1.15 / Ascend (also DENSENET3D_GRAPH_MODE=1; always "
                             "on with TensorFlow 1.x)")


def add_thread_flags(group):
    """``--intra-op-threads`` and ``--inter-op-threads`` (applied by
    :func:`densenet3d_keras.runtime.threads.apply_thread_counts`)."""
    group.add_argument("--intra-op-threads", dest="intra_op_threads", type=int, default=None,
                       help="threads per TensorFlow op (0: one per core; default: half the "
                            "cores on a CPU-only machine, else 0)")
    group.add_argument("--inter-op-threads", dest="inter_op_threads", type=int, default=None,
                       help="TensorFlow ops run at once (0: one per core; default: 2 on a "
                            "CPU-only machine, running the two pathways side by side, else 0)")


def given_options(build_parser, argv):
    """Destinations of the flags that ``argv`` gives explicitly (under any of their spellings).

    Args:
        build_parser: callable returning a fresh :class:`ArgumentParser` of the command.
        argv: the command's arguments.

    Returns:
        set of ``dest`` names.
    """
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def apply_graph_mode(requested):
    """Enter graph mode if ``--graph-mode`` or ``DENSENET3D_GRAPH_MODE`` asks; first thing in a
    command, before anything runs TensorFlow. Returns whether the process is in graph mode.

    Raises:
        ValueError: TensorFlow already ran in this process.
    """
    from densenet3d_keras.core import compat

    if requested or compat.graph_mode_requested():
        compat.enable_graph_mode()
    return compat.graph_mode()


def run_command(parser, handler, argv=None):
    """Parse ``argv`` and run ``handler(args)`` under the common error and interrupt policy.

    Args:
        parser: the command's :class:`ArgumentParser`.
        handler: callable taking the parsed arguments, returning an exit code (``None``: 0).
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        The handler's exit code; :data:`EXIT_ERROR` after a ``ValueError`` or ``OSError``;
        :data:`EXIT_INTERRUPTED` after ``KeyboardInterrupt``.
    """
    args = parser.parse_args(argv)
    try:
        code = handler(args)
    except (ValueError, OSError) as error:
        return report_error(error)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    return 0 if code is None else int(code)
