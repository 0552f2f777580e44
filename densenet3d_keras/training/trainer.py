"""Training: a resolved configuration in, checkpoints and the training log out.

:class:`Trainer` runs one training run in steps that a subclass may override, as nnU-Net's
trainers are subclassed: :meth:`~Trainer.build_model` (the network),
:meth:`~Trainer.compile` (loss, metrics and optimizer), :meth:`~Trainer.data` (the batches)
and :meth:`~Trainer.callbacks` (what runs around the epochs). The run folder
(:class:`~densenet3d_keras.training.run_folder.RunFolder`) and the checkpoint format
(:mod:`densenet3d_keras.models.checkpoints`) stay in their modules. :func:`train` is
``Trainer(config).train()``.
"""
import os
import sys

from callbacks.checkpoint import EpochCheckpoint
from callbacks.training_log import TrainingLog, log_path_for_device
from callbacks.validation import Validation
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras
from densenet3d_keras.models.builder import build_model
from densenet3d_keras.models.checkpoints import (RUN_CONFIG, find_checkpoint, read_checkpoint_info,
                                                 read_optimizer_config, read_optimizer_weights)
from densenet3d_keras.models.loading import check_recorded_architecture, check_weights_fit
from densenet3d_keras.models.objectives import CUSTOM_OBJECTS, compile_model
from densenet3d_keras.runtime.cluster import scaled_learning_rate
from densenet3d_keras.runtime.select import select_runtime
from densenet3d_keras.training.config import describe, save_config
from densenet3d_keras.training.data import prepare_cases, select_cases
from densenet3d_keras.training.fit_callbacks import epoch_callbacks
from densenet3d_keras.training.run_folder import RunFolder
from densenet3d_keras.training.validation import CaseScorer, select_validation_cases
from generators.sequence import PatchSequence


def _line_writer(stream):
    """A ``log(line)`` writing to ``stream`` (``None``: nowhere)."""
    def log(line):
        if stream is not None:
            stream.write(line + "\n")
            stream.flush()
    return log


