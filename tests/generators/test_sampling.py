"""Reference patch sampling against cases built by hand."""
import numpy as np
import pytest

from generators.cache import CachedCase
from generators.sampling import (batch_offsets, class_pools, draw, extract_patch, one_hot,
                                 sample_balanced_centres, sample_centres, targets)
from generators.sequence import PatchSequence


def _coordinate_case(shape=(50, 45, 40)):
    """Image whose channels hold each voxel's z, y, x and a checksum; label = (z + y + x) % 5."""
    z, y, x = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    image = np.stack([z, y, x, z * 10000 + y * 100 + x], axis=-1).astype(np.float32)
    label = ((z + y + x) % 5).astype(np.uint8)
    label[label == 3] = 0
    return image, label


@pytest.mark.parametrize("centre", [(25, 22, 20), (0, 0, 0), (49, 44, 39), (19, 30, 5)])
def test_patch_and_label_alignment(centre):
    image, label = _coordinate_case()
    x, y = extract_patch(image, label, centre)
    starts = [min(max(c - 19, 0), d - 38) for c, d in zip(centre, image.shape[:3])]
    assert x.shape == (38, 38, 38, 4) and y.shape == (12, 12, 12)
    assert x[0, 0, 0, :3].tolist() == starts
    assert x[37, 37, 37, :3].tolist() == [s + 37 for s in starts]
    # The label block starts 13 voxels into the patch: it is the label of patch voxels 13..24.
    expected = label[starts[0] + 13:starts[0] + 25, starts[1] + 13:starts[1] + 25, starts[2] + 13:starts[2] + 25]
    np.testing.assert_array_equal(y, expected)
    z, yy, xx = [x[13:25, 13:25, 13:25, i].astype(int) for i in range(3)]
    np.testing.assert_array_equal(label[z, yy, xx], y)


def test_sample_centres_counts_pools_and_no_replacement():
    rng = np.random.default_rng(0)
    positives = np.arange(0, 1000)
    negatives = np.arange(5000, 9000)
    centres = sample_centres(positives, negatives, 200, 200, rng)
    assert centres.size == 400
    assert np.sum(centres < 1000) == 200 and np.sum(centres >= 5000) == 200
    assert np.unique(centres).size == 400
    assert not np.all(np.diff(centres) > 0)  # shuffled together


def test_sample_centres_small_tumour_and_no_tumour():
    rng = np.random.default_rng(1)
    centres = sample_centres(np.array([7, 8]), np.arange(100, 200), 5, 5, rng)
    assert centres.size == 10 and np.sum(centres < 100) == 5  # with replacement
    centres = sample_centres(np.array([], np.int64), np.arange(100, 200), 5, 5, rng)
    assert centres.size == 10 and np.all(centres >= 100)
    with pytest.raises(ValueError, match="empty"):
        sample_centres([], [], 1, 1, rng)


def test_draw_without_enough_candidates():
    rng = np.random.default_rng(2)
    assert draw(np.array([]), 3, rng).size == 0
    assert draw(np.arange(3), 0, rng).size == 0


@pytest.mark.parametrize("count, batch, expected", [
    (400, 2, list(range(0, 400, 2))),
    (7, 3, [0, 3, 4]),  # the last batch moves back to stay full, as in the reference
    (6, 6, [0]),
])
def test_batch_offsets(count, batch, expected):
    assert batch_offsets(count, batch) == expected


def test_targets_whole_tumour_and_labels():
    labels = np.array([[[[0, 1], [2, 4]]]])
    wt, lab = targets(labels)
    assert wt.shape == (1, 1, 2, 2, 2) and lab.shape == (1, 1, 2, 2, 5)
    assert wt[..., 1].ravel().tolist() == [0, 1, 1, 1]
    assert lab.argmax(-1).ravel().tolist() == [0, 1, 2, 4]
    with pytest.raises(ValueError, match="labels must lie"):
        one_hot(np.array([5]), 5)


def _cached(case_id="A", seed=0):
    image, label = _coordinate_case()
    flat = label.reshape(-1)
    positives = np.flatnonzero(flat > 0)
    negatives = np.flatnonzero(flat == 0)
    return CachedCase(case_id, image, label, positives, negatives, np.zeros(4, np.float32), (0, 0, 0))


def test_sequence_batches_follow_patients_and_report_positive_fraction():
    cases = [_cached("A"), _cached("B")]
    sequence = PatchSequence(cases, batch_size=2, n_pos=3, n_neg=3, seed=5)
    assert len(sequence) == 6
    infos = sequence.epoch_infos()
    assert [(i.patient, i.iteration, i.iterations) for i in infos] == [
        (1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 3), (2, 2, 3), (2, 3, 3)]
    assert [i.case_id for i in infos] == ["A"] * 3 + ["B"] * 3
    x, (wt, lab) = sequence[0]
    assert x.shape == (2, 38, 38, 38, 4) and x.dtype == np.float32
    assert wt.shape == (2, 12, 12, 12, 2) and lab.shape == (2, 12, 12, 12, 5)
    assert infos[0].positive_fraction == pytest.approx(wt[..., 1].mean())
    # Every label block equals the label at the coordinates its patch voxels carry.
    z, y, xx = [x[:, 13:25, 13:25, 13:25, i].astype(int) for i in range(3)]
    np.testing.assert_array_equal(cases[0].label[z, y, xx], lab.argmax(-1))


