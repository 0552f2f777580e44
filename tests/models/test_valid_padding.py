"""Valid padding is the same network as same padding: weights, logits, checkpoints, training."""
import os

import numpy as np
import pytest

import train_keras
from densenet3d_keras.models.checkpoints import read_checkpoint_info, save_checkpoint
from densenet3d_keras.core.compat import clear_session, keras
from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.objectives import CUSTOM_OBJECTS, compile_model

#: Largest allowed |same - valid| as a fraction of the logits' scale (max |logit|).
RELATIVE_TOLERANCE = 1e-4


def _randomise_batch_norm(model, seed):
    """Give every BN layer non-trivial statistics, scale and offset (as after training)."""
    rng = np.random.RandomState(seed)
    for weight in model.weights:
        name = weight.name.split("/")[-1]
        shape = tuple(weight.shape.as_list())
        if name.startswith("moving_mean") or name.startswith("beta"):
            weight.assign(rng.uniform(-0.5, 0.5, shape).astype(np.float32))
        elif name.startswith("moving_variance") or name.startswith("gamma"):
            weight.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))


def _image(batch, size, seed=0):
    return np.random.RandomState(seed).randn(batch, size, size, size, 4).astype(np.float32)


def _assert_same_logits(reference, other):
    for a, b in zip(reference, other):
        assert a.shape == b.shape
        scale = float(np.max(np.abs(a)))
        assert scale > 0
        assert float(np.max(np.abs(a - b))) <= RELATIVE_TOLERANCE * scale


def _weight_table(model):
    return [(w.name, tuple(w.shape.as_list())) for w in model.weights]


@pytest.mark.parametrize("name", ["dense24", "dense48", "no_dense", "tiny"])
def test_weights_are_interchangeable(keras_session, name):
    same = _weight_table(build_model(name, padding="same"))
    clear_session()
    valid = _weight_table(build_model(name, padding="valid"))
    assert valid == same


def test_dense24_valid_gives_the_same_logits(keras_session):
    same = build_model("dense24", padding="same")
    _randomise_batch_norm(same, seed=1)
    valid = build_model("dense24", padding="valid")
    valid.set_weights(same.get_weights())
    x = _image(1, 38)
    _assert_same_logits([t.numpy() for t in same(x, training=False)],
                        [t.numpy() for t in valid(x, training=False)])


@pytest.mark.parametrize("input_size", [38, 44])
def test_tiny_valid_gives_the_same_logits_with_trained_statistics(keras_session, input_size):
    same = build_model("tiny", input_size, padding="same")
    _randomise_batch_norm(same, seed=2)
    valid = build_model("tiny", input_size, padding="valid")
    valid.set_weights(same.get_weights())
    x = _image(2, input_size, seed=3)
    expected = same.predict(x, verbose=0)
    _assert_same_logits(expected, valid.predict(x, verbose=0))
    # Same weights, same logits: the only difference is what BN sees in training mode.
    clear_session()
    fully_convolutional = build_model("tiny", None, padding="valid")
    fully_convolutional.set_weights(same.get_weights())
    _assert_same_logits(expected, fully_convolutional.predict(x, verbose=0))


@pytest.mark.parametrize("saved, loaded", [("same", "valid"), ("valid", "same")])
def test_checkpoint_of_one_padding_loads_into_the_other(keras_session, tmp_path, saved, loaded):
    source = compile_model(build_model("tiny", padding=saved))
    _randomise_batch_norm(source, seed=4)
    x = _image(2, 38, seed=5)
    expected = source.predict(x, verbose=0)
    path = str(tmp_path / "tiny_epoch_001.h5")
    save_checkpoint(source, path, epoch=1, model_name="tiny", padding=saved)
    assert read_checkpoint_info(path)["padding"] == saved
    clear_session()
    target = build_model("tiny", padding=loaded)
    target.load_weights(path)
    _assert_same_logits(expected, target.predict(x, verbose=0))


def test_train_command_with_valid_padding(keras_session, small_dataset, cache_dir, tmp_path, capsys):
    save = tmp_path / "ckpt"
    code = train_keras.main(["-mn", "tiny", "-r", small_dataset, "--padding", "valid", "-e", "1",
                             "--n-pos", "2", "--n-neg", "2", "-bs", "2", "--cache-dir", cache_dir,
                             "-sp", str(save)])
    out, err = capsys.readouterr()
    assert code == 0, err
    losses = [float(line.split(" ")[8].rstrip(",")) for line in out.splitlines()
              if line.startswith("epoch-patient:")]
    assert len(losses) == 6 and all(np.isfinite(losses))
    checkpoint = str(save / "tiny_epoch_001.h5")
    assert read_checkpoint_info(checkpoint)["padding"] == "valid"
    restored = keras.models.load_model(checkpoint, compile=False, custom_objects=CUSTOM_OBJECTS)
    assert restored.output_shape[0][1:] == (12, 12, 12, 2)
    assert os.path.isfile(str(save / "config.json"))