class Trainer(object):
    """One training run of a resolved configuration (:mod:`densenet3d_keras.training.config`).

    Override :meth:`build_model`, :meth:`compile`, :meth:`data` or :meth:`callbacks` to change
    the network, the objective and optimizer, the batches or the callbacks; :meth:`train`
    calls them in that order (loading and resuming a checkpoint go through the first two).

    Args:
        config: the resolved :class:`~densenet3d_keras.training.config.TrainConfig`; ``-gpu``
            is applied by the caller before TensorFlow starts
            (:func:`densenet3d_keras.runtime.devices.apply_gpu_choice`).
        stream: where progress and log lines go besides the log file: ``"stdout"`` (the
            current ``sys.stdout``), a file object, or ``None``.

    Attributes:
        log: callable taking one line (to ``stream``).
        runtime: the run's :class:`~densenet3d_keras.runtime.base.Runtime` (in :meth:`train`).
        folder: the run's :class:`~densenet3d_keras.training.run_folder.RunFolder` (in :meth:`train`).
    """

    def __init__(self, config, stream="stdout"):
        self.config = config
        self.stream = sys.stdout if stream == "stdout" else stream
        self.log = _line_writer(self.stream)
        self.runtime = None
        self.folder = None

    # The steps.

    def build_model(self):
        """The network to train (uncompiled): ``build_model`` of the configuration's model
        name, patch size and padding."""
        return build_model(self.config.model_name, self.config.patch_size, padding=self.config.padding)

    def compile(self, model, optimizer=None):
        """Compile ``model`` with the loss, metrics and optimizer (the reference's: both heads'
        softmax cross-entropy, accuracy in %, Adam at ``--lr``), or with ``optimizer`` when
        resuming moved one's state. Returns the model."""
        return compile_model(model, self.config.lr, optimizer=optimizer)

    def data(self, prepared, initial_epoch):
        """The Keras ``Sequence`` of training batches over the ``prepared`` cases, from
        ``initial_epoch`` on (:class:`generators.sequence.PatchSequence`)."""
        config = self.config
        return PatchSequence(prepared, batch_size=config.batch_size, n_pos=config.n_pos,
                             n_neg=config.n_neg, seed=config.seed, epoch=initial_epoch,
                             patch_size=config.patch_size, output_size=config.output_size,
                             max_batches_per_patient=config.max_batches_per_patient,
                             sampling=config.sampling, shuffle=config.shuffle, augment=config.augment)

    def callbacks(self, sequence, training_log, scorer=None):
        """The Keras callbacks, in the order they run: the runtime's, the training log, then
        :func:`~densenet3d_keras.training.fit_callbacks.epoch_callbacks` (validation with
        ``scorer``, learning-rate schedules, checkpoints, history)."""
        return (self.runtime.callbacks(sequence) + [training_log]
                + epoch_callbacks(self.config, self.runtime, training_log, scorer, self.folder.previous))

    # Loading.

    def load(self, checkpoint=None):
        """The compiled model to train and the epochs it has completed: built, or loaded from
        ``--load-path`` (``checkpoint``: the file it resolves to, if already known).

        Raises:
            ValueError: the checkpoint holds another architecture than ``--model-name`` (by its
                recorded name, or with ``-c true`` by its weights' names and shapes).
        """
        config = self.config
        compat.set_precision(config.precision)
        if not config.load_path:
            return self.compile(self.build_model()), 0
        path = checkpoint or find_checkpoint(config.load_path, self.log)
        info = read_checkpoint_info(path)
        check_recorded_architecture(path, info, config.model_name)
        model = self.build_model()
        if not config.continue_training:
            model.load_weights(path)
            self.log("initialised weights from %s" % path)
            return self.compile(model), 0
        # Resuming trains the architecture stored in the file: make sure it is -mn's, also for
        # files that do not record a model name.
        check_weights_fit(model, path, config.model_name)
        if compat.graph_mode() and read_optimizer_config(path).get("is_legacy_optimizer") is False:
            model = self._moved_into_graph_mode(path, model)
            self.log("resumed from %s after epoch %d (saved in eager mode)" % (path, info["epoch"] or 0))
            return model, info["epoch"] or 0
        loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
        if (info["padding"] != config.padding or compat.precision_policy() != "float32"
                or compat.precision_policy(loaded) != "float32"
                or not _optimizer_state_loaded(loaded, path)):
            loaded = self._rebuilt_with(loaded, path, model)
        self.log("resumed from %s after epoch %d" % (path, info["epoch"] or 0))
        return loaded, info["epoch"] or 0

    def _moved_into_graph_mode(self, path, model):
        """An eager-mode checkpoint resumed in graph mode (which cannot deserialise TensorFlow 2's
        new Keras optimizer): its weights, and its Adam configuration and state moved into the
        graph-capable optimizer."""
        loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
        model.set_weights(loaded.get_weights())
        saved = read_optimizer_config(path)
        adam = compat.adam(float(saved.get("learning_rate", self.config.lr)))
        for key in ("beta_1", "beta_2", "epsilon", "amsgrad"):
            if key in saved:
                setattr(adam, key, saved[key])
        optimizer = compat.moved_optimizer(adam, model.trainable_variables, read_optimizer_weights(path))
        return self.compile(model, optimizer=optimizer)

    def _rebuilt_with(self, loaded, path, model):
        """Move weights and optimizer state (read from ``path``) of a loaded model into ``model``
        of another padding or precision, or whose optimizer state the other engine saved."""
        model.set_weights(loaded.get_weights())
        optimizer = compat.moved_optimizer(loaded.optimizer, model.trainable_variables,
                                           read_optimizer_weights(path))
        return self.compile(model, optimizer=optimizer)

    # The run.

    def train(self):
        """Train (see :func:`train`). Returns its result dict."""
        config = self.config
        if config.tensorboard:
            compat.tensorboard_callback(config.tensorboard)  # a missing package stops the run here
        self.runtime = select_runtime(config.strategy, config.precision_mode, config.loss_scale)
        # Checks the output folders, and for -c true finds the checkpoint, before anything is written.
        self.folder = RunFolder(config, self.runtime.is_chief, self.log)
        with self.folder:  # the lock of the save folder, from before the first write to the end
            return self._train_in_folder()

    def _train_in_folder(self):
        config, runtime = self.config, self.runtime
        validation = select_validation_cases(config) if config.val_list else []
        all_cases = select_cases(config, [case.case_id for case in validation], self.log)
        cases, dropped = runtime.shard(all_cases)
        self.log("%d training cases from %s, %d for this worker"
                 % (len(all_cases), config.root_path, len(cases)))
        prepared = prepare_cases(cases, config.cache_dir, config.patch_size, self.log)
        keras.backend.clear_session()
        header = self._header(cases, dropped, validation)
        learning_rate = None
        if config.scale_lr:
            learning_rate = scaled_learning_rate(config.lr, runtime.worker.count, True)
            header.append("learning rate %g x %d workers = %g (--scale-lr)"
                          % (config.lr, runtime.worker.count, learning_rate))
        with runtime:
            with runtime.scope():
                model, initial_epoch = self.load(self.folder.checkpoint)
                model = runtime.prepare_model(model, learning_rate)
            # Built outside the strategy scope: a plain copy of the network for whole volumes.
            scorer = CaseScorer(validation, config, self.log) if validation else None
            result = self._fit(model, initial_epoch, prepared, header, scorer)
        result["cases"] = [case.case_id for case in cases]
        return result

    def _header(self, cases, dropped, validation):
        """The training log's header lines about the runtime, the folder and the patients."""
        header = self.runtime.describe(self.config.batch_size) + self.folder.notes
        header.append("patients of worker %d: %s"
                      % (self.runtime.worker.index, ", ".join(c.case_id for c in cases)))
        if validation:
            header.append("validation cases, after every %d epoch(s) and the last: %s"
                          % (self.config.val_every, ", ".join(c.case_id for c in validation)))
        if dropped:
            header.append("patients left out so that every worker has %d: %s"
                          % (len(cases), ", ".join(c.case_id for c in dropped)))
        return header

    def _fit(self, model, initial_epoch, prepared, header, scorer=None):
        config, runtime = self.config, self.runtime
        if initial_epoch >= config.num_epochs:
            self.log("nothing to do: the checkpoint has completed %d of %d epochs"
                     % (initial_epoch, config.num_epochs))
            return {"model": model, "log_path": None, "checkpoints": [], "epoch_losses": [],
                    "initial_epoch": initial_epoch, "validation": []}
        sequence = self.data(prepared, initial_epoch)
        if runtime.is_chief:
            save_config(config, os.path.join(config.save_path, RUN_CONFIG))
        log_path = log_path_for_device(config.log_dir, runtime.log_id)
        header = [describe(config)] + header + ["tensorflow %s, keras %s, %d batches per epoch"
                                                % (compat.tf.__version__, keras.__version__, len(sequence))]
        training_log = TrainingLog(sequence, log_path, stream=self.stream, header=header)
        callbacks = self.callbacks(sequence, training_log, scorer)
        try:
            model.fit(epochs=config.num_epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0,
                      callbacks=callbacks, **runtime.fit_arguments(sequence, config.workers))
        finally:
            training_log.close()  # also when fit stops on an error (on_train_end is not called)
        saved = [path for c in callbacks if isinstance(c, EpochCheckpoint) for path in c.saved] \
            if runtime.is_chief else []
        validated = [entry for c in callbacks if isinstance(c, Validation) for entry in c.history]
        return {"model": model, "log_path": log_path, "checkpoints": saved,
                "epoch_losses": training_log.epoch_losses, "initial_epoch": initial_epoch,
                "validation": validated}


