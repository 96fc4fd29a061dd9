"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""


class W2SError(Exception):
    """A user-facing error: bad input, missing asset, unknown name."""
