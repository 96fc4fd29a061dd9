from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# How every test launches a process: offline, and with no GPU-only setting in the way
# (a CPU-only machine must find its multi-process group by itself).
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def w2s_environment() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def _w2s(launcher: list[str], args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*launcher, "-m", "weak2strong.cli", *args],
        cwd=cwd,
        env=w2s_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `w2s` in a subprocess, as a user would, inside a scratch working directory."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return _w2s([sys.executable], args, cwd or tmp_path)

    return run


@pytest.fixture
def run_torchrun(tmp_path: Path):
    """Run `w2s` as two real processes on this machine (torchrun; gloo on a CPU machine)."""

    def run(
        *args: str, processes: int = 2, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return _w2s([*TORCHRUN, f"--nproc_per_node={processes}"], args, cwd or tmp_path)

    return run


def assert_results_layout(results: dict) -> None:
    """results.json in the one documented layout, and its examples file where it names one."""
    import jsonschema

    from weak2strong.runs.results import RESULTS_SCHEMA

    jsonschema.validate(results, RESULTS_SCHEMA)
    folder = Path(results["run"]["folder"])
    assert folder.is_absolute() and (folder / "results.json").is_file()
    if results["examples"] is not None:
        assert len(read_examples(folder)) == results["examples"]["rows"]


def read_examples(folder: Path) -> list[dict]:
    import json

    lines = (Path(folder) / "examples.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]
