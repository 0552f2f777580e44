"""Whole-volume inference: tile and window plans, padding arithmetic, and fcn == patch."""
import os

import nibabel as nib
import numpy as np
import pytest

from densenet3d_keras.core.brain import brain_mask
from densenet3d_keras.inference import output, predict, tiling
from densenet3d_keras.core.geometry import MARGIN, PATCH_SIZE

# ----------------------------------------------------------------------------- tile plans


@pytest.mark.parametrize("length, max_output, count, size", [
    (1, 70, 1, 1),
    (70, 70, 1, 70),
    (71, 70, 2, 36),      # two blocks of 36: the second clamped to end at 71, writes 35
    (183, 70, 3, 61),
    (113, 70, 2, 57),
    (10, 3, 4, 3),
    (5, 4, 2, 3),
    (7, 1, 7, 1),
])
def test_axis_tiles_partition_the_axis_with_equal_blocks(length, max_output, count, size):
    tiles = tiling.axis_tiles(length, max_output)
    assert len(tiles) == count
    assert all(t.stop - t.start == size for t in tiles)
    assert size <= max_output
    assert tiles[0].start == 0 and tiles[-1].stop == length
    cover = np.zeros(length, int)
    for tile in tiles:
        assert tile.start <= tile.write_start < tile.write_stop <= tile.stop
        cover[tile.write_start:tile.write_stop] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("length, max_output", [(0, 5), (5, 0)])
def test_axis_tiles_rejects_empty_input(length, max_output):
    with pytest.raises(ValueError):
        tiling.axis_tiles(length, max_output)


@pytest.mark.parametrize("start, stop, tile_size", [
    ((0, 0, 0), (240, 240, 155), 96),
    ((25, 36, 23), (208, 210, 136), 96),   # a synthetic brain's bounding box
    ((3, 5, 7), (20, 9, 40), 40),
    ((0, 0, 0), (1, 1, 1), 27),            # smallest tile: one output voxel
    ((10, 10, 10), (11, 80, 12), 30),
])
def test_tile_plan_writes_every_voxel_of_the_region_exactly_once(start, stop, tile_size):
    plan = tiling.tile_plan(start, stop, tile_size, MARGIN)
    shape = tuple(b + 2 for b in stop)
    cover = np.zeros(shape, np.uint8)
    shapes = set()
    for tile in plan:
        block = tuple(slice(a, b) for a, b in zip(tile.write_start, tile.write_stop))
        cover[block] += 1
        out = tuple(b - a for a, b in zip(tile.start, tile.stop))
        shapes.add(out)
        assert max(out) <= tile_size - 2 * MARGIN
        assert all(a >= s and b <= e for a, b, s, e in zip(tile.start, tile.stop, start, stop))
        assert all(a <= w and x <= b for a, w, x, b in zip(tile.start, tile.write_start,
                                                           tile.write_stop, tile.stop))
        assert tiling.tile_input_shape(tile, MARGIN) == tuple(o + 2 * MARGIN for o in out)
    region = tuple(slice(a, b) for a, b in zip(start, stop))
    assert (cover[region] == 1).all()
    assert cover.sum() == np.prod([b - a for a, b in zip(start, stop)])
    assert len(shapes) == 1, "every tile of a plan has one shape"


def test_default_tile_plan_for_a_brats_brain_uses_18_tiles_of_about_87_voxels():
    plan = tiling.tile_plan((25, 36, 23), (208, 210, 136))
    assert len(plan) == 18
    assert tiling.tile_input_shape(plan[0]) == (87, 84, 83)


@pytest.mark.parametrize("tile_size", [26, 20])
def test_tile_plan_rejects_tiles_without_output(tile_size):
    with pytest.raises(ValueError, match="too small"):
        tiling.tile_plan((0, 0, 0), (50, 50, 50), tile_size, MARGIN)


def test_tile_plan_rejects_an_empty_region():
    with pytest.raises(ValueError, match="empty region"):
        tiling.tile_plan((5, 5, 5), (5, 9, 9), 96)


