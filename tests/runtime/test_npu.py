"""The Ascend NPU wiring, run against a recording stand-in for ``npu_bridge``.

``npu_bridge`` (and TensorFlow 1.15) cannot be installed here, so a stand-in module tree is put
into ``sys.modules``: it is built from the recorded TF Adapter API that ``make lint`` checks the
code against (``tools/data/npu_bridge_api.json``), so each of its names takes exactly the
arguments of the adapter's; it records what the code hands to npu_bridge's API (the optimizer to
all-reduce, the broadcast callback, loss-scale optimizer and managers) and otherwise does
nothing. Everything else is real: the ``ConfigProto``, the ``tf.compat.v1.Session`` installed
as the Keras session, the model and a short training run of the tiny model. What the real
npu_bridge does on an NPU (graph offload, HCCL all-reduce, broadcast) is not tested here.
"""
import collections
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
from tools.conformance import recorded

#: The recorded npu_bridge API the stand-in is built from.
API = recorded.load()


#: One call of the stand-in: the npu_bridge name, its arguments by parameter name, what it returned.
Call = collections.namedtuple("Call", "name arguments result")


class _Recorded(object):
    """What the stand-in's classes without a behaviour of their own return: the arguments."""

    def __init__(self, arguments):
        self.__dict__.update(arguments)


def _broadcast_callback(arguments):
    """A Keras callback, as npu_bridge's is; it records the batches it sees and, in graph mode,
    the Keras session at each (the real one broadcasts in that session)."""
    class NPUBroadcastGlobalVariablesCallback(keras.callbacks.Callback):
        def __init__(self, root_rank):
            super(NPUBroadcastGlobalVariablesCallback, self).__init__()
            self.root_rank = root_rank
            self.batches, self.sessions = [], []

        def on_batch_begin(self, batch, logs=None):
            self.batches.append(batch)
            if compat.graph_mode():
                self.sessions.append(compat.keras_session())

    return NPUBroadcastGlobalVariablesCallback(**arguments)


def _fixed_manager(arguments):
    if arguments["loss_scale"] < 1:  # as npu_bridge's FixedLossScaleManager
        raise ValueError("loss scale must be at least 1.")
    return _Recorded(arguments)


#: What each npu_bridge name of the recorded API does here after recording its call. The real
#: wrapper patches the optimizer in place and returns it; the real loss-scale optimizer wraps a
#: TensorFlow optimizer (here it is handed through, so Keras wraps it as it would the real one).
BEHAVIOURS = {
    "npu_distributed_optimizer_wrapper": lambda arguments: arguments["optimizer"],
    "NPULossScaleOptimizer": lambda arguments: arguments["opt"],
    "ExponentialUpdateLossScaleManager": _Recorded,
    "FixedLossScaleManager": _fixed_manager,
    "NPUBroadcastGlobalVariablesCallback": _broadcast_callback,
}


class StandIn(object):
    """``npu_bridge`` / ``npu_bridge.npu_init`` built from the recorded TF Adapter API
    (``tools/data/npu_bridge_api.json``, checked against the adapter's sources): exactly the
    names recorded there, each binding its arguments to the adapter's signature (a call the
    adapter refuses raises ``TypeError`` here too), recording a :data:`Call`, then doing what
    :data:`BEHAVIOURS` says."""

    def __init__(self):
        self.calls = []
        self.modules = dict((name, types.ModuleType(name)) for name in API["modules"])
        for name, module in self.modules.items():
            if any(other.startswith(name + ".") for other in self.modules):
                module.__path__ = []
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(self.modules[parent], child, module)
        for (module, name), entry in recorded.members(API).items():
            setattr(self.modules[module], name, self._member(name, entry))

    def _member(self, name, entry):
        signature = recorded.signature(entry)
        calls = self.calls

        def member(*args, **kwargs):
            arguments = dict(signature.bind(*args, **kwargs).arguments)
            call = Call(name, arguments, None)
            calls.append(call)
            result = BEHAVIOURS[name](arguments)
            calls[calls.index(call)] = call._replace(result=result)
            return result

        member.__name__ = name
        member.__signature__ = signature
        return member

    def named(self, name):
        return [call for call in self.calls if call.name == name]

    def wrapped(self):
        """The optimizers given to ``npu_distributed_optimizer_wrapper``."""
        return [call.arguments["optimizer"] for call in self.named("npu_distributed_optimizer_wrapper")]


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


@pytest.mark.parametrize("text", ["0", "-2", "0.5", "auto", "nan"])
def test_parse_loss_scale_rejects(text):
    message = "--loss-scale must be 'dynamic', 'off' or a number >= 1, got %r" % text
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
    (1024.0, ("FixedLossScaleManager", {"loss_scale": 1024.0})),
])
@pytest.mark.parametrize("distributed", [False, True])
def test_loss_scale_optimizer(stand_in, loss_scale, manager, distributed):
    optimizer = npu.loss_scale_optimizer(1e-3, loss_scale, distributed)
    assert isinstance(optimizer, tf.compat.v1.train.AdamOptimizer)
    assert stand_in.calls[0][:2] == manager
    assert stand_in.wrapped() == ([optimizer] if distributed else [])
    call, = stand_in.named("NPULossScaleOptimizer")
    assert call.arguments["opt"] is optimizer and call.arguments["is_distributed"] is distributed
    assert call.arguments["loss_scale_manager"] is stand_in.calls[0].result


def test_stand_in_has_exactly_the_recorded_names():
    assert set(BEHAVIOURS) == set(name for _, name in recorded.members(API))
    init = StandIn().modules["npu_bridge.npu_init"]
    assert sorted(n for n in vars(init) if not n.startswith("_")) == sorted(BEHAVIOURS)


@pytest.mark.parametrize("name, args, kwargs", [
    ("ExponentialUpdateLossScaleManager", (), {"init_loss_scale": 2.0, "incr_every_n_steps": 10, "decr_every_n": 2}),
    ("ExponentialUpdateLossScaleManager", (), {"init_loss_scale": 2.0}),
    ("NPUBroadcastGlobalVariablesCallback", (), {}),
    ("npu_distributed_optimizer_wrapper", (None,), {"is_distributed": True}),
    ("NPULossScaleOptimizer", (None, None, True, 4), {}),
])
def test_stand_in_refuses_what_the_adapter_refuses(name, args, kwargs):
    member = getattr(StandIn().modules["npu_bridge.npu_init"], name)
    with pytest.raises(TypeError):
        member(*args, **kwargs)


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
    call, = stand_in.named("NPULossScaleOptimizer")
    inner = call.arguments["opt"]
    assert model.optimizer.optimizer is inner and call.arguments["is_distributed"]
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
    broadcast = stand_in.named("NPUBroadcastGlobalVariablesCallback")[0].result
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
