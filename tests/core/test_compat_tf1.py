"""The TensorFlow 1.15 branches of ``core/compat.py`` that can run here.

TensorFlow 1.15's Keras ``OptimizerV2`` has no ``_create_all_weights`` (TensorFlow 2.2 added it);
``compat.create_optimizer_weights`` takes the three steps of 1.15's ``apply_gradients`` there.
Those three members (``iterations``, ``_create_hypers``, ``_create_slots``) exist unchanged in
TensorFlow 2's legacy Keras optimizer, so the 1.15 branch runs here against it, with
``_create_all_weights`` made to fail: it must not be needed.
"""
import numpy as np
import pytest

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras, tf


def _variables():
    return [tf.Variable(np.ones((3, 2), np.float32), name="kernel"),
            tf.Variable(np.zeros((2,), np.float32), name="bias")]


@pytest.fixture
def without_create_all_weights(monkeypatch):
    """The legacy optimizer as TensorFlow 1.15 has it: no ``_create_all_weights``."""
    def missing(self, var_list):
        raise AttributeError("'Adam' object has no attribute '_create_all_weights' (TF 1.15)")

    monkeypatch.setattr(keras.optimizers.legacy.Optimizer, "_create_all_weights", missing)
    monkeypatch.setattr(compat, "IS_TF1", True)


def _weights(optimizer):
    return [(tuple(w.shape.as_list()), w.dtype.name) for w in optimizer.weights]


def test_tf1_branch_creates_the_weights_the_tf2_method_creates(keras_session):
    variables = _variables()
    expected = keras.optimizers.legacy.Adam(1e-3)
    expected._create_all_weights(variables)
    created = keras.optimizers.legacy.Adam(1e-3)
    compat._create_optimizer_weights_tf1(created, variables)
    assert _weights(created) == _weights(expected) == [
        ((), "int64"), ((3, 2), "float32"), ((2,), "float32"), ((3, 2), "float32"), ((2,), "float32")]
    assert sorted(created._hyper) == sorted(expected._hyper)


def test_create_optimizer_weights_on_tf1_does_without_create_all_weights(keras_session,
                                                                         without_create_all_weights):
    optimizer = keras.optimizers.legacy.Adam(1e-3)
    compat.create_optimizer_weights(optimizer, _variables())
    assert len(optimizer.weights) == 5


def test_moved_optimizer_on_tf1_moves_the_state(keras_session, without_create_all_weights):
    source = keras.optimizers.legacy.Adam(2e-3)
    variables = _variables()
    source._create_hypers()
    compat._create_optimizer_weights_tf1(source, variables)
    state = [np.array(7, np.int64), np.full((3, 2), 0.5, np.float32), np.full((2,), 0.25, np.float32),
             np.full((3, 2), 0.125, np.float32), np.full((2,), 0.0625, np.float32)]
    keras.backend.batch_set_value(list(zip(source.weights, state)))
    moved = compat.moved_optimizer(source, _variables())
    assert moved is not source and compat.get_learning_rate(moved) == pytest.approx(2e-3)
    for expected, got in zip(state, keras.backend.batch_get_value(moved.weights)):
        np.testing.assert_array_equal(got, expected)
