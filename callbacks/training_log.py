"""The training log: one line per batch and per patient in the reference format.

The Ascend ModelZoo scripts split these lines on spaces and read fixed fields, so the format
is fixed (docs/spec.md)::

    epoch-patient: 1, 1, iter: 1-200, p%: 0.5000, loss: 1.2345, acc_flair_t2: 97.50%, acc_t1_t1ce: 88.25%, time cust: 0.1234
    patient loss: 1.2345, patient acc: 92.8750

Field 16 of a batch line is the step time in seconds; fields 3 and 6 of a patient line are the
patient's mean loss and mean accuracy (both heads). A patient line follows the patient's last
batch of the epoch; when the batches of several patients are shuffled together it is still
the mean over that patient's batches.
"""
import io
import os
import sys
import time

import numpy as np

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.fileio import write_error

WT_ACCURACY = "wt_accuracy_percent"
LABEL_ACCURACY = "labels_accuracy_percent"


def log_path_for_device(log_dir, device_id=None):
    """``<log_dir>/train_<ASCEND_DEVICE_ID>.log`` (device id from the environment, 0 if unset)."""
    if device_id is None:
        device_id = os.environ.get("ASCEND_DEVICE_ID", "0") or "0"
    return os.path.join(log_dir, "train_%s.log" % device_id)


def format_batch_line(info, loss, acc_wt, acc_labels, seconds):
    """One batch line (see the module docstring)."""
    return ("epoch-patient: %d, %d, iter: %d-%d, p%%: %.4f, loss: %.4f, acc_flair_t2: %.2f%%, "
            "acc_t1_t1ce: %.2f%%, time cust: %.4f"
            % (info.epoch, info.patient, info.iteration, info.iterations, info.positive_fraction,
               loss, acc_wt, acc_labels, seconds))


def format_patient_line(loss, accuracy):
    """One patient line (see the module docstring)."""
    return "patient loss: %.4f, patient acc: %.4f" % (loss, accuracy)


class TrainingLog(keras.callbacks.Callback):
    """Write the per-batch and per-patient lines to a log file and a stream.

    Metrics are reset before every batch so that Keras reports that batch's own loss and
    accuracies rather than running means over the epoch; at the end of an epoch the epoch's
    logs get the means over its batches instead of the last batch's values (for
    ``history.csv`` and TensorBoard).

    Args:
        sequence: the :class:`~generators.sequence.PatchSequence` being trained on (for the
            batch's patient, iteration and positive fraction).
        log_path: file to append to (its folder is created).
        stream: also write here (default ``sys.stdout``; ``None`` for file only).
        header: lines written once at the start of training (configuration, strategy).
    """

    def __init__(self, sequence, log_path, stream="stdout", header=()):
        super(TrainingLog, self).__init__()
        self.sequence = sequence
        self.log_path = log_path
        self.stream = sys.stdout if stream == "stdout" else stream
        self.header = list(header)
        self._file = None
        self._infos = []
        self._patients = {}
        self._started = 0.0
        self.epoch_losses = []

    def write(self, line):
        """Write one line to the log file and the stream, flushed.

        Raises:
            OSError: the log file cannot be written (disk full); the message names it.
        """
        if self._file is not None:
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as error:
                raise write_error(self.log_path, error, "the training log")
        if self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()

    def on_train_begin(self, logs=None):
        folder = os.path.dirname(self.log_path)
        try:
            if folder:
                os.makedirs(folder, exist_ok=True)
            self._file = io.open(self.log_path, "a", encoding="utf-8")
        except OSError as error:
            raise write_error(self.log_path, error, "the training log")
        for line in self.header:
            self.write(line)

    def on_train_end(self, logs=None):
        self.close()

    def close(self):
        """Close the log file (kept open from the start of training); a second call does nothing."""
        handle, self._file = self._file, None
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass  # its buffer was flushed after every line; a failed flush was reported there

    def on_epoch_begin(self, epoch, logs=None):
        self._infos = self.sequence.epoch_infos()
        self._patients = {}
        self._epoch_sums = {}
        self._epoch_started = time.time()

    def on_train_batch_begin(self, batch, logs=None):
        self.model.reset_metrics()
        self._started = time.time()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.time() - self._started
        logs = logs or {}
        info = self._infos[batch]
        loss = float(logs.get("loss", np.nan))
        acc_wt = float(logs.get(WT_ACCURACY, np.nan))
        acc_labels = float(logs.get(LABEL_ACCURACY, np.nan))
        self.write(format_batch_line(info, loss, acc_wt, acc_labels, seconds))
        losses, accuracies = self._patients.setdefault(info.patient, ([], []))
        losses.append(loss)
        accuracies.append((acc_wt + acc_labels) / 2.0)
        for key, value in logs.items():
            if isinstance(value, (int, float, np.floating, np.integer)) and key not in ("batch", "size"):
                total, count = self._epoch_sums.get(key, (0.0, 0))
                self._epoch_sums[key] = (total + float(value), count + 1)
        if len(losses) == info.iterations:
            self.write(format_patient_line(float(np.mean(losses)), float(np.mean(accuracies))))
            del self._patients[info.patient]

    def on_epoch_end(self, epoch, logs=None):
        total, count = self._epoch_sums.get("loss", (0.0, 0))
        mean = total / count if count else float("nan")
        self.epoch_losses.append(mean)
        if logs is not None:
            logs.update((key, total / count) for key, (total, count) in self._epoch_sums.items())
        self.write("epoch %d done: mean loss %.4f, %.1f s" % (epoch + 1, mean, time.time() - self._epoch_started))
