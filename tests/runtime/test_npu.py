"""The Ascend NPU wiring, run against a recording stand-in for ``npu_bridge``.

``npu_bridge`` (and TensorFlow 1.15) cannot be installed here, so a stand-in module tree is put
into ``sys.modules``: it records what the code hands to npu_bridge's API (the optimizer to
all-reduce, the broadcast callback, loss-scale optimizer and managers) and otherwise does
nothing. Everything else is real: the ``ConfigProto``, the ``tf.compat.v1.Session`` installed
as the Keras session, the model and a short training run of the tiny model. What the real
npu_bridge does on an NPU (graph offload, HCCL all-reduce, broadcast) is not tested here.
"""
import os
import re
import sys
import types

import pytest

from densenet3d_keras.core import compat
from densenet3d_keras.runtime.select import select_runtime
from densenet3d_keras.runtime import npu
from densenet3d_keras.core.compat import keras, tf
from densenet3d_keras.runtime.cluster import Worker


class StandIn(object):
    """A fake ``npu_bridge`` / ``npu_bridge.npu_init`` pair that records every call."""

    def __init__(self):
        self.calls = []
        calls = self.calls
        package = types.ModuleType("npu_bridge")
        package.__path__ = []
        init = types.ModuleType("npu_bridge.npu_init")
        package.npu_init = init

        def npu_distributed_optimizer_wrapper(optimizer):
            calls.append(("npu_distributed_optimizer_wrapper", optimizer))
            return optimizer  # the real one patches the gradient functions in place

        class NPUBroadcastGlobalVariablesCallback(keras.callbacks.Callback):
            def __init__(self, root_rank):
                super(NPUBroadcastGlobalVariablesCallback, self).__init__()
                self.root_rank = root_rank
                self.batches = []
                self.sessions = []  # graph mode: the Keras session at each batch (the real
                calls.append(("NPUBroadcastGlobalVariablesCallback", self))  # one runs there)

            def on_batch_begin(self, batch, logs=None):
                self.batches.append(batch)
                if compat.graph_mode():
                    self.sessions.append(compat.keras_session())

        class ExponentialUpdateLossScaleManager(object):
            def __init__(self, **kwargs):
                self.kwargs = kwargs
                calls.append(("ExponentialUpdateLossScaleManager", kwargs))

        class FixedLossScaleManager(object):
            def __init__(self, loss_scale):
                self.loss_scale = loss_scale
                calls.append(("FixedLossScaleManager", loss_scale))

        def NPULossScaleOptimizer(opt, loss_scale_manager, is_distributed=False):  # noqa: N802
            calls.append(("NPULossScaleOptimizer", opt, loss_scale_manager, is_distributed))
            return opt

        for value in (npu_distributed_optimizer_wrapper, NPUBroadcastGlobalVariablesCallback,
                      ExponentialUpdateLossScaleManager, FixedLossScaleManager, NPULossScaleOptimizer):
            setattr(init, value.__name__, value)
        self.modules = {"npu_bridge": package, "npu_bridge.npu_init": init}

    def named(self, name):
        return [call for call in self.calls if call[0] == name]

    def wrapped(self):
        """The optimizers given to ``npu_distributed_optimizer_wrapper``."""
        return [call[1] for call in self.named("npu_distributed_optimizer_wrapper")]


class SessionSpy(object):
    """Records the sessions the real ``compat`` functions create and install."""

    def __init__(self, monkeypatch):
        self.created = []
        self.installed = []
        new_session, set_keras_session = compat.new_session, compat.set_keras_session

        def spy_new_session(config=None):
            session = new_session(config)
            self.created.append((session, config))
            return session

        def spy_set_keras_session(session):
            self.installed.append(session)
            set_keras_session(session)

        monkeypatch.setattr(compat, "new_session", spy_new_session)
        monkeypatch.setattr(compat, "set_keras_session", spy_set_keras_session)


