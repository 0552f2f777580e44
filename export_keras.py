#!/usr/bin/env python
"""Export a checkpoint as a frozen graph for Ascend ATC: ``python export_keras.py -m <checkpoint> -o model.pb``.

See :mod:`densenet3d_keras.cli.export` and ``--help``.
"""
import sys

from densenet3d_keras.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
