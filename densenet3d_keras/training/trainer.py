"""Training: resolved configuration in, checkpoints and the training log out."""
import json
import os
import sys

from callbacks.checkpoint import EpochCheckpoint
from callbacks.validation import Validation
from densenet3d_keras.models.checkpoints import (find_checkpoint,
                                                 read_checkpoint_info,
                                                 read_optimizer_weights)
from callbacks.training_log import TrainingLog, log_path_for_device
from densenet3d_keras.core import compat
from densenet3d_keras.core.compat import keras
from densenet3d_keras.models.builder import build_model
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


def load_for_training(config, log=print, checkpoint=None):
    """Build the model, or load it from ``--load-path``.

    Args:
        config: the resolved configuration.
        log: callable taking a line.
        checkpoint: the checkpoint file ``--load-path`` resolves to, if already known
            (:class:`densenet3d_keras.training.run_folder.RunFolder` finds it for ``-c true``).

    Returns:
        (compiled model, number of epochs already completed).

    Raises:
        ValueError: the checkpoint holds another architecture than ``--model-name`` (by its
            recorded name, or with ``-c true`` by its weights' names and shapes).
    """
    compat.set_precision(config.precision)
    if not config.load_path:
        model = build_model(config.model_name, config.patch_size, padding=config.padding)
        return compile_model(model, config.lr), 0
    path = checkpoint or find_checkpoint(config.load_path, log)
    info = read_checkpoint_info(path)
    check_recorded_architecture(path, info, config.model_name)
    model = build_model(config.model_name, config.patch_size, padding=config.padding)
    if config.continue_training:
        # Resuming trains the architecture stored in the file: make sure it is -mn's, also
        # for files that do not record a model name.
        check_weights_fit(model, path, config.model_name)
        if compat.graph_mode() and _saved_by_eager_engine(path):
            return _loaded_into_graph_mode(path, config, info, model, log)
        loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
        if (info["padding"] != config.padding or compat.precision_policy() != "float32"
                or compat.precision_policy(loaded) != "float32"
                or not _optimizer_state_loaded(loaded, path)):
            loaded = _rebuilt_with(loaded, config, path, model)
        epoch = info["epoch"] or 0
        log("resumed from %s after epoch %d" % (path, epoch))
        return loaded, epoch
    model.load_weights(path)
    log("initialised weights from %s" % path)
    return compile_model(model, config.lr), 0


def _saved_optimizer_config(path):
    """The optimizer's Keras configuration recorded in a checkpoint (``{}`` if none)."""
    import h5py

    with h5py.File(path, "r") as handle:
        text = handle.attrs.get("training_config")
    if text is None:
        return {}
    text = text.decode("utf-8") if isinstance(text, bytes) else text
    return json.loads(text).get("optimizer_config", {}).get("config", {})


def _saved_by_eager_engine(path):
    """Whether a checkpoint holds the new Keras optimizer of TensorFlow 2 eager (graph mode
    cannot deserialise it: it needs eager execution)."""
    return _saved_optimizer_config(path).get("is_legacy_optimizer") is False


def _loaded_into_graph_mode(path, config, info, model, log):
    """Resume an eager-mode checkpoint in graph mode: its weights, and its Adam configuration
    and state moved into the graph-capable optimizer. Returns (model, epoch)."""
    loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)
    model.set_weights(loaded.get_weights())
    saved = _saved_optimizer_config(path)
    adam = compat.adam(float(saved.get("learning_rate", config.lr)))
    for key in ("beta_1", "beta_2", "epsilon", "amsgrad"):
        if key in saved:
            setattr(adam, key, saved[key])
    optimizer = compat.moved_optimizer(adam, model.trainable_variables, read_optimizer_weights(path))
    compile_model(model, optimizer=optimizer)
    epoch = info["epoch"] or 0
    log("resumed from %s after epoch %d (saved in eager mode)" % (path, epoch))
    return model, epoch


def _optimizer_state_loaded(model, path):
    """Whether Keras put the checkpoint's optimizer state back (it cannot when the other engine
    saved it: eager and graph-mode Adam store their slots in different orders)."""
    values = read_optimizer_weights(path)
    if not values:
        return True
    return int(values[0]) == compat.optimizer_iterations(model.optimizer)


