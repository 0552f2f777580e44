"""densenet3d_keras.runtime.devices: -gpu as CUDA_VISIBLE_DEVICES."""
import os

import pytest

from densenet3d_keras.runtime.devices import apply_gpu_choice


@pytest.mark.parametrize("gpu, expected", [("0", "0"), ("0,1", "0,1"), (2, "2"), (None, "unchanged")])
def test_gpu_choice_sets_the_visible_devices(gpu, expected, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unchanged")
    apply_gpu_choice(gpu)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
