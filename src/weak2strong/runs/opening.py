"""Opening a run folder on the main process: create it, lock it, check its stored config and
inputs against this run's, and record the attempt."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from weak2strong.errors import W2SError
from weak2strong.fileio import parse_yaml, read_json, write_json, write_yaml
from weak2strong.runs.config import (
    canonical_model_names,
    config_to_dict,
    result_settings,
    results_version,
    without_unhashed,
)
from weak2strong.runs.environment import environment


def _plain(value: Any) -> Any:
    """The value as YAML reads it back (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(value))


def _conflicts(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """Keys present in both with different values (nested mappings compared key by key)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        found: list[str] = []
        for key in sorted(stored.keys() & current.keys()):
            found += _conflicts(stored[key], current[key], f"{prefix}{key}.")
        return found
    return [] if stored == current else [prefix.rstrip(".")]


@dataclass
class Opened:
    lock: IO[Any]
    attempts: int
    notes: list[str]


def open_folder(
    path: Path, config: Any, seed: int, processes: dict[str, Any], inputs: dict[str, Any]
) -> Opened:
    """The main process's part of opening a run: create, lock, check, record."""
    try:
        (path / "steps").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise W2SError(f"cannot create the run folder {path}: {error.strerror or error}") from None
    lock = _lock(path)
    try:
        conflicts = _stored_conflicts(path, config)
        if conflicts:
            raise W2SError(
                f"{path / 'config.yaml'} differs from this run's config at "
                f"{', '.join(conflicts)}; move the old run folder away"
            )
        notes = _discard_if_inputs_changed(path, inputs)
        write_yaml(path / "config.yaml", config_to_dict(config))
        if inputs:
            write_json(path / "inputs.json", inputs)
        attempts = readable_json(path / "env.json").get("attempts", [])
        env = {
            **environment(seed),
            "results_version": results_version(config),
            "distributed": processes,
        }
        env["attempts"] = [*attempts, env["started_at"]]
        write_json(path / "env.json", env)
    except OSError as error:
        lock.close()
        raise W2SError(
            f"cannot write to the run folder {path}: {error.strerror or error}"
        ) from None
    except BaseException:
        lock.close()
        raise
    return Opened(lock, len(env["attempts"]), notes)


def _lock(path: Path) -> IO[Any]:
    """An exclusive lock on the run folder, held until the run closes; the kernel releases it
    when its process dies, so a crashed run never leaves a stale lock."""
    import fcntl

    handle = open(path / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise W2SError(
            f"the run folder {path} is in use by {holder}: the same run is already going; wait "
            "for it, or use another --runs-dir"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"w2s pid {os.getpid()} on {platform.node()}")
    handle.flush()
    return handle


def readable_json(path: Path) -> dict[str, Any]:
    try:
        value = read_json(path)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _discard_if_inputs_changed(path: Path, inputs: dict[str, Any]) -> list[str]:
    """Steps and results computed from other data or weights are not this run's: remove them.

    A folder from before inputs were recorded adopts the current ones.
    """
    stored_file = path / "inputs.json"
    if not inputs or not stored_file.exists():  # nothing declared, or nothing recorded yet
        return []
    stored = readable_json(stored_file)
    changed = sorted(
        key for key in stored.keys() | inputs.keys() if stored.get(key) != inputs.get(key)
    )
    if not changed:
        return []
    steps = [p for p in (path / "steps").iterdir() if p.is_file()]
    for step in steps:
        step.unlink()
    (path / "results.json").unlink(missing_ok=True)
    return [
        f"inputs changed since the cached steps were computed ({', '.join(changed)}): "
        f"{len(steps)} cached step(s) and the old results discarded"
    ]


def _stored_conflicts(path: Path, config: Any) -> list[str]:
    """Settings where the run folder's stored config disagrees with `config`.

    Same hash, different values: a default changed between versions. Options that the
    stored config lacks are new ones at their defaults, and keep the run.
    """
    config_file = path / "config.yaml"
    if not config_file.exists():
        return []
    stored = parse_yaml(config_file.read_text("utf-8"), str(config_file))
    if stored is None:
        return []
    stored = canonical_model_names(stored)  # written before a model was renamed
    return _conflicts(without_unhashed(type(config), stored), _plain(result_settings(config)))
