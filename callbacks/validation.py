"""Validation during training: whole-volume Dice of held-out cases every few epochs.

:class:`Validation` calls a scoring function (see
:mod:`densenet3d_keras.training.validation`, which segments each validation case with the
fully convolutional network) after every ``every``-th epoch and after the last, writes one
line to the training log after the epoch's lines::

    validation epoch 3: dice wt 0.9321, tc 0.8123, et 0.7712, mean 0.8385 (2 cases, 4.1 s)

and puts the mean Dice per region and their mean into the epoch's logs (``val_dice_wt``,
``val_dice_tc``, ``val_dice_et``, ``val_dice_mean``) for the callbacks after it: the best
checkpoint, ``history.csv``, TensorBoard, the learning-rate schedule and early stopping. On an
epoch without validation the keys hold NaN, so ``history.csv`` keeps the same columns.
"""
import math
import time

import numpy as np

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.labels import REGIONS

#: Epoch-log keys of the validation Dice, per region and their mean.
VAL_KEYS = tuple("val_dice_%s" % region for region in REGIONS) + ("val_dice_mean",)
#: The key that ranks epochs (best checkpoint, plateau, early stopping); higher is better.
MONITOR = "val_dice_mean"


def format_validation_line(epoch, dice, mean, n_cases, seconds):
    """The training-log line of one validation (see the module docstring)."""
    regions = ", ".join("%s %.4f" % (region, dice[region]) for region in REGIONS)
    return ("validation epoch %d: dice %s, mean %.4f (%d case%s, %.1f s)"
            % (epoch, regions, mean, n_cases, "" if n_cases == 1 else "s", seconds))


def is_validated(logs, key=MONITOR):
    """Whether an epoch's logs hold a validation score (a finite value under ``key``)."""
    value = (logs or {}).get(key)
    return value is not None and math.isfinite(float(value))


class Validation(keras.callbacks.Callback):
    """Score the model on validation cases after every ``every``-th epoch and the last.

    Args:
        score_cases: callable taking the Keras model and returning one dict per validation
            case with the Dice of each region (``{"wt": .., "tc": .., "et": ..}``).
        every: validate after epochs ``every``, ``2 every``, ... (1-based).
        num_epochs: the run's last epoch, always validated (``None``: no such rule).
        log: callable taking the line (e.g. ``TrainingLog.write``), or ``None``.

    Attributes:
        history: ``(epoch, {region: Dice}, mean)`` of every validation of this process.
    """

    def __init__(self, score_cases, every=1, num_epochs=None, log=None):
        super(Validation, self).__init__()
        if every < 1:
            raise ValueError("every must be >= 1, got %r" % (every,))
        self.score_cases = score_cases
        self.every = int(every)
        self.num_epochs = num_epochs
        self.log = log
        self.history = []

    def due(self, epoch):
        """Whether the 0-based ``epoch`` ends with a validation."""
        return (epoch + 1) % self.every == 0 or (self.num_epochs is not None and epoch + 1 >= self.num_epochs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if not self.due(epoch):
            logs.update((key, float("nan")) for key in VAL_KEYS)
            return
        started = time.time()
        rows = self.score_cases(self.model)
        if not rows:
            raise ValueError("validation scored no case")
        dice = dict((region, float(np.mean([row[region] for row in rows]))) for region in REGIONS)
        mean = float(np.mean([dice[region] for region in REGIONS]))
        for region in REGIONS:
            logs["val_dice_%s" % region] = dice[region]
        logs[MONITOR] = mean
        self.history.append((epoch + 1, dice, mean))
        if self.log is not None:
            self.log(format_validation_line(epoch + 1, dice, mean, len(rows), time.time() - started))
