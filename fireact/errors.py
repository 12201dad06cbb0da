class FireactError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""


def printable(text: str) -> str:
    """A message as a terminal may show it: control characters (from a binary file quoted in an
    error, say) escaped instead of moving the cursor or ringing the bell."""
    return "".join(c if c.isprintable() or c in "\n\t" else ascii(c)[1:-1] for c in text)
