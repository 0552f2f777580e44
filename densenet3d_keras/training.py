"""Training: resolved configuration in, checkpoints and the training log out."""
import os
import sys
import time

from densenet3d_keras import compat
from densenet3d_keras.objectives import CUSTOM_OBJECTS
from densenet3d_keras.config import describe, save_config
from densenet3d_keras.models import build_model, resolve_model_name
from densenet3d_keras.objectives import compile_model
from densenet3d_keras.compat import keras

#: Synthetic dataset of ``--demo``: cases, shape, sampling and epochs sized for a 2-core CPU.
#: The demo trains with valid padding (same weights and inference logits, ~5x faster steps).
DEMO = {"n_cases": 5, "shape": (96, 96, 72), "n_pos": 16, "n_neg": 16, "num_epochs": 3,
        "seed": 7, "padding": "valid"}


def demo_root(cache_dir=None):
    """Folder of the demo dataset (inside the preprocessing cache)."""
    from generators.cache import default_cache_dir

    return os.path.join(cache_dir or default_cache_dir(), "demo_data")


def ensure_demo_dataset(root, log=print):
    """Write the synthetic demo dataset into ``root`` unless it is already there."""
    from generators.synthetic import write_dataset

    if os.path.isfile(os.path.join(root, "train.txt")):
        return root
    log("writing a synthetic BraTS-like demo dataset (%d cases) to %s" % (DEMO["n_cases"], root))
    write_dataset(root, n_cases=DEMO["n_cases"], shape=DEMO["shape"], seed=DEMO["seed"])
    return root


def apply_demo_defaults(config, given=()):
    """Fill a ``--demo`` configuration: its dataset and sizes, except options in ``given``.

    Args:
        config: the resolved configuration.
        given: configuration keys set on the command line
            (:func:`densenet3d_keras.config.given_options`).
    """
    config["root_path"] = config["root_path"] or demo_root(config["cache_dir"])
    for key in ("n_pos", "n_neg", "num_epochs", "padding"):
        if key not in given:
            config[key] = DEMO[key]
    return config


def select_cases(config):
    """The training cases of a configuration (list file, ``train.txt`` or all), N4 applied."""
    from generators.brats import discover_cases, resolve_case_list

    names = resolve_case_list(config["root_path"], config["train_list"])
    cases = discover_cases(config["root_path"], names, require_label=True)
    if config["n4correction"]:
        cases = [case.corrected() for case in cases]
    return cases


def prepare_cases(cases, cache_dir=None, patch_size=38, log=print):
    """Load every case through the preprocessing cache, reporting progress."""
    from generators.cache import load_cached

    prepared = []
    started = time.time()
    for index, case in enumerate(cases, 1):
        prepared.append(load_cached(case, cache_dir, minimum=patch_size))
        log("prepared case %d/%d: %s (%.1f s)" % (index, len(cases), case.case_id, time.time() - started))
    return prepared


def load_for_training(config, log=print, checkpoint=None):
    """Build the model, or load it from ``--load-path``.

    Args:
        config: the resolved configuration.
        log: callable taking a line.
        checkpoint: the checkpoint file ``--load-path`` resolves to, if already known
            (:class:`densenet3d_keras.runfolder.RunFolder` finds it for ``-c true``).

    Returns:
        (compiled model, number of epochs already completed).

    Raises:
        ValueError: the checkpoint holds another architecture than ``--model-name`` (by its
            recorded name, or with ``-c true`` by its weights' names and shapes).
    """
    from callbacks.checkpoint import find_checkpoint, read_checkpoint_info, weight_mismatch

    compat.set_precision(config.get("precision", "float32"))
    architecture = config["architecture"]
    if not config["load_path"]:
        model = build_model(config["model_name"], config["patch_size"], padding=config["padding"])
        return compile_model(model, config["lr"]), 0
    path = checkpoint or find_checkpoint(config["load_path"], log)
    info = read_checkpoint_info(path)
    if info["model"] is not None and resolve_model_name(info["model"])[0] != architecture:
        raise ValueError("checkpoint %s holds a %s model, not %s (-mn)"
                         % (path, info["model"], config["model_name"]))
    model = build_model(config["model_name"], config["patch_size"], padding=config["padding"])
    if config["continue_training"]:
        # Resuming trains the architecture stored in the file: make sure it is -mn's, also
        # for files that do not record a model name.
        mismatch = weight_mismatch(model, path)
        if mismatch:
            raise ValueError("checkpoint %s does not hold a %s model (-mn): %s"
                             % (path, config["model_name"], mismatch))
        loaded = keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS)
        if (info["padding"] != config["padding"] or compat.precision_policy() != "float32"
                or compat.precision_policy(loaded) != "float32"):
            loaded = _rebuilt_with(loaded, config, path, model)
        epoch = info["epoch"] or 0
        log("resumed from %s after epoch %d" % (path, epoch))
        return loaded, epoch
    model.load_weights(path)
    log("initialised weights from %s" % path)
    return compile_model(model, config["lr"]), 0


def _rebuilt_with(loaded, config, path, model=None):
    """Move weights and optimizer state (read from ``path``) of a loaded model into ``model``
    (built anew if ``None``) of another padding or precision."""
    from callbacks.checkpoint import read_optimizer_weights

    if model is None:
        model = build_model(config["model_name"], config["patch_size"], padding=config["padding"])
    model.set_weights(loaded.get_weights())
    optimizer = compat.moved_optimizer(loaded.optimizer, model.trainable_variables,
                                       read_optimizer_weights(path))
    compile_model(model, optimizer=optimizer)
    return model


