"""The training ``keras.utils.Sequence``: patch sampling, patient after patient or shuffled."""
from collections import namedtuple

import numpy as np

from densenet3d_keras.core.brain import brain_mask
from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.geometry import OUTPUT_SIZE, PATCH_SIZE
from generators.augment import augment_batch, parse_augment
from generators.sampling import (SAMPLING_MODES, batch_offsets, class_pools, extract_patch,
                                 sample_balanced_centres, sample_centres, targets)

#: Third entry of the seed of an epoch's batch order (patients use their index there).
_ORDER_STREAM = 1 << 30
#: Fourth entry of the seed of a batch's augmentation.
_AUGMENT_STREAM = 1

#: What the training log prints about one batch. ``patient`` and ``iteration`` are 1-based.
BatchInfo = namedtuple("BatchInfo", ["epoch", "patient", "case_id", "iteration", "iterations",
                                     "positive_fraction"])


class PatchSequence(keras.utils.Sequence):
    """Batches of 38^3 patches and their 12^3 targets, one patient's batches after another.

    Each epoch draws, per patient, ``n_pos`` tumour and ``n_neg`` brain-background centres
    (:func:`generators.sampling.sample_centres`, or with ``sampling="balanced"``
    :func:`generators.sampling.sample_balanced_centres`) from a generator seeded by
    ``(seed, epoch, patient index)``, so an epoch's batches are reproducible and a resumed run
    continues with the batches it would have seen. Every batch holds patches of one patient;
    with ``shuffle`` the epoch's batches of all patients come in a random order (seeded by
    ``(seed, epoch)``) instead of patient after patient. ``augment`` mirrors and jitters each
    batch (:mod:`generators.augment`; seeded by ``(seed, epoch, batch index)``). Call
    ``on_epoch_end`` (Keras does) to move to the next epoch's draw.

    Args:
        cases: list of :class:`~generators.cache.CachedCase`.
        batch_size: patches per batch.
        n_pos: tumour centres per patient and epoch.
        n_neg: background centres per patient and epoch.
        seed: base random seed.
        epoch: 0-based epoch the first plan is for (the resumed epoch).
        patch_size: input patch size.
        output_size: target block size at the patch centre.
        max_batches_per_patient: cut each patient to its first batches (performance runs).
        sampling: ``"reference"`` or ``"balanced"`` (:mod:`generators.sampling`).
        shuffle: interleave the patients' batches in a random order.
        augment: augmentation kinds (:func:`generators.augment.parse_augment`).

    ``__getitem__`` returns ``(x, [wt_onehot, label_onehot])``: ``x`` float32
    ``(batch, 38, 38, 38, 4)``, targets ``(batch, 12, 12, 12, 2)`` and ``(..., 5)``.
    """

    def __init__(self, cases, batch_size=2, n_pos=200, n_neg=200, seed=0, epoch=0,
                 patch_size=PATCH_SIZE, output_size=OUTPUT_SIZE, max_batches_per_patient=None,
                 sampling="reference", shuffle=False, augment=()):
        super(PatchSequence, self).__init__()
        if not cases:
            raise ValueError("PatchSequence needs at least one case")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got %r" % (batch_size,))
        if n_pos < 0 or n_neg < 0 or n_pos + n_neg < batch_size:
            raise ValueError("n_pos + n_neg (%d + %d) must be at least the batch size %d"
                             % (n_pos, n_neg, batch_size))
        self.cases = list(cases)
        self.batch_size = int(batch_size)
        self.n_pos = int(n_pos)
        self.n_neg = int(n_neg)
        self.seed = int(seed)
        self.patch_size = int(patch_size)
        self.output_size = int(output_size)
        self.max_batches_per_patient = max_batches_per_patient
        if sampling not in SAMPLING_MODES:
            raise ValueError("unknown sampling %r (choose from %s)" % (sampling, ", ".join(SAMPLING_MODES)))
        self.sampling = sampling
        self.shuffle = bool(shuffle)
        self.augment = parse_augment(augment)
        self.epoch = int(epoch)
        self._pools = {}
        self._batches = []
        self._infos = []
        self._plan()

    def _plan(self):
        batches = []
        infos = []
        for index, case in enumerate(self.cases):
            rng = np.random.default_rng([self.seed, self.epoch, index])
            centres = self._centres(index, case, rng)
            starts = batch_offsets(centres.size, self.batch_size)
            if self.max_batches_per_patient:
                starts = starts[: self.max_batches_per_patient]
            for iteration, start in enumerate(starts, 1):
                chosen = np.stack(np.unravel_index(centres[start:start + self.batch_size],
                                                   case.shape), axis=1)
                positive = 0
                for centre in chosen:
                    _, y = extract_patch(case.image, case.label, centre, self.patch_size, self.output_size)
                    positive += int(np.count_nonzero(y))
                fraction = positive / float(len(chosen) * self.output_size ** 3)
                batches.append((index, chosen))
                infos.append(BatchInfo(self.epoch + 1, index + 1, case.case_id, iteration,
                                       len(starts), fraction))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, _ORDER_STREAM]).permutation(len(batches))
            batches = [batches[i] for i in order]
            infos = [infos[i] for i in order]
        self._batches = batches
        self._infos = infos

    def _centres(self, index, case, rng):
        if self.sampling == "reference":
            return sample_centres(case.positives, case.negatives, self.n_pos, self.n_neg, rng)
        if index not in self._pools:
            label = np.asarray(case.label)
            brain = brain_mask(case.image, case.background).reshape(-1)
            self._pools[index] = (class_pools(label), np.flatnonzero(brain & (label.reshape(-1) == 0)))
        pools, negatives = self._pools[index]
        return sample_balanced_centres(pools, negatives, self.n_pos, self.n_neg, rng)

    def __len__(self):
        return len(self._batches)

    def __getitem__(self, index):
        if index < 0 or index >= len(self._batches):
            raise IndexError("batch %d out of range (%d batches)" % (index, len(self._batches)))
        patient, centres = self._batches[index]
        case = self.cases[patient]
        xs = []
        ys = []
        for centre in centres:
            x, y = extract_patch(case.image, case.label, centre, self.patch_size, self.output_size)
            xs.append(x)
            ys.append(y)
        x = np.ascontiguousarray(np.stack(xs), dtype=np.float32)
        y = np.stack(ys)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index, _AUGMENT_STREAM])
            x, y = augment_batch(x, y, case.background, self.augment, rng)
        return x, targets(y)

    def batch_info(self, index):
        """:class:`BatchInfo` of batch ``index`` in the current epoch."""
        return self._infos[index]

    def epoch_infos(self):
        """All :class:`BatchInfo` of the current epoch, in batch order."""
        return list(self._infos)

    def set_epoch(self, epoch):
        """Re-plan for a 0-based ``epoch`` (used when resuming)."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._plan()

    def on_epoch_end(self):
        self.epoch += 1
        self._plan()