@pytest.mark.parametrize("input_shape, tile_size, expected", [
    ((96, 96, 96), 96, 1), ((87, 84, 83), 96, 1), ((48, 48, 48), 96, 8),
    ((62, 62, 81), 96, 2), ((120, 120, 120), 96, 1),
])
def test_tiles_per_batch_fills_the_voxel_budget(input_shape, tile_size, expected):
    assert tiling.tiles_per_batch(input_shape, tile_size) == expected


# ----------------------------------------------------------------------------- window plans


@pytest.mark.parametrize("shape", [(38, 38, 38), (50, 62, 38), (51, 40, 45), (60, 56, 50)])
def test_window_blocks_cover_the_interior_and_nothing_else(shape):
    starts = tiling.window_plan(shape)
    cover = np.zeros(shape, np.uint8)
    for start in starts:
        assert all(0 <= s and s + PATCH_SIZE <= d for s, d in zip(start, shape))
        cover[tiling.window_block(start)] += 1
    interior = tuple(slice(MARGIN, d - MARGIN) for d in shape)
    assert (cover[interior] >= 1).all()
    assert cover.sum() == (cover[interior]).sum(), "no block reaches into the 13-voxel rim"
    if all((d - PATCH_SIZE) % 12 == 0 for d in shape):
        assert (cover[interior] == 1).all()


def test_window_plan_of_a_brats_volume_has_3564_windows():
    assert len(tiling.window_plan((240, 240, 155))) == 18 * 18 * 11


def test_window_plan_rejects_a_volume_smaller_than_the_patch():
    with pytest.raises(ValueError, match="smaller than"):
        tiling.window_plan((37, 50, 50))


# ----------------------------------------------------------------------------- padding


def _ramp(shape, channels=2):
    return np.arange(np.prod(shape) * channels, dtype=np.float32).reshape(tuple(shape) + (channels,))


@pytest.mark.parametrize("start, stop", [
    ((0, 0, 0), (4, 5, 6)),         # the whole volume
    ((1, 2, 3), (3, 4, 5)),         # inside
    ((-2, -1, 0), (3, 5, 8)),       # beyond the start and the end
    ((-3, 4, 2), (-1, 6, 4)),       # wholly outside on one axis
    ((-1, -1, -1), (5, 6, 7)),      # the volume padded by one voxel
])
def test_extract_block_equals_slicing_the_background_padded_volume(start, stop):
    image = _ramp((4, 5, 6))
    fill = np.asarray([-1.5, -7.0], np.float32)
    pad = 5
    padded = np.empty(tuple(s + 2 * pad for s in image.shape[:3]) + (2,), np.float32)
    padded[...] = fill
    padded[pad:-pad, pad:-pad, pad:-pad] = image
    expected = padded[tuple(slice(a + pad, b + pad) for a, b in zip(start, stop))]
    block = tiling.extract_block(image, start, stop, fill)
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block, expected)
    block[...] = 0  # a copy, never a view
    assert image.max() > 0


def test_extract_block_rejects_an_empty_box():
    with pytest.raises(ValueError, match="empty box"):
        tiling.extract_block(_ramp((4, 4, 4)), (1, 1, 1), (1, 3, 3), (0, 0))


@pytest.mark.parametrize("shape, offset, padded", [
    ((40, 50, 38), (0, 0, 0), (40, 50, 38)),
    ((30, 50, 20), (4, 0, 9), (38, 50, 38)),
    ((37, 16, 39), (1, 11, 0), (38, 38, 39)),
])
def test_pad_to_patch_pads_short_axes_symmetrically_and_crop_back_undoes_it(shape, offset, padded):
    image = _ramp(shape)
    fill = np.asarray([-3.0, -4.0], np.float32)
    out, where = tiling.pad_to_patch(image, fill, PATCH_SIZE)
    assert out.shape[:3] == padded and tuple(where) == offset
    np.testing.assert_array_equal(tiling.crop_back(out, where, shape), image)
    border = np.ones(padded, bool)
    border[tuple(slice(o, o + s) for o, s in zip(offset, shape))] = False
    np.testing.assert_array_equal(out[border], np.broadcast_to(fill, (border.sum(), 2)))


