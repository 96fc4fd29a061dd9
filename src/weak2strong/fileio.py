"""Atomic file writes and hashing, shared by every command that writes results."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from weak2strong.errors import W2SError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; results are meant to be shared
_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; rename it over `path` only if the block succeeds.

    Readers therefore see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, FILE_MODE)
        os.replace(tmp_name, path)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if error.filename is None:  # a failed write() names no file: name the one meant
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if needed) for the block; other
    processes wait. The kernel releases it if the holder dies, so it is never stale."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON (no NaN/Infinity tokens): a non-finite number is written as null."""
    text = json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
    write_text(path, text + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """One strict-JSON object per line, written atomically; returns the number of rows."""
    count = 0
    with atomic_open(path) as handle:
        for row in rows:
            handle.write(json.dumps(_finite(row), default=_json_default, allow_nan=False) + "\n")
            count += 1
    return count


def as_written(value: Any) -> Any:
    """`value` as `write_json` stores it and `read_json` gives it back (tuples as lists,
    non-finite numbers as null): what a fingerprint must be before it is compared with its
    stored copy."""
    return json.loads(json.dumps(_finite(value), default=_json_default, allow_nan=False))


def _finite(value: Any) -> Any:
    """`value` with every non-finite float (numpy and torch scalars too) replaced by None."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy / torch values
        return _finite(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_yaml(path: str | Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


# A config or recipe is a few kilobytes; these bounds refuse files made to exhaust memory
# (YAML aliases can make a few lines stand for a billion values) before anything walks them.
YAML_MAX_BYTES = 1 << 20
YAML_MAX_VALUES = 100_000
YAML_MAX_DEPTH = 64


def parse_yaml(text: str, what: str) -> Any:
    """YAML text as Python values, refused (one W2SError naming `what`) when it is larger,
    deeper or, once its aliases are expanded, bigger than any config needs."""
    if len(text) > YAML_MAX_BYTES:
        raise W2SError(f"{what} is larger than {YAML_MAX_BYTES >> 20} MiB: not a config")
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise W2SError(f"{what} nests deeper than {YAML_MAX_DEPTH} levels") from None
    _check_bounded(value, what)
    return value


def _check_bounded(value: Any, what: str) -> None:
    """Walk the value as a consumer would (each alias visited as often as it is used) and
    stop at the first bound it crosses: the walk costs at most YAML_MAX_VALUES steps."""
    pending = [(value, 1)]
    visited = 0
    while pending:
        item, depth = pending.pop()
        visited += 1
        if visited > YAML_MAX_VALUES:
            raise W2SError(
                f"{what} expands to more than {YAML_MAX_VALUES:,} values (through YAML "
                "aliases?): refused"
            )
        if depth > YAML_MAX_DEPTH:
            raise W2SError(f"{what} nests deeper than {YAML_MAX_DEPTH} levels")
        if isinstance(item, dict):
            pending += [(part, depth + 1) for pair in item.items() for part in pair]
        elif isinstance(item, list):
            pending += [(part, depth + 1) for part in item]


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file's content; a missing, unreadable, malformed or oversized file is one
    W2SError naming `what` it was meant to be ("config file", "recipe")."""
    location = Path(path).expanduser()
    if not location.is_file():
        raise W2SError(f"{what} not found: {location}")
    try:
        if location.stat().st_size > YAML_MAX_BYTES:
            raise W2SError(
                f"{what} {location} is larger than {YAML_MAX_BYTES >> 20} MiB: not a config"
            )
        return parse_yaml(location.read_text("utf-8"), f"{what} {location}")
    except yaml.YAMLError as error:
        raise W2SError(
            f"{what} {location} is not valid YAML: {str(error).splitlines()[0]}"
        ) from None
    except UnicodeDecodeError:
        raise W2SError(f"{what} {location} is not UTF-8 text") from None
    except OSError as error:
        raise W2SError(f"cannot read {what} {location}: {error.strerror}") from None


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def key_digest(key: Any, length: int = 16) -> str:
    """A short stable digest of a JSON-able cache key."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[
        :length
    ]


def check_writable(folder: str | Path, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written (read-only disk, no
    permission, a file in the way): the nearest existing ancestor must take a new file."""
    target = Path(folder).expanduser().absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise W2SError(f"{what} {folder}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise W2SError(f"{what} {folder} cannot be written: {error.strerror or error}") from None


# Errors of the disk (full, read-only, no permission), not of the toolkit: one error line.
DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


def save_tensors_file(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str]) -> None:
    """safetensors' `save_file`, its I/O failures raised as the OSError they are (it
    reports them as its own error type, with the errno only in the message)."""
    import re

    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as error:
        code = re.search(r"os error (\d+)", str(error))
        if code is None:
            raise
        number = int(code[1])
        raise OSError(number, os.strerror(number), str(path)) from None


def write_tensors(path: str | Path, tensors: dict[str, Any]) -> None:
    """Save tensors as safetensors (never pickle), atomically, as every other result file:
    synced to disk and readable by the umask's rule before it is renamed into place."""
    from safetensors.torch import save

    data = save({name: value.contiguous() for name, value in tensors.items()})
    with atomic_open(path, "wb") as handle:
        handle.write(data)
