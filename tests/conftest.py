from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `w2s` in a subprocess, as a user would, inside a scratch working directory."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        return subprocess.run(
            [sys.executable, "-m", "weak2strong.cli", *args],
            cwd=cwd or tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


@pytest.fixture
def run_torchrun(tmp_path: Path):
    """Run `w2s` as two real processes on this machine (torchrun, gloo on a CPU machine).

    No GPU-only setting is passed: the toolkit must find the CPU process group itself.
    """

    def run(
        *args: str, processes: int = 2, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **(env or {}))
        environment.pop("ACCELERATE_USE_CPU", None)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += [f"--nproc_per_node={processes}", "-m", "weak2strong.cli", *args]
        return subprocess.run(
            command,
            cwd=cwd or tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run