@pytest.fixture
def stand_in(monkeypatch):
    fake = StandIn()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    for name in ("RANK_SIZE", "RANK_ID", "ASCEND_DEVICE_ID", "RANK_TABLE_FILE", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return fake


@pytest.fixture
def sessions(monkeypatch):
    return SessionSpy(monkeypatch)


@pytest.fixture
def clean_keras():
    compat.clear_session()
    yield
    compat.clear_session()


def _npu_options(config):
    optimizers = config.graph_options.rewrite_options.custom_optimizers
    assert [o.name for o in optimizers] == ["NpuOptimizer"]
    return optimizers[0].parameter_map


@pytest.mark.parametrize("mode", ["allow_fp32_to_fp16", "must_keep_origin_dtype", "allow_mix_precision"])
def test_session_config(mode):
    from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

    config = npu.session_config(mode)
    options = _npu_options(config)
    assert options["use_off_line"].b is True
    assert options["precision_mode"].s == mode.encode()
    assert config.graph_options.rewrite_options.remapping == RewriterConfig.OFF


def test_session_config_rejects_unknown_mode():
    with pytest.raises(ValueError, match="--precision-mode must be one of .* got 'fp8'"):
        npu.session_config("fp8")


@pytest.mark.parametrize("text, expected", [
    (None, None), ("off", None), ("none", None), ("", None),
    ("dynamic", "dynamic"), ("DYNAMIC", "dynamic"), ("1024", 1024.0), (512, 512.0),
])
def test_parse_loss_scale(text, expected):
    assert npu.parse_loss_scale(text) == expected


@pytest.mark.parametrize("text", ["0", "-2", "auto", "nan"])
def test_parse_loss_scale_rejects(text):
    message = "--loss-scale must be 'dynamic', 'off' or a positive number, got %r" % text
    with pytest.raises(ValueError, match=message):
        npu.parse_loss_scale(text)


def test_available_follows_npu_bridge(monkeypatch, stand_in):
    assert npu.available()
    monkeypatch.setitem(sys.modules, "npu_bridge", None)
    monkeypatch.setitem(sys.modules, "npu_bridge.npu_init", None)
    assert not npu.available()


def test_runtime_installs_the_session_and_closes_it_on_error(stand_in, sessions):
    runtime = npu.NpuRuntime(precision_mode="must_keep_origin_dtype")
    with pytest.raises(RuntimeError, match="boom"):
        with runtime:
            (session, config), = sessions.created
            assert sessions.installed == [session]
            assert _npu_options(config)["precision_mode"].s == b"must_keep_origin_dtype"
            assert not session._closed
            raise RuntimeError("boom")
    assert session._closed and runtime.session is None


def test_select_runtime_reads_the_ranks(stand_in):
    environ = {"RANK_SIZE": "8", "RANK_ID": "3", "ASCEND_DEVICE_ID": "6"}
    runtime = select_runtime("auto", "force_fp16", environ=environ)
    assert isinstance(runtime, npu.NpuRuntime)
    assert runtime.worker == Worker(3, 8) and runtime.log_id == "6" and not runtime.is_chief
    assert runtime.describe(2) == [
        "strategy: Ascend NPU (npu_bridge), 1 replica(s) in sync, worker 3 of 8, global batch 16",
        "ascend: rank 3 of 8, device 6, precision_mode force_fp16, loss scale off"]
    assert runtime.checkpoint_dir("ckpt") is None
    assert select_runtime("auto", environ={}).worker == Worker(0, 1)


@pytest.mark.parametrize("config, environ, message", [
    ({"strategy": "mirrored"}, {}, "--strategy mirrored is not available with npu_bridge"),
    ({"strategy": "auto"}, {"RANK_SIZE": "8", "RANK_ID": "8"}, "RANK_ID=8 must be below RANK_SIZE=8"),
    ({"strategy": "auto"}, {"RANK_SIZE": "x"}, "RANK_SIZE must be an integer >= 1, got 'x'"),
    ({"strategy": "auto", "loss_scale": "-1"}, {}, "--loss-scale must be"),
])
def test_select_runtime_rejects(stand_in, config, environ, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        select_runtime(environ=environ, **config)


@pytest.mark.parametrize("loss_scale, manager", [
    ("dynamic", ("ExponentialUpdateLossScaleManager", npu.DYNAMIC_LOSS_SCALE)),
    (1024.0, ("FixedLossScaleManager", 1024.0)),
])
@pytest.mark.parametrize("distributed", [False, True])
def test_loss_scale_optimizer(stand_in, loss_scale, manager, distributed):
    optimizer = npu.loss_scale_optimizer(1e-3, loss_scale, distributed)
    assert isinstance(optimizer, tf.compat.v1.train.AdamOptimizer)
    assert stand_in.calls[0] == manager
    assert stand_in.wrapped() == ([optimizer] if distributed else [])
    (_, inner, _, is_distributed), = stand_in.named("NPULossScaleOptimizer")
    assert inner is optimizer and is_distributed is distributed


def _tiny_model():
    from densenet3d_keras.models.builder import build_model
    from densenet3d_keras.models.objectives import compile_model

    return compile_model(build_model("tiny", 38, padding="valid"), 5e-4)


def test_prepare_model_all_reduces_the_keras_optimizer(stand_in, clean_keras):
    model = _tiny_model()
    runtime = npu.NpuRuntime(Worker(1, 4))
    assert runtime.prepare_model(model, 2e-3) is model
    assert stand_in.wrapped() == [model.optimizer]
    assert compat.get_learning_rate(model.optimizer) == pytest.approx(2e-3)
    callback, = runtime.callbacks(sequence=None)
    assert callback.root_rank == 0


def test_prepare_model_single_device_leaves_the_optimizer(stand_in, clean_keras):
    model = _tiny_model()
    runtime = npu.NpuRuntime()
    runtime.prepare_model(model)
    assert stand_in.calls == [] and runtime.callbacks(None) == []
    assert compat.get_learning_rate(model.optimizer) == pytest.approx(5e-4)


def test_prepare_model_with_loss_scale_recompiles(stand_in, clean_keras):
    model = _tiny_model()
    runtime = npu.NpuRuntime(Worker(0, 2), loss_scale="dynamic")
    runtime.prepare_model(model, 1e-3)
    (_, inner, _, is_distributed), = stand_in.named("NPULossScaleOptimizer")
    assert model.optimizer.optimizer is inner and is_distributed
    assert inner._lr == pytest.approx(1e-3)


# -- training end to end on the stand-in ------------------------------------------------------

@pytest.fixture(scope="module")
def npu_dataset(tmp_path_factory):
    from generators.synthetic import write_dataset

    root = str(tmp_path_factory.mktemp("npu_data"))
    names = write_dataset(root, n_cases=4, shape=(48, 48, 40), seed=3, splits=(1.0, 0.0, 0.0))
    return root, names


def _config(tmp_path, root, *extra):
    from densenet3d_keras.cli.train import build_parser
    from densenet3d_keras.training.config import resolve

    argv = ["-r", root, "-mn", "tiny", "--n-pos", "2", "--n-neg", "2", "-e", "1", "--padding", "valid",
            "--performance", "1", "--cache-dir", str(tmp_path.parent / "npu_cache"),
            "-sp", str(tmp_path / "ckpt"), "--log-dir", str(tmp_path / "logs")] + list(extra)
    return resolve(build_parser().parse_args(argv))


@pytest.mark.parametrize("rank, device", [(1, "5"), (0, "4")])
def test_train_as_one_rank_of_two(tmp_path, monkeypatch, stand_in, sessions, clean_keras, npu_dataset,
                                  rank, device):
    from densenet3d_keras.training.trainer import train

    root, names = npu_dataset
    monkeypatch.setenv("RANK_SIZE", "2")
    monkeypatch.setenv("RANK_ID", str(rank))
    monkeypatch.setenv("ASCEND_DEVICE_ID", device)
    result = train(_config(tmp_path, root, "--scale-lr", "--precision-mode", "must_keep_origin_dtype"),
                   stream=None)

    assert result["cases"] == names[rank::2]
    (session, config), = sessions.created
    assert sessions.installed == [session] and session._closed
    assert _npu_options(config)["precision_mode"].s == b"must_keep_origin_dtype"
    model = result["model"]
    assert stand_in.wrapped() == [model.optimizer]
    (_, broadcast), = stand_in.named("NPUBroadcastGlobalVariablesCallback")
    assert broadcast.root_rank == 0 and broadcast.batches == [0, 1]
    assert compat.get_learning_rate(model.optimizer) == pytest.approx(1e-3)

    log = open(os.path.join(str(tmp_path / "logs"), "train_%s.log" % device)).read()
    assert "strategy: Ascend NPU (npu_bridge), 1 replica(s) in sync, worker %d of 2" % rank in log
    assert "ascend: rank %d of 2, device %s, precision_mode must_keep_origin_dtype" % (rank, device) in log
    assert "patients of worker %d: %s" % (rank, ", ".join(names[rank::2])) in log
    assert len(re.findall(r"^epoch-patient: ", log, re.M)) == 2
    saved = sorted(os.listdir(str(tmp_path / "ckpt"))) if os.path.isdir(str(tmp_path / "ckpt")) else []
    assert saved == (["checkpoint.json", "config.json", "history.csv", "learning_curves.png",
                      "tiny_epoch_001.h5"] if rank == 0 else [])


def test_train_closes_the_session_on_error(tmp_path, stand_in, sessions, clean_keras, npu_dataset):
    from densenet3d_keras.training.trainer import train

    config = _config(tmp_path, npu_dataset[0], "-lp", str(tmp_path / "missing.h5"))
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        train(config, stream=None)
    (session, _), = sessions.created
    assert sessions.installed == [session] and session._closed
