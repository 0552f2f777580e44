"""The Ascend ModelZoo launch scripts in ``test/``: syntax, and a CPU performance run.

The run copies the scripts into a temporary model root (beside a link to ``train_keras.py``)
so that nothing is written into the repository, starts ``train_performance_1p.sh`` from that
root's ``test/`` folder on a tiny generated dataset with the tiny model, and checks that the
``<CaseName>.log`` it writes has every ModelZoo key with a real value.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import ROOT
SCRIPTS = ["train_full_1p.sh", "train_performance_1p.sh", "train_full_8p.sh", "train_performance_8p.sh"]
KEYS = ["Network", "RankSize", "BatchSize", "DeviceType", "CaseName", "ActualFPS", "TrainingTime",
        "TrainAccuracy", "ActualLoss", "E2ETrainingTime"]
NUMERIC = ["RankSize", "BatchSize", "ActualFPS", "TrainingTime", "TrainAccuracy", "ActualLoss",
           "E2ETrainingTime"]


@pytest.mark.parametrize("name", SCRIPTS + ["modelzoo_common.sh"])
def test_script_syntax(name):
    result = subprocess.run(["bash", "-n", os.path.join(ROOT, "test", name)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout


def _model_root(tmp_path):
    root = tmp_path / "model"
    shutil.copytree(os.path.join(ROOT, "test"), str(root / "test"),
                    ignore=shutil.ignore_patterns("output"))
    os.symlink(os.path.join(ROOT, "train_keras.py"), str(root / "train_keras.py"))
    return root


def _read_keys(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            key, _, value = line.rstrip("\n").partition(" = ")
            values[key] = value
    return values


def test_performance_1p_writes_every_key(tmp_path):
    from generators.synthetic import write_dataset

    data = str(tmp_path / "data")
    write_dataset(data, n_cases=2, shape=(48, 48, 40), seed=3, splits=(1.0, 0.0, 0.0))
    root = _model_root(tmp_path)
    env = {key: value for key, value in os.environ.items()
           if key not in ("ASCEND_DEVICE_ID", "RANK_SIZE", "RANK_ID", "TF_CONFIG")}
    env.update(PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        ["bash", "train_performance_1p.sh", "--data_path=" + data, "--model_name=tiny", "--batch_size=2",
         "--n-pos", "2", "--n-neg", "2", "--padding", "valid", "--cache-dir", str(tmp_path / "cache")],
        cwd=str(root / "test"), env=env, timeout=300,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout[-4000:]

    out = root / "test" / "output" / "0"
    assert (out / "train_0.log").is_file()
    case_logs = glob.glob(str(out / "DenseNet3D_*.log"))
    assert [os.path.basename(p) for p in case_logs] == ["DenseNet3D_tiny_for_TensorFlow_bs2_1p_perf.log"]
    values = _read_keys(case_logs[0])
    assert list(values) == KEYS
    for key in KEYS:
        assert values[key] and values[key] != "NULL", (key, values)
    for key in NUMERIC:
        assert re.match(r"^[0-9]+(\.[0-9]+)?$", values[key]), (key, values[key])
    assert values["RankSize"] == "1" and values["BatchSize"] == "2"
    assert values["CaseName"] == "DenseNet3D_tiny_for_TensorFlow_bs2_1p_perf"
    assert float(values["ActualFPS"]) > 0 and 0 <= float(values["TrainAccuracy"]) <= 100

    # The values are those of the training log: the last patient line and the step times.
    log_lines = (out / "train_0.log").read_text().splitlines()
    last_patient = [line for line in log_lines if line.startswith("patient loss:")][-1].split()
    assert values["ActualLoss"] == last_patient[2].rstrip(",")
    assert values["TrainAccuracy"] == last_patient[5]
    steps = [float(line.split()[15]) for line in log_lines if line.startswith("epoch-patient:")]
    assert len(steps) == 4  # 2 patients x 2 batches
    mean = sum(steps[1:]) / len(steps[1:])
    assert float(values["ActualFPS"]) == pytest.approx(2 / mean, rel=1e-3)
    assert "Final Performance images/sec" in result.stdout


def test_script_without_data_path_fails_clearly(tmp_path):
    root = _model_root(tmp_path)
    result = subprocess.run(["bash", str(root / "test" / "train_full_1p.sh")], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 2
    assert "give the dataset root with --data_path=<folder>" in result.stdout
