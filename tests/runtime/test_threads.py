"""densenet3d_keras.runtime.threads: TensorFlow's thread pools, chosen and applied."""
import os
import subprocess
import sys

import pytest

from densenet3d_keras.core.compat import tf
from densenet3d_keras.runtime import threads
from tests import ROOT as REPO


def test_thread_counts_in_force_can_be_set_again():
    threads.set_thread_counts(*threads.thread_counts())
    with pytest.raises(ValueError, match="integer >= 0"):
        threads.set_thread_counts(-2, 0)


@pytest.mark.parametrize("given, cores, gpus, expected", [
    ((None, None), 2, 0, (1, 2)),     # CPU only: the two pathways side by side
    ((None, None), 16, 0, (8, 2)),
    ((None, None), 1, 0, (0, 0)),     # one core: TensorFlow's default
    ((None, None), 8, 1, (0, 0)),     # a GPU: TensorFlow's default
    ((3, None), 8, 0, (3, 2)),        # what the user gave is kept
    ((None, 0), 8, 0, (4, 0)),
    ((0, 0), 8, 0, (0, 0)),
])
def test_auto_thread_counts(given, cores, gpus, expected):
    assert threads.auto_thread_counts(*given, cores=cores, gpus=gpus) == expected


def test_fresh_process_applies_the_automatic_thread_counts():
    code = ("from densenet3d_keras.runtime import threads; "
            "print(*(threads.apply_thread_counts() + threads.thread_counts() + (threads.usable_cores(),)))")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=REPO,
                                  env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    intra, inter, intra_in_force, inter_in_force, cores = [int(v) for v in out.split()]
    expected = (cores // 2, 2) if cores >= 2 else (0, 0)
    assert (intra, inter) == (intra_in_force, inter_in_force) == expected


def test_chosen_thread_counts_give_way_once_tensorflow_runs():
    """In a process where TensorFlow already ran, a choice does not fail; a given count does."""
    tf.constant(1.0) + 1.0  # TensorFlow has started in this process
    in_force = threads.thread_counts()
    assert threads.apply_thread_counts() == in_force
    other = in_force[0] + 1
    with pytest.raises(ValueError, match="after TensorFlow started"):
        threads.apply_thread_counts(other, None)
