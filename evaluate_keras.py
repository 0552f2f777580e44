#!/usr/bin/env python
"""Score predicted BraTS label maps: ``python evaluate_keras.py --pred <dir> --gt <root> -o <out>``.

See :mod:`densenet3d_keras.cli.evaluate` and ``--help``.
"""
import sys

from densenet3d_keras.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