def test_sequence_is_seeded_and_redraws_each_epoch():
    first = PatchSequence([_cached()], batch_size=2, n_pos=4, n_neg=4, seed=9)
    second = PatchSequence([_cached()], batch_size=2, n_pos=4, n_neg=4, seed=9)
    np.testing.assert_array_equal(first[1][0], second[1][0])
    epoch0 = first[0][0]
    first.on_epoch_end()
    assert first.epoch == 1 and first.epoch_infos()[0].epoch == 2
    assert not np.array_equal(first[0][0], epoch0)
    resumed = PatchSequence([_cached()], batch_size=2, n_pos=4, n_neg=4, seed=9, epoch=1)
    np.testing.assert_array_equal(resumed[0][0], first[0][0])


def test_sequence_performance_cut_and_bad_arguments():
    sequence = PatchSequence([_cached(), _cached("B")], batch_size=2, n_pos=10, n_neg=10,
                             max_batches_per_patient=2)
    assert len(sequence) == 4 and sequence.batch_info(3).iterations == 2
    with pytest.raises(ValueError, match="at least the batch size"):
        PatchSequence([_cached()], batch_size=4, n_pos=1, n_neg=1)
    with pytest.raises(IndexError):
        sequence[4]


def test_class_pools_hold_each_tumour_label_present():
    label = np.array([[[0, 1, 2], [4, 4, 0]]], np.uint8)
    pools = class_pools(label)
    assert [pool.tolist() for pool in pools] == [[1], [2], [3, 4]]
    assert [pool.tolist() for pool in class_pools(np.where(label == 2, 0, label))] == [[1], [3, 4]]


def test_balanced_centres_split_the_tumour_share_between_labels():
    rng = np.random.default_rng(0)
    pools = [np.arange(0, 3), np.arange(100, 1000), np.arange(2000, 2010)]  # core, edema, enhancing
    negatives = np.arange(5000, 9000)
    centres = sample_balanced_centres(pools, negatives, 10, 6, rng)
    assert centres.size == 16
    counts = [np.isin(centres, pool).sum() for pool in pools] + [np.isin(centres, negatives).sum()]
    assert counts == [4, 3, 3, 6]  # the first n_pos % 3 labels give one more; 3 voxels, drawn 4 times
    assert not np.array_equal(centres, np.sort(centres)), "shuffled"
    # No tumour: everything from the background; no background: everything from the tumour.
    assert np.isin(sample_balanced_centres([], negatives, 4, 2, rng), negatives).all()
    only = sample_balanced_centres(pools[1:], [], 4, 2, rng)
    assert only.size == 6 and [np.isin(only, pool).sum() for pool in pools[1:]] == [3, 3]


def test_shuffled_sequence_interleaves_the_same_batches_reproducibly():
    cases = [_cached("A"), _cached("B"), _cached("C")]
    ordered = PatchSequence(cases, batch_size=2, n_pos=3, n_neg=3, seed=5)
    shuffled = PatchSequence(cases, batch_size=2, n_pos=3, n_neg=3, seed=5, shuffle=True)
    again = PatchSequence(cases, batch_size=2, n_pos=3, n_neg=3, seed=5, shuffle=True)
    key = lambda info: (info.patient, info.iteration)  # noqa: E731
    infos = shuffled.epoch_infos()
    assert sorted(map(key, infos)) == list(map(key, ordered.epoch_infos()))
    assert [i.patient for i in infos] != sorted(i.patient for i in infos), "patients interleave"
    assert list(map(key, again.epoch_infos())) == list(map(key, infos))
    position = list(map(key, ordered.epoch_infos())).index(key(infos[0]))
    np.testing.assert_array_equal(shuffled[0][0], ordered[position][0])


def test_balanced_sequence_draws_background_from_the_brain_and_labels_equally():
    image, label = _coordinate_case()
    background = np.full(4, -7.0, np.float32)
    image[:, :, :10] = background  # a slab outside the brain: every modality at its raw-zero value
    label[:, :, :10] = 0
    flat = label.reshape(-1)
    case = CachedCase("A", image, label, np.flatnonzero(flat > 0), np.flatnonzero(flat == 0),
                      background, (0, 0, 0))
    sequence = PatchSequence([case], batch_size=2, n_pos=30, n_neg=30, seed=1, sampling="balanced")
    centres = np.concatenate([c for _, c in sequence._batches])
    labels = label[tuple(centres.T)]
    assert [int(np.sum(labels == value)) for value in (0, 1, 2, 4)] == [30, 10, 10, 10]
    assert (centres[:, 2] >= 10).all(), "no background centre outside the brain"
    with pytest.raises(ValueError, match="unknown sampling"):
        PatchSequence([case], sampling="uniform")


def test_flipped_patches_keep_their_labels():
    case = _cached()
    plain = PatchSequence([case], batch_size=4, n_pos=4, n_neg=4, seed=3)
    flipped = PatchSequence([case], batch_size=4, n_pos=4, n_neg=4, seed=3, augment="flip")
    changed = 0
    for index in range(len(plain)):
        x, (_, lab) = flipped[index]
        changed += int(not np.array_equal(x, plain[index][0]))
        z, y, xx = [x[:, 13:25, 13:25, 13:25, i].astype(int) for i in range(3)]
        np.testing.assert_array_equal(case.label[z, y, xx], lab.argmax(-1))
    assert changed >= 1
    np.testing.assert_array_equal(flipped[0][0], PatchSequence(
        [case], batch_size=4, n_pos=4, n_neg=4, seed=3, augment="flip")[0][0])
