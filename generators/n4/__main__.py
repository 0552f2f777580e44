"""``python -m generators.n4``: the N4 command line (:mod:`densenet3d_keras.cli.n4`)."""
import sys

from densenet3d_keras.cli.n4 import main

if __name__ == "__main__":
    sys.exit(main())
