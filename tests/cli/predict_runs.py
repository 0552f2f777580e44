"""Running ``predict_keras.py`` in-process for the command-line tests, and reading its errors."""
from densenet3d_keras.cli import predict as predict_keras


def run_predict(argv, capsys):
    """``predict_keras.main(argv)`` in a clean Keras session: ``(exit code, stdout, stderr)``."""
    from densenet3d_keras.core.compat import clear_session

    clear_session()
    code = predict_keras.main(argv)
    clear_session()
    out, err = capsys.readouterr()
    return code, out, err


def error_line(code, err):
    """The one ``error: ...`` line of a run that exited 2 (asserted), without a traceback."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]
