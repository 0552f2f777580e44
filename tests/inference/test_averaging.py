"""densenet3d_keras.inference.averaging: test-time mirroring and ensembles of predictors."""
import itertools

import numpy as np
import pytest

from densenet3d_keras.core.geometry import PATCH_SIZE
from densenet3d_keras.inference import averaging, predict

RNG = np.random.RandomState(0)
WEIGHTS = RNG.normal(0.0, 1.0, (4, 5)).astype(np.float32)
OTHER_WEIGHTS = RNG.normal(0.0, 1.0, (4, 5)).astype(np.float32)


def reference_softmax(logits):
    """Softmax over the labels 0, 1, 2 and 4 of the last axis in float64 (class 3, no label,
    is 0), written out independently of the module."""
    values = np.asarray(logits, np.float64)
    values = np.exp(values - values.max(axis=-1, keepdims=True))
    values[..., 3] = 0.0
    return values / values.sum(axis=-1, keepdims=True)


def pointwise(batch, weights=WEIGHTS):
    """A flip-equivariant predictor: each voxel's logits from its own channels."""
    return np.tensordot(batch, weights, axes=([4], [0])).astype(np.float32)


def box_valid(batch):
    """Flip-equivariant with a valid crop: the 3^3 box sum of :func:`pointwise`, 1 voxel less
    on each side (like the network's margin, here 1)."""
    logits = pointwise(batch)
    d, h, w = logits.shape[1:4]
    out = np.zeros((logits.shape[0], d - 2, h - 2, w - 2, 5), np.float32)
    for i, j, k in itertools.product(range(3), repeat=3):
        out += logits[:, i:i + d - 2, j:j + h - 2, k:k + w - 2]
    return out / 27.0


def skewed(batch):
    """Not flip-equivariant: running sums along two axes and a ramp along the third."""
    logits = pointwise(batch)
    logits = 0.3 * np.cumsum(logits, axis=1) + 0.2 * np.cumsum(logits, axis=2)
    ramp = np.arange(batch.shape[3], dtype=np.float32)[None, None, None, :, None]
    return (logits + 0.1 * ramp * np.arange(5, dtype=np.float32)).astype(np.float32)


def hand_tta(predictor, batch):
    """The mean softmax over the 8 mirror images, each flipped back, enumerated by hand."""
    total = 0.0
    for mask in itertools.product((False, True), repeat=3):
        axes = tuple(axis for axis, flipped in zip((1, 2, 3), mask) if flipped)
        image = batch[:, ::-1] if mask[0] else batch
        image = image[:, :, ::-1] if mask[1] else image
        image = image[:, :, :, ::-1] if mask[2] else image
        output = predictor(np.ascontiguousarray(image))
        total = total + reference_softmax(np.flip(output, axis=axes) if axes else output)
    return total / 8.0


@pytest.fixture(scope="module")
def batch():
    return np.random.RandomState(1).normal(0.0, 1.0, (2, 7, 6, 5, 4)).astype(np.float32)


def test_flips_are_the_8_subsets_of_the_spatial_axes():
    assert len(averaging.FLIPS) == 8 and len(set(averaging.FLIPS)) == 8
    assert averaging.FLIPS[0] == ()
    assert all(set(axes) <= {1, 2, 3} and list(axes) == sorted(axes) for axes in averaging.FLIPS)
    assert averaging.passes_per_batch(3, True) == 24 and averaging.passes_per_batch(2, False) == 2


def test_tta_equals_the_hand_computed_average_over_the_8_flips(batch):
    result = averaging.averaged_predictor([skewed], flips=True)(batch)
    assert result.dtype == np.float32 and result.shape == batch.shape[:4] + (5,)
    expected = hand_tta(skewed, batch)
    np.testing.assert_allclose(np.exp(result), expected, rtol=1e-5, atol=1e-6)
    probabilities = predict.probabilities_from_logits(result[0])
    # The written probabilities are the averages themselves.
    np.testing.assert_allclose(probabilities, expected[0], rtol=1e-5, atol=1e-6)
    plain = reference_softmax(skewed(batch))
    assert np.abs(plain - expected).max() > 0.05, "the toy predictor must not be flip-equivariant"


@pytest.mark.parametrize("predictor", [pointwise, box_valid])
def test_tta_of_a_flip_equivariant_predictor_changes_nothing(batch, predictor):
    result = averaging.averaged_predictor([predictor], flips=True)(batch)
    np.testing.assert_allclose(np.exp(result), reference_softmax(predictor(batch)),
                               rtol=1e-5, atol=1e-6)


def test_ensemble_is_the_mean_of_the_probabilities(batch):
    def other(images):
        return pointwise(images, OTHER_WEIGHTS)

    result = averaging.averaged_predictor([pointwise, other])(batch)
    expected = (reference_softmax(pointwise(batch)) + reference_softmax(other(batch))) / 2.0
    np.testing.assert_allclose(np.exp(result), expected, rtol=1e-5, atol=1e-6)
    both = averaging.averaged_predictor([skewed, other], flips=True)(batch)
    np.testing.assert_allclose(np.exp(both), (hand_tta(skewed, batch) + hand_tta(other, batch))
                               / 2.0, rtol=1e-5, atol=1e-6)


