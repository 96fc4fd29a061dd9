"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""

import re
import reprlib


class W2SError(Exception):
    """A user-facing error: bad input, missing asset, unknown name."""


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: an error message never echoes an unbounded
    value (a long string, or a structure YAML aliases made huge)."""
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 3, limit, limit
    return clipped(bounded.repr(value), limit)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """User or model text without control characters (a CRLF line break becomes LF)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n"))


def clipped(text: str, limit: int = 80) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
