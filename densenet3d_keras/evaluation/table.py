"""The results table printed while cases are scored: Dice and HD95 per case, then statistics."""
import math
import sys

TABLE_COLUMNS = (("Dice WT", "dice_wt"), ("Dice TC", "dice_tc"), ("Dice ET", "dice_et"),
                 ("HD95 WT", "hd95_wt"), ("HD95 TC", "hd95_tc"), ("HD95 ET", "hd95_et"))
STATISTICS = ("mean", "std", "median")


def _cell(value, width, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan".rjust(width)
    return ("%.*f" % (digits, value)).rjust(width)


def format_row(name, values, name_width):
    """One table line: the name, then Dice with 4 decimals and HD95 (mm) with 2.

    Args:
        name: case id or statistic name.
        values: mapping with the keys of ``TABLE_COLUMNS``.
        name_width: width of the first column.

    Returns:
        str.
    """
    cells = [name.ljust(name_width)]
    for title, key in TABLE_COLUMNS:
        cells.append(_cell(values.get(key), len(title) + 1, 4 if key.startswith("dice") else 2))
    return " ".join(cells)


def format_header(name_width):
    """The table header matching :func:`format_row`."""
    return " ".join(["case".ljust(name_width)] + [title.rjust(len(title) + 1)
                                                  for title, _ in TABLE_COLUMNS])


class ResultsTable(object):
    """Prints the table: the header at once, a row per scored case, the statistics at the end.

    An instance is the ``progress`` callback of
    :func:`densenet3d_keras.evaluation.report.evaluate_folder`.

    Args:
        case_ids: the cases to be scored (for the width of the first column).
        stream: where to print (default ``sys.stdout``).
    """

    def __init__(self, case_ids, stream=None):
        self.stream = stream or sys.stdout
        self.width = max([len("median")] + [len(case_id) for case_id in case_ids])
        self._print(format_header(self.width))

    def _print(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, index, total, row):
        self._print(format_row(row["case"], row, self.width))

    def finish(self, summary):
        """Print the separator and the mean, std and median rows of ``summary``."""
        self._print("-" * len(format_header(self.width)))
        for statistic in STATISTICS:
            values = dict((name, stats[statistic]) for name, stats in summary["metrics"].items())
            self._print(format_row(statistic, values, self.width))
