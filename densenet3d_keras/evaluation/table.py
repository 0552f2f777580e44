"""The results table printed while cases are scored: Dice and HD95 per case, then statistics."""
import math
import sys

#: Legacy columns: (title, metric).
TABLE_COLUMNS = (("Dice WT", "dice_wt"), ("Dice TC", "dice_tc"), ("Dice ET", "dice_et"),
                 ("HD95 WT", "hd95_wt"), ("HD95 TC", "hd95_tc"), ("HD95 ET", "hd95_et"))
#: Lesion-wise columns (BraTS 2023).
LESION_DICE_COLUMNS = (("LDice WT", "lesion_dice_wt"), ("LDice TC", "lesion_dice_tc"),
                       ("LDice ET", "lesion_dice_et"))
LESION_HD95_COLUMNS = (("LHD95 WT", "lesion_hd95_wt"), ("LHD95 TC", "lesion_hd95_tc"),
                       ("LHD95 ET", "lesion_hd95_et"))
#: Columns per metric set of :mod:`densenet3d_keras.evaluation.report`.
COLUMN_SETS = {
    "legacy": TABLE_COLUMNS,
    "lesionwise": LESION_DICE_COLUMNS + LESION_HD95_COLUMNS,
    "all": TABLE_COLUMNS[:3] + LESION_DICE_COLUMNS + TABLE_COLUMNS[3:],
}
STATISTICS = ("mean", "std", "median")


def _cell(value, width, digits):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan".rjust(width)
    return ("%.*f" % (digits, value)).rjust(width)


def _digits(key):
    return 4 if "dice" in key else 2


def format_row(name, values, name_width, columns=TABLE_COLUMNS):
    """One table line: the name, then Dice with 4 decimals and HD95 (mm) with 2.

    Args:
        name: case id or statistic name.
        values: mapping with the metrics of ``columns``.
        name_width: width of the first column.
        columns: ``(title, metric)`` pairs.

    Returns:
        str.
    """
    cells = [name.ljust(name_width)]
    for title, key in columns:
        cells.append(_cell(values.get(key), len(title) + 1, _digits(key)))
    return " ".join(cells)


def format_header(name_width, columns=TABLE_COLUMNS):
    """The table header matching :func:`format_row`."""
    return " ".join(["case".ljust(name_width)] + [title.rjust(len(title) + 1)
                                                  for title, _ in columns])


class ResultsTable(object):
    """Prints the table: the header at once, a row per scored case, the statistics at the end.

    An instance is the ``progress`` callback of
    :func:`densenet3d_keras.evaluation.report.evaluate_folder`.

    Args:
        case_ids: the cases to be scored (for the width of the first column).
        stream: where to print (default ``sys.stdout``).
        metric_set: ``legacy`` (Dice and HD95), ``lesionwise`` (lesion-wise Dice and HD95)
            or ``all`` (Dice, lesion-wise Dice, HD95).
    """

    def __init__(self, case_ids, stream=None, metric_set="legacy"):
        if metric_set not in COLUMN_SETS:
            raise ValueError("unknown metric set %r (choose from %s)"
                             % (metric_set, ", ".join(sorted(COLUMN_SETS))))
        self.stream = stream or sys.stdout
        self.columns = COLUMN_SETS[metric_set]
        self.width = max([len("median")] + [len(case_id) for case_id in case_ids])
        self._print(format_header(self.width, self.columns))

    def _print(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()

    def __call__(self, index, total, row):
        self._print(format_row(row["case"], row, self.width, self.columns))

    def finish(self, summary):
        """Print the separator and the mean, std and median rows of ``summary``."""
        self._print("-" * len(format_header(self.width, self.columns)))
        for statistic in STATISTICS:
            values = dict((name, stats[statistic]) for name, stats in summary["metrics"].items())
            self._print(format_row(statistic, values, self.width, self.columns))