def _rebuilt_with(loaded, config, path, model):
    """Move weights and optimizer state (read from ``path``) of a loaded model into ``model``
    of another padding or precision, or whose optimizer state the other engine saved."""
    model.set_weights(loaded.get_weights())
    optimizer = compat.moved_optimizer(loaded.optimizer, model.trainable_variables,
                                       read_optimizer_weights(path))
    compile_model(model, optimizer=optimizer)
    return model


def apply_gpu_choice(config):
    """Make ``-gpu`` (``config.gpu``) the visible CUDA devices; before TensorFlow looks."""
    if config.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(config.gpu)


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
        ``initial_epoch`` and ``cases`` (ids of this worker's patients). On an Ascend NPU the
        model's session is closed when this returns.
    """
    if stream == "stdout":
        stream = sys.stdout

    def log(line):
        if stream is not None:
            stream.write(line + "\n")
            stream.flush()

    apply_gpu_choice(config)
    if config.tensorboard:
        compat.tensorboard_callback(config.tensorboard)  # a missing package stops the run here
    runtime = select_runtime(config.strategy, config.precision_mode, config.loss_scale)
    # Checks the output folders, and for -c true finds the checkpoint, before anything is written.
    folder = RunFolder(config, runtime.is_chief, log)
    with folder:  # the lock of the save folder, from before the first write to the end
        return _train_in(config, runtime, folder, stream, log)


def _train_in(config, runtime, folder, stream, log):
    validation = select_validation_cases(config) if config.val_list else []
    all_cases = select_cases(config, [case.case_id for case in validation], log)
    cases, dropped = runtime.shard(all_cases)
    log("%d training cases from %s, %d for this worker" % (len(all_cases), config.root_path, len(cases)))
    prepared = prepare_cases(cases, config.cache_dir, config.patch_size, log)
    keras.backend.clear_session()
    header = runtime.describe(config.batch_size) + folder.notes
    header.append("patients of worker %d: %s" % (runtime.worker.index, ", ".join(c.case_id for c in cases)))
    if validation:
        header.append("validation cases, after every %d epoch(s) and the last: %s"
                      % (config.val_every, ", ".join(c.case_id for c in validation)))
    if dropped:
        header.append("patients left out so that every worker has %d: %s"
                      % (len(cases), ", ".join(c.case_id for c in dropped)))
    learning_rate = None
    if config.scale_lr:
        learning_rate = scaled_learning_rate(config.lr, runtime.worker.count, True)
        header.append("learning rate %g x %d workers = %g (--scale-lr)"
                      % (config.lr, runtime.worker.count, learning_rate))
    with runtime:
        with runtime.scope():
            model, initial_epoch = load_for_training(config, log, folder.checkpoint)
            model = runtime.prepare_model(model, learning_rate)
        # Built outside the strategy scope: a plain copy of the network for whole volumes.
        scorer = CaseScorer(validation, config, log) if validation else None
        result = _fit(config, model, initial_epoch, prepared, runtime, header, stream, log,
                      folder.previous, scorer)
    result["cases"] = [case.case_id for case in cases]
    return result


def _fit(config, model, initial_epoch, prepared, runtime, header, stream, log, previous=(),
         scorer=None):
    if initial_epoch >= config.num_epochs:
        log("nothing to do: the checkpoint has completed %d of %d epochs"
            % (initial_epoch, config.num_epochs))
        return {"model": model, "log_path": None, "checkpoints": [], "epoch_losses": [],
                "initial_epoch": initial_epoch, "validation": []}
    sequence = PatchSequence(prepared, batch_size=config.batch_size, n_pos=config.n_pos,
                             n_neg=config.n_neg, seed=config.seed, epoch=initial_epoch,
                             patch_size=config.patch_size, output_size=config.output_size,
                             max_batches_per_patient=config.max_batches_per_patient,
                             sampling=config.sampling, shuffle=config.shuffle, augment=config.augment)
    if runtime.is_chief:
        save_config(config, os.path.join(config.save_path, "config.json"))
    log_path = log_path_for_device(config.log_dir, runtime.log_id)
    header = [describe(config)] + header + ["tensorflow %s, keras %s, %d batches per epoch"
                                            % (compat.tf.__version__, keras.__version__, len(sequence))]
    training_log = TrainingLog(sequence, log_path, stream=stream, header=header)
    callbacks = runtime.callbacks(sequence) + [training_log]
    callbacks += epoch_callbacks(config, runtime, training_log, scorer, previous)
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
