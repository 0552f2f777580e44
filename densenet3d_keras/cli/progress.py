"""A text progress bar for long per-case work (tiles, windows)."""
import time


class TextProgress(object):
    """A progress bar for one case on a text stream (``\\r`` updates on a terminal, else a line
    every 10 %).

    Args:
        stream: where to write (stderr).
        label: text before the bar.
        unit: what is counted (``tiles``, ``windows``).
    """

    WIDTH = 30

    def __init__(self, stream, label, unit):
        self.stream = stream
        self.label = label
        self.unit = unit
        self.started = time.time()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_decile = -1

    def __call__(self, done, total):
        fraction = float(done) / max(total, 1)
        decile = int(fraction * 10)
        if not self.tty and decile == self.last_decile and done < total:
            return
        self.last_decile = decile
        filled = int(round(fraction * self.WIDTH))
        elapsed = time.time() - self.started
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        text = "%s [%s%s] %d/%d %s, %.0f s, ~%.0f s left" % (
            self.label, "#" * filled, "." * (self.WIDTH - filled), done, total, self.unit,
            elapsed, eta)
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done >= total else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
