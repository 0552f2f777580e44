"""The run's history: ``history.csv`` (Keras ``CSVLogger``) and ``learning_curves.png``.

``history.csv`` has one row per epoch (``epoch`` counts from 1, as the training log and the
checkpoint names do) with the epoch's mean loss and accuracies
(:class:`callbacks.training_log.TrainingLog` puts the means into the epoch's logs), the
learning rate and the validation Dice (NaN on epochs without validation). A resumed run
appends to it, in the columns of its header, after :func:`reconcile_history` has made its rows
those of the epochs the resumed checkpoint completed.

``learning_curves.png`` is drawn from ``history.csv`` after every epoch: the training losses,
the validation Dice per region and the learning rate. It is written under a temporary name and
renamed, so a viewer never sees half a file.
"""
import csv
import io
import math
import os

from densenet3d_keras.core.compat import keras
from densenet3d_keras.core.fileio import atomic_output, write_bytes_atomic

HISTORY = "history.csv"
CURVES = "learning_curves.png"


def read_history(path):
    """The rows of a ``history.csv`` as dicts of floats (``nan`` where a value is missing)."""
    rows = []
    with io.open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(dict((key, _number(value)) for key, value in row.items() if key))
    return rows


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _header(path):
    """The column names of an existing CSV file, or ``None``."""
    try:
        with io.open(path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), None)
    except OSError:
        return None


class HistoryCSV(keras.callbacks.CSVLogger):
    """Keras's ``CSVLogger`` that, when appending, keeps the existing file's columns (a value
    the epoch does not have is written as NaN, one the header does not have is left out).

    Args:
        path: the CSV file.
        append: append to an existing file (a resumed run) instead of replacing it.
    """

    def __init__(self, path, append=False):
        super(HistoryCSV, self).__init__(path, append=append)

    def on_train_begin(self, logs=None):
        header = _header(self.filename) if self.append else None
        if header and header[0] == "epoch":
            self.keys = header[1:]
        super(HistoryCSV, self).on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for key in self.keys or ():
            logs.setdefault(key, float("nan"))
        super(HistoryCSV, self).on_epoch_end(epoch + 1, logs)


def reconcile_history(path, recorded, resumed_epoch):
    """Make ``history.csv`` hold exactly one row for each epoch up to ``resumed_epoch``.

    A run killed after an epoch's checkpoint but before its row was written lost the row; one
    killed after the row of an epoch it never checkpointed has a row the resumed run will
    write again. Rows after ``resumed_epoch`` are dropped, and missing rows are taken from
    ``recorded`` (the rows the checkpoints hold). A file of an earlier version that counted
    epochs from 0 is renumbered from 1. The file is rewritten atomically, only if it changes.

    Args:
        path: the ``history.csv``.
        recorded: ``{epoch: row dict}`` from the run's checkpoints
            (:func:`densenet3d_keras.models.checkpoints.read_checkpoint_record`).
        resumed_epoch: the epoch the resumed checkpoint completed (1-based).

    Returns:
        The epochs whose rows were added from checkpoints.
    """
    header = _header(path)
    if not header or header[0] != "epoch":
        return []
    with io.open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    shift = 1 if rows and _number(rows[0]["epoch"]) == 0 else 0
    by_epoch = {}
    for row in rows:
        epoch = _number(row["epoch"])
        if math.isfinite(epoch):
            row["epoch"] = str(int(epoch) + shift)
            by_epoch[int(epoch) + shift] = row
    added = [epoch for epoch in sorted(recorded) if epoch <= resumed_epoch and epoch not in by_epoch]
    for epoch in added:
        by_epoch[epoch] = dict((key, _cell(recorded[epoch].get(key, float("nan")))) for key in header)
        by_epoch[epoch]["epoch"] = str(epoch)
    kept = [by_epoch[epoch] for epoch in sorted(by_epoch) if epoch <= resumed_epoch]
    if not added and not shift and len(kept) == len(rows):
        return []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(kept)
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"), what="history")
    return added


def _cell(value):
    return str(value) if isinstance(value, str) else repr(float(value))


def _finite(rows, key):
    points = [(row["epoch"], row[key]) for row in rows if key in row and math.isfinite(row[key])]
    return [p[0] for p in points], [p[1] for p in points]


def draw_learning_curves(rows, path, title=""):
    """Draw the curves of ``history.csv`` rows into a PNG (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4), dpi=90)
    FigureCanvasAgg(figure)
    panels = (("training loss", ("loss", "wt_loss", "labels_loss"), False),
              ("validation Dice", ("val_dice_wt", "val_dice_tc", "val_dice_et", "val_dice_mean"), False),
              ("learning rate", ("lr",), True))
    for index, (name, keys, log_scale) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), index)
        for key in keys:
            epochs, values = _finite(rows, key)
            if values:
                axes.plot(epochs, values, marker="o", markersize=3, label=key)
        if log_scale and any(_finite(rows, key)[1] for key in keys):
            axes.set_yscale("log")
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    with atomic_output(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")


class LearningCurves(keras.callbacks.Callback):
    """Redraw ``learning_curves.png`` from ``history.csv`` after every epoch.

    Put it after the :class:`HistoryCSV` it reads (Keras calls callbacks in list order, and
    ``CSVLogger`` flushes every row).

    Args:
        history_path: the ``history.csv`` written by :class:`HistoryCSV`.
        path: the PNG to write.
        title: the figure's title (the model and save folder).
    """

    def __init__(self, history_path, path, title=""):
        super(LearningCurves, self).__init__()
        self.history_path = history_path
        self.path = path
        self.title = title

    def on_epoch_end(self, epoch, logs=None):
        if os.path.isfile(self.history_path):
            draw_learning_curves(read_history(self.history_path), self.path, self.title)
