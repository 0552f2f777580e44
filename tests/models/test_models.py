"""Model factories: parameter counts, shapes, names, saving and loading."""
import numpy as np
import pytest

from densenet3d_keras.models.objectives import CUSTOM_OBJECTS
from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.objectives import compile_model
from densenet3d_keras.models.presets import resolve_model_name
from densenet3d_keras.core.compat import keras


def _count(weights):
    return int(sum(np.prod(w.shape.as_list()) for w in weights))


@pytest.mark.parametrize("name, total, trainable", [
    ("dense24", 793406, 786974),
    ("dense48", 1957742, None),
    ("no_dense", 7076366, None),
    ("no-dense", 7076366, None),
    ("dense24_nocorrection", 793406, 786974),
])
def test_parameter_counts_match_the_paper_models(keras_session, name, total, trainable):
    model = build_model(name)
    assert model.count_params() == total
    if trainable is not None:
        assert _count(model.trainable_weights) == trainable
    assert model.output_names == ["wt", "labels"]
    assert model.output_shape == [(None, 12, 12, 12, 2), (None, 12, 12, 12, 5)]
    assert model.input_shape == (None, 38, 38, 38, 4)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("size, out", [(38, 12), (40, 14), (27, 1)])
def test_output_is_input_minus_26(keras_session, padding, size, out):
    model = build_model("tiny", input_size=size, padding=padding)
    assert model.output_shape[1] == (None, out, out, out, 5)


def test_fully_convolutional_model_accepts_any_size(keras_session):
    model = build_model("tiny", input_size=None)
    x = np.zeros((1, 30, 33, 41, 4), np.float32)
    wt, labels = model.predict(x, verbose=0)
    assert wt.shape == (1, 4, 7, 15, 2) and labels.shape == (1, 4, 7, 15, 5)


def test_fcn_equals_patches_at_kept_voxels(keras_session):
    patch = build_model("tiny")
    fcn = build_model("tiny", input_size=None)
    fcn.set_weights(patch.get_weights())
    x = np.random.RandomState(0).randn(1, 44, 40, 39, 4).astype(np.float32)
    full = fcn.predict(x, verbose=0)[1]
    part = patch.predict(x[:, 4:42, 1:39, 0:38], verbose=0)[1]
    np.testing.assert_allclose(full[:, 4:16, 1:13, 0:12], part, rtol=1e-4, atol=1e-4)


def test_unknown_model_name_lists_choices():
    with pytest.raises(ValueError, match="unknown model name 'dense99'.*dense24.*no_dense"):
        build_model("dense99")


def test_too_small_input_rejected():
    with pytest.raises(ValueError, match="too small"):
        build_model("tiny", input_size=26)


def test_nocorrection_name_turns_n4_off():
    assert resolve_model_name("dense24_nocorrection") == ("dense24", False)
    assert resolve_model_name("no-dense") == ("no_dense", None)


def test_model_round_trips_through_json_config(keras_session):
    model = build_model("tiny")
    clone = keras.models.model_from_json(model.to_json(), custom_objects=CUSTOM_OBJECTS)
    assert clone.count_params() == model.count_params()
    assert [w.name for w in clone.weights] == [w.name for w in model.weights]


def test_save_and_load_give_identical_predictions(keras_session, tmp_path):
    model = compile_model(build_model("tiny"))
    rng = np.random.RandomState(1)
    x = rng.randn(2, 38, 38, 38, 4).astype(np.float32)
    y = [np.eye(2, dtype=np.float32)[rng.randint(0, 2, (2, 12, 12, 12))],
         np.eye(5, dtype=np.float32)[rng.randint(0, 5, (2, 12, 12, 12))]]
    model.train_on_batch(x, y)  # moves BN statistics away from their initial values
    before = model.predict(x, verbose=0)
    weights_path = str(tmp_path / "weights.h5")
    model.save_weights(weights_path)
    full_path = str(tmp_path / "model.h5")
    model.save(full_path)
    keras.backend.clear_session()
    fresh = build_model("tiny")
    fresh.load_weights(weights_path)
    loaded = keras.models.load_model(full_path, custom_objects=CUSTOM_OBJECTS)
    for other in (fresh, loaded):
        after = other.predict(x, verbose=0)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)


def test_summary_lists_layers_and_total(keras_session, capsys):
    build_model("dense24").summary(line_length=120)
    out = capsys.readouterr().out
    assert "flair_t2_block1 (DenseBlock3D)" in out
    assert "Total params: 793406" in out.replace(",", "")