def _optimizer_state_loaded(model, path):
    """Whether Keras put the checkpoint's optimizer state back (it cannot when the other engine
    saved it: eager and graph-mode Adam store their slots in different orders)."""
    values = read_optimizer_weights(path)
    if not values:
        return True
    return int(values[0]) == compat.optimizer_iterations(model.optimizer)


def load_for_training(config, log=print, checkpoint=None):
    """The compiled model of a configuration and the epochs it has completed
    (:meth:`Trainer.load`).

    Args:
        config: the resolved configuration.
        log: callable taking a line.
        checkpoint: the checkpoint file ``--load-path`` resolves to, if already known.

    Returns:
        (compiled model, number of epochs already completed).

    Raises:
        ValueError: the checkpoint holds another architecture than ``--model-name``.
    """
    trainer = Trainer(config, stream=None)
    trainer.log = log
    return trainer.load(checkpoint)


def train(config, stream="stdout"):
    """Train according to a resolved configuration (see :mod:`densenet3d_keras.training.config`).

    In a data-parallel run (``TF_CONFIG``, several GPUs, or Ascend ``RANK_SIZE``) this process
    trains its share of the patients and only the chief writes checkpoints and the
    configuration (see :mod:`densenet3d_keras.runtime.strategy`).

    Args:
        config: the resolved configuration.
        stream: where progress and log lines go besides the log file: ``"stdout"`` (the
            current ``sys.stdout``), a file object, or ``None``.

    Returns:
        dict with ``model``, ``log_path``, ``checkpoints`` (paths written), ``epoch_losses``,
        ``initial_epoch``, ``validation`` and ``cases`` (ids of this worker's patients). On an
        Ascend NPU the model's session is closed when this returns.
    """
    return Trainer(config, stream).train()
