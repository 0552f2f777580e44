#!/usr/bin/env python
"""Segment BraTS cases with a trained model: ``python predict_keras.py -m <checkpoint> -r <root> -o <out>``.

See :mod:`densenet3d_keras.cli.predict` and ``--help``.
"""
import sys

from densenet3d_keras.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
