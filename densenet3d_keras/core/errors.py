"""Error messages as the command lines print them: one line."""


def first_line(error):
    """The first line of an exception's message (its type name if it has none)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
