"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""

import reprlib


class W2SError(Exception):
    """A user-facing error: bad input, missing asset, unknown name."""


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: an error message never echoes an unbounded
    value (a long string, or a structure YAML aliases made huge)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 3, limit, limit
    return clipped(bounded.repr(value), limit)


def clipped(text: str, limit: int = 80) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
