"""Where weak2strong keeps converted models and other derived files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$W2S_CACHE`, else `$XDG_CACHE_HOME/weak2strong`, else `~/.cache/weak2strong`."""
    explicit = os.environ.get("W2S_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "weak2strong"
