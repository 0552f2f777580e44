"""Callbacks that act on the validation score: learning-rate plateau, early stopping, epoch logs.

Keras's ``ReduceLROnPlateau`` and ``EarlyStopping`` count every epoch; here only epochs with a
validation (:func:`callbacks.validation.is_validated`) count, so with ``--val-every N`` the
patience is in validations. The learning rate is read and set through
:mod:`densenet3d_keras.core.compat`, which also reaches the optimizer of a loss-scaled or
graph-mode run.
"""
import math

from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras
from callbacks.validation import MONITOR, is_validated


class EpochLearningRate(keras.callbacks.Callback):
    """Put the learning rate the epoch trained with into its logs (``lr``), for
    ``history.csv``, TensorBoard and the learning curves."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            try:
                logs["lr"] = compat.get_learning_rate(self.model.optimizer)
            except (AttributeError, TypeError, ValueError):
                logs["lr"] = float("nan")  # an optimizer without a readable rate (NPU loss scaling)


class PlateauLearningRate(keras.callbacks.ReduceLROnPlateau):
    """Multiply the learning rate by ``factor`` when the validation score has not improved for
    ``patience`` validations (Keras's ``ReduceLROnPlateau``, counting validated epochs only).

    Args:
        factor: in (0, 1).
        patience: validations without improvement before a reduction.
        log: callable taking a line when the rate changes, or ``None``.
        min_lr: the rate is never set below this.
    """

    def __init__(self, factor=0.5, patience=2, log=None, min_lr=0.0):
        if not 0.0 < factor < 1.0:
            raise ValueError("the plateau factor must be in (0, 1), got %r" % (factor,))
        super(PlateauLearningRate, self).__init__(monitor=MONITOR, factor=factor, patience=patience,
                                                  mode="max", min_delta=0.0, min_lr=min_lr)
        self.log = log

    def on_epoch_end(self, epoch, logs=None):
        if not is_validated(logs, self.monitor):
            return
        current = float(logs[self.monitor])
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old = compat.get_learning_rate(self.model.optimizer)
        new = max(old * self.factor, self.min_lr)
        if old > new:
            compat.set_learning_rate(self.model.optimizer, new)
            if self.log is not None:
                self.log("learning rate %g -> %g after epoch %d: validation mean Dice has not "
                         "improved for %d validations" % (old, new, epoch + 1, self.wait))
        self.cooldown_counter = self.cooldown
        self.wait = 0


class ValidationEarlyStopping(keras.callbacks.EarlyStopping):
    """Stop training when the validation score has not improved for ``patience`` validations
    (Keras's ``EarlyStopping``, counting validated epochs only).

    Args:
        patience: validations without improvement before stopping.
        log: callable taking a line when training stops, or ``None``.
    """

    def __init__(self, patience, log=None):
        super(ValidationEarlyStopping, self).__init__(monitor=MONITOR, patience=patience, mode="max",
                                                      min_delta=0.0)
        self.log = log
        self.best_validated_epoch = None  # 1-based (Keras 2.11+ keeps its own 0-based best_epoch)

    def on_epoch_end(self, epoch, logs=None):
        if not is_validated(logs, self.monitor):
            return
        before = self.best
        super(ValidationEarlyStopping, self).on_epoch_end(epoch, logs)
        if self.best != before and math.isfinite(float(self.best)):
            self.best_validated_epoch = epoch + 1
        if self.model.stop_training and self.log is not None:
            self.log("early stopping after epoch %d: validation mean Dice has not improved for %d "
                     "validations (best %.4f after epoch %s)"
                     % (epoch + 1, self.wait, float(self.best), self.best_validated_epoch))


class PolyLearningRate(keras.callbacks.Callback):
    """Polynomial decay of the learning rate over the whole run, set before every batch:
    ``base * (1 - step / total) ** power`` (nnU-Net's schedule, power 0.9).

    The step counts batches from the start of the run (epoch ``e``, batch ``b``:
    ``e * steps_per_epoch + b``), so a resumed run continues the same curve.

    Args:
        base: the learning rate at step 0.
        steps_per_epoch: batches per epoch.
        epochs: the run's total epochs.
        power: the exponent.
    """

    def __init__(self, base, steps_per_epoch, epochs, power=0.9):
        super(PolyLearningRate, self).__init__()
        if base <= 0 or steps_per_epoch < 1 or epochs < 1:
            raise ValueError("poly learning rate needs a positive base rate, steps and epochs, got "
                             "%r, %r, %r" % (base, steps_per_epoch, epochs))
        self.base = float(base)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total = int(steps_per_epoch) * int(epochs)
        self.power = float(power)
        self._epoch = 0

    def rate(self, step):
        """The learning rate of batch ``step`` (0-based, counted over the run)."""
        return self.base * max(0.0, 1.0 - float(step) / self.total) ** self.power

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        compat.set_learning_rate(self.model.optimizer, self.rate(self._epoch * self.steps_per_epoch + batch))
