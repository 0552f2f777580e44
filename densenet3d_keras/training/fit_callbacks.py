"""The Keras callbacks of a training run, in the order they must run at an epoch's end.

1. :class:`callbacks.training_log.TrainingLog`: the ModelZoo log lines; puts the epoch's mean
   loss and accuracies into the epoch's logs.
2. :class:`callbacks.monitors.EpochLearningRate`: the learning rate of the epoch (``lr``);
   with ``--lr-schedule poly``, :class:`callbacks.monitors.PolyLearningRate` sets it before
   every batch.
3. :class:`callbacks.validation.Validation` (``--val-list``): validation Dice into the logs
   and a line into the log.
4. :class:`callbacks.monitors.PlateauLearningRate` (``--reduce-lr-on-plateau``) and
   :class:`callbacks.monitors.ValidationEarlyStopping` (``--early-stopping``), before the
   checkpoint, so that a checkpoint holds the rate the next epoch trains with.
5. :class:`callbacks.checkpoint.EpochCheckpoint`: the epoch's checkpoint and, with
   validation, ``<model>_best.h5``.
6. On the chief: ``history.csv``, ``learning_curves.png`` and (``--tensorboard``) TensorBoard.
"""
import os

from callbacks.checkpoint import EpochCheckpoint
from callbacks.history import CURVES, HISTORY, HistoryCSV, LearningCurves, reconcile_history
from callbacks.monitors import (EpochLearningRate, PlateauLearningRate, PolyLearningRate,
                               ValidationEarlyStopping)
from callbacks.validation import MONITOR, Validation
from densenet3d_keras.core import compat
from densenet3d_keras.models.checkpoints import checkpoint_epoch, read_checkpoint_record
from densenet3d_keras.runtime.cluster import scaled_learning_rate


def epoch_callbacks(config, runtime, training_log, scorer=None, previous=()):
    """The callbacks after ``training_log`` (see the module docstring).

    Args:
        config: the resolved configuration.
        runtime: the run's :class:`densenet3d_keras.runtime.base.Runtime`.
        training_log: the run's :class:`callbacks.training_log.TrainingLog`.
        scorer: ``score_cases`` for :class:`callbacks.validation.Validation`, or ``None``.
        previous: the run's earlier checkpoints in the save folder (a resumed run): the
            history is appended to and the best checkpoint so far is kept.

    Returns:
        list of Keras callbacks.
    """
    chief = runtime.is_chief
    result = [EpochLearningRate()]
    if config.lr_schedule == "poly":
        base = scaled_learning_rate(config.lr, runtime.worker.count, config.scale_lr)
        result.insert(0, PolyLearningRate(base, len(training_log.sequence), config.num_epochs))
    if scorer is not None:
        result.append(Validation(scorer, config.val_every, config.num_epochs, training_log.write))
        if config.reduce_lr_on_plateau:
            factor, patience = config.reduce_lr_on_plateau
            result.append(PlateauLearningRate(factor, patience, training_log.write))
        if config.early_stopping:
            result.append(ValidationEarlyStopping(config.early_stopping, training_log.write))
    checkpoint_dir = runtime.checkpoint_dir(config.save_path)
    if checkpoint_dir is not None:
        result.append(EpochCheckpoint(checkpoint_dir, config.model_name, config.padding,
                                      keep=config.keep if chief else 1,
                                      log=training_log.write if chief else None,
                                      previous=previous if chief else (),
                                      monitor=MONITOR if scorer is not None else None))
    if chief:
        history = os.path.join(config.save_path, HISTORY)
        if previous:
            _recover_history(history, previous, training_log.write)
        result.append(HistoryCSV(history, append=bool(previous)))
        result.append(LearningCurves(history, os.path.join(config.save_path, CURVES),
                                     "%s, %s" % (config.model_name, config.save_path)))
        if config.tensorboard:
            result.append(compat.tensorboard_callback(config.tensorboard))
    return result


def _recover_history(history, previous, log):
    """:func:`callbacks.history.reconcile_history` with the rows of the run's checkpoints."""
    recorded = {}
    for path in previous:
        row = read_checkpoint_record(path)["history"]
        if row is not None:
            recorded[checkpoint_epoch(path)] = row
    added = reconcile_history(history, recorded, max(checkpoint_epoch(path) for path in previous))
    if added:
        log("%s: restored the row of epoch(s) %s from their checkpoints"
            % (history, ", ".join(str(epoch) for epoch in added)))
