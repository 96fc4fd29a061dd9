"""Run folders: one per resolved config, holding its config, environment, steps and results.

A run lives in `<runs_dir>/<command>-<config hash>/`. Each finished step is a file written
atomically under `steps/`, so a rerun of the same config loads finished steps instead of
recomputing them, and a run killed half-way resumes at the first unfinished step.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml

from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest, read_json, write_json, write_tensors, write_yaml
from weak2strong.runs.config import config_hash, config_to_dict, result_settings, without_unhashed

T = TypeVar("T")

TRACKED_PACKAGES = (
    "weak2strong",
    "torch",
    "transformers",
    "safetensors",
    "accelerate",
    "peft",
    "datasets",
    "numpy",
    "gguf",
)


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


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit() -> str | None:
    """The commit of the weak2strong source tree, with `-dirty` if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def environment(seed: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "seed": seed,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "argv": sys.argv,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hub_offline": os.environ.get("HF_HUB_OFFLINE"),
    }


class Run:
    """A run folder. Create it with `Run.open` only after the config and inputs validated."""

    def __init__(self, path: Path, command: str, config: Any) -> None:
        self.path = path
        # Results shared between runs (e.g. backbone features) live beside the run folders,
        # keyed by everything that determines them, never by a task or model name alone.
        self.shared_dir = path.parent / "shared"
        self.command = command
        self.config = config
        self.log = logging.getLogger(f"weak2strong.run.{path.name}")

    @classmethod
    def open(cls, command: str, config: Any, runs_dir: str | Path = "runs") -> Run:
        seed = int(getattr(config, "seed", 0))
        path = Path(runs_dir).expanduser() / f"{command}-{config_hash(config)}"
        (path / "steps").mkdir(parents=True, exist_ok=True)
        resolved = config_to_dict(config)
        config_file = path / "config.yaml"
        stored = yaml.safe_load(config_file.read_text("utf-8")) if config_file.exists() else None
        if stored is not None:
            # Same hash, different values: a default changed between versions. Options that
            # the stored config lacks are new ones at their defaults, and keep the run.
            conflicts = _conflicts(
                without_unhashed(type(config), stored), _plain(result_settings(config))
            )
            if conflicts:
                raise W2SError(
                    f"{config_file} differs from this run's config at {', '.join(conflicts)}; "
                    "move the old run folder away"
                )
        write_yaml(config_file, resolved)
        attempts = (
            read_json(path / "env.json").get("attempts", []) if (path / "env.json").exists() else []
        )
        env = environment(seed)
        env["attempts"] = [*attempts, env["started_at"]]
        write_json(path / "env.json", env)
        run = cls(path, command, config)
        run._attach_log_file()
        seed_everything(seed)
        run.log.info("run %s (%s)", path, "resumed" if attempts else "new")
        return run

    def _attach_log_file(self) -> None:
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(handler)
        self.log.setLevel(logging.INFO)

    def close(self) -> None:
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)

    # ---- steps

    def step_path(self, name: str, suffix: str = ".json") -> Path:
        return self.path / "steps" / f"{name}{suffix}"

    def is_done(self, name: str, suffix: str = ".json") -> bool:
        return self.step_path(name, suffix).exists()

    def cached_json(self, name: str, compute: Callable[[], T]) -> T:
        """Return the step's saved JSON, or compute, save atomically and return it."""
        path = self.step_path(name)
        if path.exists():
            self.log.info("step %s: cached", name)
            return read_json(path)
        started = time.perf_counter()
        value = compute()
        write_json(path, value)
        self.log.info("step %s: done in %.1fs", name, time.perf_counter() - started)
        return value

    def cached_tensors(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Like `cached_json` for a dict of tensors, stored as safetensors (never pickle)."""
        return self._tensors_at(self.step_path(name, ".safetensors"), name, compute)

    def shared_tensors(
        self, kind: str, key: dict[str, Any], compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Tensors cached across runs under a digest of `key`, which must name every input."""
        digest = key_digest(key)
        path = self.shared_dir / f"{kind}-{digest}.safetensors"
        key_file = path.with_suffix(".json")
        if not key_file.exists():
            write_json(key_file, key)
        return self._tensors_at(path, f"{kind} ({digest})", compute)

    def _tensors_at(
        self, path: Path, name: str, compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        from safetensors.torch import load_file

        if path.exists():
            self.log.info("step %s: cached", name)
            return load_file(path)
        started = time.perf_counter()
        tensors = {key: value.contiguous() for key, value in compute().items()}
        write_tensors(path, tensors)
        self.log.info("step %s: done in %.1fs", name, time.perf_counter() - started)
        return tensors

    # ---- outputs

    def write_results(self, results: dict[str, Any]) -> Path:
        path = self.path / "results.json"
        write_json(path, results)
        return path
