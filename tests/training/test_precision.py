"""--precision (Keras mixed precision), moving optimizer state between rebuilt models; negative thread flags."""

import numpy as np
import pytest

import train_keras
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import clear_session, keras
from densenet3d_keras.cli.train import build_parser
from densenet3d_keras.training.config import resolve
from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.objectives import CUSTOM_OBJECTS, compile_model



@pytest.fixture
def float32_afterwards(keras_session):
    """Restore the float32 policy: the policy is global and would leak into later tests."""
    yield
    compat.set_precision("float32")
    clear_session()


def _batch(seed=0, batch=2, size=38):
    rng = np.random.RandomState(seed)
    x = rng.randn(batch, size, size, size, 4).astype(np.float32)
    out = size - 26
    labels = rng.randint(0, 5, (batch, out, out, out))
    return x, [np.eye(2, dtype=np.float32)[(labels > 0).astype(int)],
               np.eye(5, dtype=np.float32)[labels]]


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="bf16, float32, mixed_float16"):
        compat.set_precision("float64")


@pytest.mark.parametrize("precision, policy, loss_scaled", [
    ("float32", "float32", False),
    ("bf16", "mixed_bfloat16", False),
    ("mixed_float16", "mixed_float16", True),
])
def test_policy_outputs_and_loss_scaling(float32_afterwards, precision, policy, loss_scaled):
    compat.set_precision(precision)
    model = compile_model(build_model("tiny"))
    assert compat.precision_policy(model) == policy
    assert [out.dtype for out in model.outputs] == [np.float32, np.float32]  # softmax in float32
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer) == loss_scaled
    assert [v.dtype for v in model.trainable_variables] == [np.float32] * len(model.trainable_variables)


def test_batch_norm_computes_in_float32_under_bf16(float32_afterwards):
    compat.set_precision("bf16")
    block = build_model("tiny").get_layer("flair_t2_block1")
    assert block.convs[0].compute_dtype == "bfloat16"
    assert block.norms[0].compute_dtype == "float32"


def test_bf16_logits_stay_close_to_float32(float32_afterwards):
    reference = build_model("tiny")
    x, _ = _batch()
    expected = reference.predict(x, verbose=0)
    compat.set_precision("bf16")
    model = build_model("tiny")
    model.set_weights(reference.get_weights())
    for a, b in zip(expected, model.predict(x, verbose=0)):
        assert np.max(np.abs(a - b)) < 0.05 * np.max(np.abs(a))  # bfloat16: 8-bit mantissa


def test_optimizer_state_moves_to_a_model_of_the_other_padding(keras_session):
    source = compile_model(build_model("tiny", 30, padding="same"))
    x, y = _batch(size=30)
    source.train_on_batch(x, y)
    source.train_on_batch(x, y)
    target = build_model("tiny", 30, padding="valid")
    target.set_weights(source.get_weights())
    optimizer = compat.moved_optimizer(source.optimizer, target.trainable_variables)
    compile_model(target, optimizer=optimizer)
    assert compat.optimizer_iterations(optimizer) == 2
    before = keras.backend.batch_get_value(source.optimizer.variables)
    after = keras.backend.batch_get_value(optimizer.variables)
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    target.train_on_batch(x, y)  # the moved optimizer knows the new variables
    assert compat.optimizer_iterations(optimizer) == 3


def test_resume_in_another_precision_keeps_the_optimizer_state(
        float32_afterwards, small_dataset, cache_dir, tmp_path, capsys):
    save = str(tmp_path / "ckpt")
    base = ["-mn", "tiny", "-r", small_dataset, "--n-pos", "2", "--n-neg", "2", "-bs", "2",
            "--performance", "1", "--cache-dir", cache_dir, "-sp", save]
    assert train_keras.main(base + ["-e", "1", "--padding", "valid", "--precision", "bf16"]) == 0
    assert train_keras.main(base + ["-e", "2", "--padding", "valid", "-c", "true", "-lp", save]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and '"precision": "bf16"' in out
    resumed = keras.models.load_model(save + "/tiny_epoch_002.h5", custom_objects=CUSTOM_OBJECTS)
    assert compat.precision_policy(resumed) == "float32"
    assert compat.optimizer_iterations(resumed.optimizer) == 6  # 3 batches per epoch, 2 epochs


@pytest.mark.parametrize("flag", ["--intra-op-threads", "--inter-op-threads"])
def test_negative_thread_counts_are_rejected(flag):
    args = build_parser().parse_args(["-mn", "tiny", "-r", "data", flag, "-1"])
    with pytest.raises(ValueError, match=flag):
        resolve(args)
