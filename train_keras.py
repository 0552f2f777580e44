#!/usr/bin/env python
"""Train the hierarchical dense 3-D CNN on BraTS: ``python train_keras.py --model dense24 -r <root>``.

See :mod:`densenet3d_keras.cli.train` and ``--help``.
"""
import sys

from densenet3d_keras.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