def test_ensemble_of_one_predictor_twice_equals_the_predictor(batch):
    result = averaging.averaged_predictor([skewed, skewed])(batch)
    logits = skewed(batch)
    np.testing.assert_allclose(np.exp(result), reference_softmax(logits), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predict.labels_from_logits(result[0]),
                                  predict.labels_from_logits(logits[0]))


def test_probability_that_underflows_gives_a_finite_log():
    def certain(images):
        logits = np.zeros(images.shape[:4] + (5,), np.float32)
        logits[..., 2] = 1000.0
        return logits

    result = averaging.averaged_predictor([certain], flips=True)(np.zeros((1, 2, 2, 2, 4)))
    assert np.isfinite(result).all() and (predict.labels_from_logits(result[0]) == 2).all()


def test_no_predictor_is_an_error():
    with pytest.raises(ValueError, match="at least one predictor"):
        averaging.averaged_predictor([])


class Streaming(object):
    """A predictor that reports progress within its pass, as a streamer does: 3 steps."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.progress = None

    def __call__(self, batch):
        for step in (1, 2, 3):
            if self.progress is not None:
                self.progress(step, 3)
        return self.predictor(batch)


def test_members_report_their_passes_as_one_count(batch):
    members = [Streaming(pointwise), Streaming(skewed), skewed]  # the last one reports nothing
    averaged = averaging.averaged_predictor(members[:2], flips=True)
    assert averaged.passes == 16
    calls = []
    averaged.progress = lambda done, total: calls.append((done, total))
    averaged(batch)
    assert calls == [(3 * index + step, 48) for index in range(16) for step in (1, 2, 3)]
    averaged.progress = None
    assert all(member.progress is None for member in members[:2])
    plain = averaging.averaged_predictor([members[0], members[2]])
    calls = []
    plain.progress = lambda done, total: calls.append((done, total))
    plain(batch)
    assert calls == [(1, 6), (2, 6), (3, 6)]  # two passes; only the first reports


def test_fcn_tiles_with_tta_of_an_equivariant_predictor_equal_plain_tiles():
    image = np.random.RandomState(2).normal(0.0, 1.0, (13, 11, 9, 4)).astype(np.float32)
    background = np.zeros(4, np.float32)
    tta = averaging.averaged_predictor([box_valid], flips=True)
    kwargs = dict(margin=1, tile_size=6, crop_to_brain=False)
    plain = predict.predict_fcn(box_valid, image, background, **kwargs)
    mirrored = predict.predict_fcn(tta, image, background, **kwargs)
    assert plain.num_passes > 8, "several tiles of different positions"
    np.testing.assert_allclose(mirrored.probabilities(), plain.probabilities(), rtol=1e-5,
                               atol=1e-6)


@pytest.fixture(scope="module")
def tiny_weights():
    """The weights of a tiny model with random batch-norm statistics (not flip-equivariant)."""
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model
    from tests.inference.test_inference import _randomise_batch_norm

    clear_session()
    keras.utils.set_random_seed(5)
    model = build_model("tiny", PATCH_SIZE, padding="same")
    _randomise_batch_norm(model, seed=4)
    weights = model.get_weights()
    clear_session()
    return weights


def test_tta_with_the_tiny_model_is_the_same_for_fcn_tiles_and_patch_windows(tiny_weights):
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    # A 12^3 "brain" at the centre of one 38^3 window: one fcn tile, one patch window.
    background = np.full(4, -2.0, np.float32)
    image = np.tile(background, (PATCH_SIZE,) * 3 + (1,))
    image[13:25, 13:25, 13:25] = np.random.RandomState(3).normal(0.0, 1.0, (12, 12, 12, 4))
    results = {}
    for method, size in (("fcn", None), ("patch", PATCH_SIZE)):
        clear_session()
        model = build_model("tiny", size, padding="valid" if size is None else "same")
        model.set_weights(tiny_weights)
        for flips in (False, True):
            predictor = averaging.averaged_predictor([model], flips=flips)
            if method == "fcn":
                results[method, flips] = predict.predict_fcn(predictor, image, background)
            else:
                results[method, flips] = predict.predict_patch(predictor, image, background,
                                                               windows=[(0, 0, 0)])
    clear_session()
    scored = results["patch", True].scored
    assert scored.sum() == 12 ** 3 and results["fcn", True].num_passes == 1
    np.testing.assert_array_equal(results["fcn", True].scored, scored)
    for flips in (False, True):
        np.testing.assert_allclose(results["fcn", flips].probabilities()[scored],
                                   results["patch", flips].probabilities()[scored], atol=1e-4)
    difference = np.abs(results["fcn", True].probabilities() - results["fcn", False].probabilities())
    assert difference[scored].max() > 1e-2, "the network is not flip-equivariant: TTA averages"