def apply_gpu_choice(config):
    """Make ``-gpu`` (``config["gpu"]``) the visible CUDA devices; before TensorFlow looks."""
    if config.get("gpu") is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(config["gpu"])


def train(config, stream="stdout"):
    """Train according to a resolved configuration (see :mod:`densenet3d_keras.config`).

    In a data-parallel run (``TF_CONFIG``, several GPUs, or Ascend ``RANK_SIZE``) this process
    trains its share of the patients and only the chief writes checkpoints and the
    configuration (see :mod:`densenet3d_keras.distribute`).

    Args:
        config: the resolved configuration.
        stream: where progress and log lines go besides the log file: ``"stdout"`` (the
            current ``sys.stdout``), a file object, or ``None``.

    Returns:
        dict with ``model``, ``log_path``, ``checkpoints`` (paths written), ``epoch_losses``,
        ``initial_epoch`` and ``cases`` (ids of this worker's patients). On an Ascend NPU the
        model's session is closed when this returns.
    """
    from densenet3d_keras.distribute import select_runtime
    from densenet3d_keras.runfolder import RunFolder

    if stream == "stdout":
        stream = sys.stdout

    def log(line):
        if stream is not None:
            stream.write(line + "\n")
            stream.flush()

    apply_gpu_choice(config)
    runtime = select_runtime(config)
    # Checks the output folders, and for -c true finds the checkpoint, before anything is written.
    folder = RunFolder(config, runtime.is_chief, log)
    with folder:  # the lock of the save folder, from before the first write to the end
        return _train_in(config, runtime, folder, stream, log)


def _train_in(config, runtime, folder, stream, log):
    from densenet3d_keras.distribute import scaled_learning_rate

    all_cases = select_cases(config)
    cases, dropped = runtime.shard(all_cases)
    log("%d training cases from %s, %d for this worker" % (len(all_cases), config["root_path"], len(cases)))
    prepared = prepare_cases(cases, config["cache_dir"], config["patch_size"], log)
    keras.backend.clear_session()
    header = runtime.describe(config["batch_size"]) + folder.notes
    header.append("patients of worker %d: %s" % (runtime.worker.index, ", ".join(c.case_id for c in cases)))
    if dropped:
        header.append("patients left out so that every worker has %d: %s"
                      % (len(cases), ", ".join(c.case_id for c in dropped)))
    learning_rate = None
    if config.get("scale_lr"):
        learning_rate = scaled_learning_rate(config["lr"], runtime.worker.count, True)
        header.append("learning rate %g x %d workers = %g (--scale-lr)"
                      % (config["lr"], runtime.worker.count, learning_rate))
    with runtime:
        with runtime.scope():
            model, initial_epoch = load_for_training(config, log, folder.checkpoint)
            model = runtime.prepare_model(model, learning_rate)
        result = _fit(config, model, initial_epoch, prepared, runtime, header, stream, log,
                      folder.previous)
    result["cases"] = [case.case_id for case in cases]
    return result


def _fit(config, model, initial_epoch, prepared, runtime, header, stream, log, previous=()):
    from callbacks.checkpoint import EpochCheckpoint
    from callbacks.training_log import TrainingLog, log_path_for_device
    from generators.sequence import PatchSequence

    if initial_epoch >= config["num_epochs"]:
        log("nothing to do: the checkpoint has completed %d of %d epochs"
            % (initial_epoch, config["num_epochs"]))
        return {"model": model, "log_path": None, "checkpoints": [], "epoch_losses": [],
                "initial_epoch": initial_epoch}
    sequence = PatchSequence(prepared, batch_size=config["batch_size"], n_pos=config["n_pos"],
                             n_neg=config["n_neg"], seed=config["seed"], epoch=initial_epoch,
                             patch_size=config["patch_size"], output_size=config["output_size"],
                             max_batches_per_patient=config["max_batches_per_patient"])
    if runtime.is_chief:
        save_config(config, os.path.join(config["save_path"], "config.json"))
    log_path = log_path_for_device(config["log_dir"], runtime.log_id)
    header = [describe(config)] + header + ["tensorflow %s, keras %s, %d batches per epoch"
                                            % (compat.tf.__version__, keras.__version__, len(sequence))]
    training_log = TrainingLog(sequence, log_path, stream=stream, header=header)
    callbacks = runtime.callbacks(sequence) + [training_log]
    checkpoint_dir = runtime.checkpoint_dir(config["save_path"])
    if checkpoint_dir is not None:
        callbacks.append(EpochCheckpoint(checkpoint_dir, config["model_name"], config["padding"],
                                         keep=config["keep"] if runtime.is_chief else 1,
                                         log=training_log.write if runtime.is_chief else None,
                                         previous=previous if runtime.is_chief else ()))
    try:
        model.fit(epochs=config["num_epochs"], initial_epoch=initial_epoch, shuffle=False, verbose=0,
                  callbacks=callbacks, **runtime.fit_arguments(sequence, config["workers"]))
    finally:
        training_log.close()  # also when fit stops on an error (on_train_end is not called)
    saved = callbacks[-1].saved if checkpoint_dir is not None and runtime.is_chief else []
    return {"model": model, "log_path": log_path, "checkpoints": saved,
            "epoch_losses": training_log.epoch_losses, "initial_epoch": initial_epoch}