@pytest.mark.parametrize("points, expected", [
    ([(3, 4, 5)], ((3, 4, 5), (4, 5, 6))),
    ([(0, 9, 2), (7, 1, 2)], ((0, 1, 2), (8, 10, 3))),
    ([], None),
])
def test_bounding_box(points, expected):
    mask = np.zeros((8, 10, 6), bool)
    for point in points:
        mask[point] = True
    assert tiling.bounding_box(mask) == expected


# ----------------------------------------------------------------------------- logits


def test_labels_skip_class_3_and_unscored_voxels():
    logits = np.zeros((2, 1, 1, 5), np.float32)
    logits[0, 0, 0] = [0, 1, 2, 9, 3]   # class 3 is not a label: 4 wins
    logits[1, 0, 0] = [0, 5, 2, 9, 3]
    labels = predict.labels_from_logits(logits)
    assert labels.dtype == np.uint8 and labels.ravel().tolist() == [4, 1]
    scored = np.array([True, False]).reshape((2, 1, 1))
    assert predict.labels_from_logits(logits, scored).ravel().tolist() == [4, 0]


def test_probabilities_are_a_softmax_over_the_labels_and_background_where_unscored():
    rng = np.random.RandomState(0)
    logits = (rng.randn(6, 4, 2, 5) * 3).astype(np.float32)
    logits[..., 3] += 5.0  # class 3, not a label, often has the largest logit
    scored = rng.rand(6, 4, 2) > 0.3
    probabilities = predict.probabilities_from_logits(logits, scored)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert (probabilities[..., 3] == 0).all()
    labels = [0, 1, 2, 4]
    expected = np.exp(logits[..., labels] - logits[..., labels].max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities[scored][:, labels], expected[scored], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(probabilities[~scored][:, 0], 1.0)
    # The file's argmax is the label map.
    np.testing.assert_array_equal(probabilities.argmax(-1), predict.labels_from_logits(logits, scored))


# ----------------------------------------------------------------------------- NIfTI output


def test_write_nifti_like_keeps_the_reference_grid_and_leaves_no_temporary(tmp_path):
    affine = np.array([[-1.0, 0, 0, 30], [0, -1.2, 0, 40], [0, 0, 2.0, -10], [0, 0, 0, 1]])
    reference = nib.Nifti1Image(np.ones((6, 5, 4), np.int16), affine)
    reference.set_qform(affine, code=1)
    reference.set_sform(affine, code=2)
    reference.header.set_xyzt_units("mm", "sec")
    path = str(tmp_path / "case.nii.gz")
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[1:3, 2, 1] = 4
    output.write_nifti_like(path, labels, reference.header, "test labels")
    image = nib.load(path)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(image.dataobj), labels)
    np.testing.assert_allclose(image.affine, affine)
    assert image.header.get_qform(coded=True)[1] == 1
    assert image.header.get_sform(coded=True)[1] == 2
    np.testing.assert_allclose(image.header.get_qform(), reference.header.get_qform())
    assert image.header.get_zooms() == reference.header.get_zooms()
    probabilities = np.random.RandomState(1).rand(6, 5, 4, 5).astype(np.float32)
    output.write_nifti_like(str(tmp_path / "p.nii.gz"), probabilities, reference.header)
    loaded = nib.load(str(tmp_path / "p.nii.gz"))
    assert loaded.shape == (6, 5, 4, 5) and loaded.get_data_dtype() == np.float32
    np.testing.assert_array_equal(np.asarray(loaded.dataobj), probabilities)
    assert sorted(os.listdir(str(tmp_path))) == ["case.nii.gz", "p.nii.gz"]
    with pytest.raises(ValueError, match="differs from the reference grid"):
        output.write_nifti_like(str(tmp_path / "bad.nii.gz"), labels[:5], reference.header)
    assert not os.path.exists(str(tmp_path / "bad.nii.gz"))


