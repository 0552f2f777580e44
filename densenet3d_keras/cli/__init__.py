"""The command lines: argument parsing and the one error and interrupt policy.

Each command is a parser and a handler run by :func:`densenet3d_keras.cli.runner.run_command`;
``train_keras.py``, ``predict_keras.py``, ``evaluate_keras.py`` and ``python -m generators.n4``
are shims over them.
"""
