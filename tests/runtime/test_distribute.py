"""Data-parallel training: environment parsing, sharding, strategy choice, and two real workers.

The multi-worker test starts two ``MultiWorkerMirroredStrategy`` workers on 127.0.0.1 that
train the tiny model on generated cases, then checks that they hold identical weights, read
disjoint patients, log the same (global) losses and leave exactly one checkpoint set.
"""
import glob
import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from densenet3d_keras.runtime import cluster, strategy
from densenet3d_keras.runtime.select import select_runtime
from densenet3d_keras.runtime.cluster import Worker

from tests import ROOT


def _tf_config(cluster, task_type, index):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


WORKERS_2 = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
CHIEF_AND_2 = {"chief": ["h:0"], "worker": ["h:1", "h:2"]}


@pytest.mark.parametrize("text, expected", [
    (_tf_config(WORKERS_2, "worker", 0), Worker(0, 2)),
    (_tf_config(WORKERS_2, "worker", 1), Worker(1, 2)),
    (_tf_config(CHIEF_AND_2, "chief", 0), Worker(0, 3)),
    (_tf_config(CHIEF_AND_2, "worker", 0), Worker(1, 3)),
    (_tf_config(CHIEF_AND_2, "worker", 1), Worker(2, 3)),
    (_tf_config({"worker": ["h:1"]}, "worker", 0), Worker(0, 1)),
])
def test_parse_tf_config(text, expected):
    assert cluster.parse_tf_config(text) == expected


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "needs a 'cluster'"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), "needs a 'cluster'"),
    (json.dumps({"cluster": WORKERS_2}), "needs a 'task'"),
    (_tf_config(dict(WORKERS_2, ps=["h:9"]), "worker", 0), "'ps' jobs"),
    (_tf_config(WORKERS_2, "worker", 2), "task index 2"),
    (_tf_config(WORKERS_2, "worker", -1), "task index -1"),
    (_tf_config(WORKERS_2, "worker", "0"), "task index '0'"),
    (_tf_config(WORKERS_2, "evaluator", 0), "'evaluator'"),
    (_tf_config({"chief": ["a:1", "b:2"]}, "chief", 0), "2 chiefs"),
    (_tf_config({"worker": []}, "worker", 0), "no chief and no worker"),
    (_tf_config({"worker": "h:1"}, "worker", 0), "must be a list"),
])
def test_parse_tf_config_rejects(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cluster.parse_tf_config(text)


@pytest.mark.parametrize("environ, expected", [
    ({}, Worker(0, 1)),
    ({"RANK_SIZE": "8", "RANK_ID": "3"}, Worker(3, 8)),
    ({"RANK_SIZE": "8", "RANK_ID": "0"}, Worker(0, 8)),
    ({"RANK_SIZE": "1"}, Worker(0, 1)),
    ({"RANK_SIZE": " ", "RANK_ID": ""}, Worker(0, 1)),
])
def test_rank_from_env(environ, expected):
    assert cluster.rank_from_env(environ) == expected


@pytest.mark.parametrize("environ, message", [
    ({"RANK_SIZE": "8", "RANK_ID": "8"}, "RANK_ID=8 must be below RANK_SIZE=8"),
    ({"RANK_ID": "1"}, "RANK_ID=1 must be below RANK_SIZE=1"),
    ({"RANK_SIZE": "0"}, "RANK_SIZE must be an integer >= 1, got '0'"),
    ({"RANK_SIZE": "eight"}, "RANK_SIZE must be an integer >= 1, got 'eight'"),
    ({"RANK_SIZE": "2", "RANK_ID": "-1"}, "RANK_ID must be an integer >= 0, got '-1'"),
])
def test_rank_from_env_rejects(environ, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cluster.rank_from_env(environ)


def test_worker_from_env():
    assert cluster.worker_from_env({}) == Worker(0, 1)
    assert cluster.worker_from_env({"TF_CONFIG": _tf_config(WORKERS_2, "worker", 1)}) == Worker(1, 2)
    with pytest.raises(ValueError, match="RANK_SIZE=8 asks for 8 Ascend devices"):
        cluster.worker_from_env({"RANK_SIZE": "8", "RANK_ID": "0"})


@pytest.mark.parametrize("worker, environ, expected", [
    (Worker(1, 2), {}, "1"),
    (Worker(1, 2), {"ASCEND_DEVICE_ID": "5"}, "5"),
    (Worker(0, 1), {"ASCEND_DEVICE_ID": ""}, "0"),
])
def test_log_id(worker, environ, expected):
    assert cluster.log_id(worker, environ) == expected


def test_is_chief():
    assert cluster.is_chief(Worker(0, 3))
    assert not cluster.is_chief(Worker(2, 3))


@pytest.mark.parametrize("requested, workers, gpus, expected", [
    ("auto", 1, 0, "default"),
    ("auto", 1, 1, "default"),
    ("auto", 1, 4, "mirrored"),
    ("auto", 2, 0, "multiworker"),
    ("auto", 2, 8, "multiworker"),
    ("default", 1, 4, "default"),
    ("mirrored", 1, 0, "mirrored"),
    ("multiworker", 1, 0, "multiworker"),
    ("multiworker", 3, 0, "multiworker"),
])
def test_choose_strategy(requested, workers, gpus, expected):
    assert cluster.choose_strategy(requested, workers, gpus) == expected


@pytest.mark.parametrize("requested, workers, message", [
    ("mirrored", 2, "--strategy mirrored trains one worker, but TF_CONFIG describes 2"),
    ("default", 4, "--strategy default trains one worker"),
    ("horovod", 1, "--strategy must be one of"),
])
def test_choose_strategy_rejects(requested, workers, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cluster.choose_strategy(requested, workers, 0)


@pytest.mark.parametrize("patients, worker, indices, dropped", [
    (4, Worker(0, 1), [0, 1, 2, 3], []),
    (4, Worker(0, 2), [0, 2], []),
    (4, Worker(1, 2), [1, 3], []),
    (5, Worker(0, 2), [0, 2], [4]),
    (5, Worker(1, 2), [1, 3], [4]),
    (10, Worker(2, 4), [2, 6], [8, 9]),
    (3, Worker(2, 3), [2], []),
])
def test_shard(patients, worker, indices, dropped):
    assert cluster.shard(patients, worker) == (indices, dropped)


@pytest.mark.parametrize("patients, workers", [(n, k) for n in range(1, 12) for k in range(1, n + 1)])
def test_shards_are_disjoint_equal_and_cover_all_but_the_remainder(patients, workers):
    shares = [cluster.shard(patients, Worker(i, workers)) for i in range(workers)]
    seen = [i for share in shares for i in share.indices]
    assert len(seen) == len(set(seen))
    assert len(set(len(share.indices) for share in shares)) == 1
    assert sorted(seen + shares[0].dropped) == list(range(patients))
    assert len(shares[0].dropped) == patients % workers


@pytest.mark.parametrize("patients, worker, message", [
    (3, Worker(0, 4), "3 patient(s) cannot be shared by 4 workers"),
    (0, Worker(0, 1), "0 patient(s) cannot be shared by 1 workers"),
    (4, Worker(2, 2), "worker index 2 is not in [0, 2)"),
])
def test_shard_rejects(patients, worker, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cluster.shard(patients, worker)


def test_scaled_learning_rate():
    assert cluster.scaled_learning_rate(5e-4, 8, True) == pytest.approx(4e-3)
    assert cluster.scaled_learning_rate(5e-4, 8, False) == 5e-4


def test_select_runtime_single_worker_default_strategy():
    runtime = select_runtime("auto", environ={})
    assert isinstance(runtime, strategy.StrategyRuntime)
    assert runtime.num_replicas == 1 and runtime.worker == Worker(0, 1) and runtime.is_chief
    assert not runtime.distributed
    assert runtime.describe(2) == ["strategy: tf.distribute default strategy, 1 replica(s) in sync, "
                                   "worker 0 of 1 (chief), global batch 2"]


@pytest.mark.parametrize("config, environ, message", [
    ({"strategy": "auto", "loss_scale": "dynamic"}, {},
     "--loss-scale dynamic applies to Ascend NPU runs only"),
    ({"strategy": "default"}, {"TF_CONFIG": _tf_config(WORKERS_2, "worker", 0)},
     "--strategy default trains one worker"),
    ({"strategy": "auto"}, {"TF_CONFIG": "{"}, "TF_CONFIG is not valid JSON"),
    ({"strategy": "auto"}, {"RANK_SIZE": "2", "RANK_ID": "1"}, "npu_bridge is not importable"),
])
def test_select_runtime_rejects(config, environ, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        select_runtime(environ=environ, **config)


# -- a per-worker sequence under a strategy with two local replicas (a subprocess: the logical
# -- CPU devices must be configured before TensorFlow starts) --------------------------------

_SPLIT_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    from densenet3d_keras.core.compat import tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from densenet3d_keras.runtime.strategy import distribute_sequence

    class Sequence(object):  # the PatchSequence interface distribute_sequence uses
        batch_size = 4
        def __init__(self):
            self.epoch = 0
        def __len__(self):
            return 3
        def __getitem__(self, index):
            value = 100 * self.epoch + index
            return np.full((4, 2), value, np.float32), [np.arange(4, dtype=np.float32) + value]
        def set_epoch(self, epoch):
            self.epoch = epoch

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    iterator = iter(distribute_sequence(strategy, Sequence()))
    steps = []
    for _ in range(4):
        x, (y,) = next(iterator)
        steps.append([[r.numpy().tolist() for r in strategy.experimental_local_results(x)],
                      [r.numpy().tolist() for r in strategy.experimental_local_results(y)]])
    print("RESULT " + json.dumps(steps), flush=True)
    # Release the endless iterator (its prefetch thread runs a Python generator) before the
    # interpreter shuts down, as fit does when it returns; left alive, it can hang the exit.
    del iterator, x, y
    import gc
    gc.collect()
""")


def test_distribute_sequence_splits_each_worker_batch_among_local_replicas():
    result = subprocess.run([sys.executable, "-c", _SPLIT_SCRIPT], cwd=ROOT, timeout=120,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout[-3000:]
    steps = json.loads([line for line in result.stdout.splitlines() if line.startswith("RESULT ")][0][7:])
    # One step = one whole batch of the sequence, half on each replica; then the next epoch.
    for step, value in zip(steps, (0, 1, 2, 100)):
        xs, ys = step
        assert xs == [[[value, value]] * 2, [[value, value]] * 2]
        assert ys == [[value, value + 1], [value + 2, value + 3]]


# -- two MultiWorkerMirroredStrategy workers on 127.0.0.1 ------------------------------------

_WORKER_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from densenet3d_keras.cli.train import build_parser
    from densenet3d_keras.training.config import resolve
    from densenet3d_keras.training.trainer import train

    config = resolve(build_parser().parse_args(sys.argv[2:]))
    result = train(config, stream=sys.stdout)
    np.savez(sys.argv[1], *result["model"].get_weights())
""")

WORKER_TIMEOUT = 240


def _free_ports(count):
    sockets = []
    try:
        for _ in range(count):
            handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            handle.bind(("127.0.0.1", 0))
            sockets.append(handle)
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def _run_workers(tmp_path, arguments, count=2):
    """Start ``count`` workers, wait for all (bounded), kill any left; return their outputs."""
    cluster = {"worker": ["127.0.0.1:%d" % port for port in _free_ports(count)]}
    script = tmp_path / "worker.py"
    script.write_text(_WORKER_SCRIPT)
    processes = []
    outputs = []
    try:
        for index in range(count):
            env = {key: value for key, value in os.environ.items()
                   if key not in ("ASCEND_DEVICE_ID", "RANK_SIZE", "RANK_ID", "TF_CONFIG")}
            env.update(TF_CONFIG=_tf_config(cluster, "worker", index), CUDA_VISIBLE_DEVICES="",
                       TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
            output = open(str(tmp_path / ("worker_%d.out" % index)), "w")
            outputs.append(output)
            processes.append(subprocess.Popen(
                [sys.executable, str(script), str(tmp_path / ("weights_%d.npz" % index))] + arguments,
                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT))
        for process in processes:
            process.wait(timeout=WORKER_TIMEOUT)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for output in outputs:
            output.close()
    texts = [(tmp_path / ("worker_%d.out" % i)).read_text() for i in range(count)]
    for process, text in zip(processes, texts):
        assert process.returncode == 0, text[-4000:]
    return texts


def _log_values(path, pattern):
    with open(path) as handle:
        return [match.group(1) for match in (re.search(pattern, line) for line in handle) if match]


def test_two_workers_train_in_sync_on_disjoint_patients(tmp_path):
    from generators.synthetic import write_dataset

    data = str(tmp_path / "data")
    names = write_dataset(data, n_cases=5, shape=(48, 48, 40), seed=3, splits=(0.8, 0.2, 0.0))
    names, held_out = names[:4], names[4]
    save, logs = str(tmp_path / "ckpt"), str(tmp_path / "logs")
    _run_workers(tmp_path, ["-r", data, "-mn", "tiny", "--n-pos", "2", "--n-neg", "2", "-e", "1",
                            "--padding", "valid", "--cache-dir", str(tmp_path / "cache"),
                            "-sp", save, "--log-dir", logs, "--scale-lr", "--val-list", "val.txt"])

    first, second = (np.load(str(tmp_path / ("weights_%d.npz" % i))) for i in range(2))
    assert len(first.files) == len(second.files) > 0
    for key in first.files:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)

    log_paths = [os.path.join(logs, "train_%d.log" % i) for i in range(2)]
    shares = [_log_values(path, r"^patients of worker \d+: (.*)$")[0].split(", ") for path in log_paths]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sorted(names)
    for path in log_paths:
        header = open(path).read()
        assert "strategy: tf.distribute.MultiWorkerMirroredStrategy, 2 replica(s) in sync" in header
        assert "learning rate 0.0005 x 2 workers = 0.001 (--scale-lr)" in header
    losses = [_log_values(path, r"^epoch-patient: .* loss: ([0-9.]+),") for path in log_paths]
    assert len(losses[0]) == 4 and losses[0] == losses[1]  # 2 patients x 2 batches; global means
    # Every worker validates the held-out case with the same weights: the same Dice.
    scores = [_log_values(path, r"^validation epoch 1: (dice .*) \(1 case, ") for path in log_paths]
    assert len(scores[0]) == 1 and scores[0] == scores[1]
    assert all(held_out not in share for share in shares)

    assert sorted(os.listdir(save)) == ["checkpoint.json", "config.json", "history.csv",
                                        "learning_curves.png", "tiny_best.h5", "tiny_epoch_001.h5"]
    assert glob.glob(os.path.join(logs, "*.h5")) == []