# ----------------------------------------------------------------------------- fcn == patch


def _randomise_batch_norm(model, seed):
    """Give every BN layer random statistics and affine terms, so inference mode is not a no-op."""
    rng = np.random.RandomState(seed)
    values = []
    for weight in model.weights:
        value = weight.numpy()
        name = weight.name
        if "moving_mean" in name:
            value = rng.normal(0.0, 0.3, value.shape)
        elif "moving_variance" in name:
            value = rng.uniform(0.5, 2.0, value.shape)
        elif "gamma" in name:
            value = rng.uniform(0.6, 1.4, value.shape)
        elif "beta" in name:
            value = rng.normal(0.0, 0.2, value.shape)
        values.append(value.astype(np.float32))
    model.set_weights(values)


@pytest.fixture(scope="module")
def volume():
    """A normalised 60x56x50 synthetic case and its background values."""
    from generators.synthetic import make_case
    from generators.volumes import normalise

    case = make_case((60, 56, 50), seed=5)
    channels, background = zip(*[normalise(case[m]) for m in ("flair", "t2", "t1", "t1ce")])
    return np.stack(channels, axis=-1), np.asarray(background, np.float32)


@pytest.fixture(scope="module")
def patch_result(volume):
    """The reference patch method with a tiny same-padding model, and that model's weights."""
    from densenet3d_keras.core.compat import clear_session, keras
    from densenet3d_keras.models.builder import build_model

    clear_session()
    keras.utils.set_random_seed(11)
    model = build_model("tiny", PATCH_SIZE, padding="same")
    _randomise_batch_norm(model, seed=3)
    image, background = volume
    # Centre the label logits of the brain on 0 (head bias), so that every class wins somewhere.
    probe = predict.predict_patch(model, image, background, windows=[(11, 9, 6)])
    bias = model.get_layer("head").label_conv_27.bias
    bias.assign(bias.numpy() - probe.logits[probe.scored].mean(axis=0))
    result = predict.predict_patch(model, image, background, batch_size=5, crop_to_brain=False)
    weights = model.get_weights()
    clear_session()
    return result, weights


def _tiny_fcn(weights, padding="valid"):
    """The patch fixture's weights in a fully convolutional tiny model, in a fresh session."""
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    clear_session()
    model = build_model("tiny", None, padding=padding)
    model.set_weights(weights)
    return model


@pytest.mark.parametrize("padding, tile_size, batch_size", [
    ("valid", 48, 4),   # several tiles per axis, batched
    ("same", 64, 1),
])
def test_fcn_equals_patch_away_from_the_edge(volume, patch_result, padding, tile_size, batch_size):
    from densenet3d_keras.core.compat import clear_session

    image, background = volume
    patch, weights = patch_result
    model = _tiny_fcn(weights, padding)
    calls = []
    result = predict.predict_fcn(model, image, background, tile_size=tile_size,
                                   batch_size=batch_size, crop_to_brain=False,
                                   progress=lambda done, total: calls.append((done, total)))
    clear_session()
    assert result.num_passes > 1 and calls[-1] == (result.num_passes, result.num_passes)
    assert result.scored.all(), "every voxel of the volume is scored"
    interior = tuple(slice(MARGIN, d - MARGIN) for d in image.shape[:3])
    assert patch.scored[interior].all() and patch.scored.sum() == patch.scored[interior].size
    reference = patch.logits[interior]
    assert np.abs(reference).max() > 1.0, "the test model must give non-trivial logits"
    np.testing.assert_allclose(result.logits[interior], reference, rtol=1e-3,
                               atol=1e-3 * np.abs(reference).max())
    agree = np.mean(result.labels[interior] == patch.labels[interior])
    assert agree >= 0.9999
    counts = np.bincount(patch.labels[interior].ravel(), minlength=5)
    assert (counts[[0, 1, 2, 4]] > 100).all(), "every label must win somewhere: %s" % counts


def test_streamed_fcn_equals_patch_and_tiles(volume, patch_result):
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.inference.streaming import SlabStreamer

    image, background = volume
    patch, weights = patch_result
    model = _tiny_fcn(weights)
    streamed = predict.predict_box(SlabStreamer(model, slab=6), image, background, crop_to_brain=False)
    tiles = predict.predict_fcn(model, image, background, tile_size=48, crop_to_brain=False)
    clear_session()
    assert streamed.num_passes == 1 and tiles.num_passes > 1
    np.testing.assert_array_equal(streamed.scored, tiles.scored)
    interior = tuple(slice(MARGIN, d - MARGIN) for d in image.shape[:3])
    reference = patch.logits[interior]
    np.testing.assert_allclose(streamed.logits[interior], reference, rtol=1e-3,
                               atol=1e-3 * np.abs(reference).max())
    np.testing.assert_allclose(streamed.logits, tiles.logits, rtol=1e-4,
                               atol=1e-4 * np.abs(tiles.logits).max())
    np.testing.assert_array_equal(streamed.labels, tiles.labels)


def test_fcn_on_the_brain_equals_patch_there_and_is_background_outside(volume, patch_result):
    from densenet3d_keras.core.compat import clear_session

    image, background = volume
    patch, weights = patch_result
    model = _tiny_fcn(weights)
    result = predict.predict_fcn(model, image, background, tile_size=96)
    clear_session()
    brain = brain_mask(image, background)
    start, stop = tiling.bounding_box(brain)
    box = np.zeros(image.shape[:3], bool)
    box[tuple(slice(a, b) for a, b in zip(start, stop))] = True
    np.testing.assert_array_equal(result.scored, brain)
    assert box.mean() < 0.8, "the synthetic brain leaves background around it"
    assert brain[box].mean() < 0.9, "the brain does not fill its box"
    labels = result.labels
    assert (labels[~brain] == 0).all() and (result.logits[~box] == 0).all()
    assert (labels[brain] != 0).any() and (patch.labels[~brain] != 0).any(), \
        "the test model labels tumour outside the brain when asked there"
    brain_only = predict.predict_patch(_tiny_fcn(weights, "same"), image, background, batch_size=5)
    clear_session()
    np.testing.assert_array_equal(brain_only.scored, patch.scored & brain)
    assert (brain_only.labels[~brain] == 0).all()
    box = brain
    interior = np.zeros_like(box)
    interior[tuple(slice(MARGIN, d - MARGIN) for d in image.shape[:3])] = True
    both = box & interior
    np.testing.assert_allclose(result.logits[both], patch.logits[both], rtol=1e-3,
                               atol=1e-3 * np.abs(patch.logits[both]).max())
    assert np.mean(labels[both] == patch.labels[both]) >= 0.9999


def test_patch_pads_a_volume_smaller_than_the_window(volume, patch_result):
    from densenet3d_keras.core.compat import clear_session
    from densenet3d_keras.models.builder import build_model

    image, background = volume
    small = np.ascontiguousarray(image[:, 10:40, 5:35])  # 60 x 30 x 30
    _, weights = patch_result
    clear_session()
    model = build_model("tiny", PATCH_SIZE, padding="same")
    model.set_weights(weights)
    result = predict.predict_patch(model, small, background, batch_size=8)
    clear_session()
    assert result.logits.shape == small.shape[:3] + (5,)
    assert result.labels.shape == small.shape[:3]
    # Padded to 60 x 38 x 38 (offsets 4), scored 13 voxels in from the padded edges, in the brain.
    covered = np.zeros(small.shape[:3], bool)
    covered[13:47, 9:21, 9:21] = True
    np.testing.assert_array_equal(result.scored, covered & brain_mask(small, background))
    assert result.scored.any()
