from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# The embedded defaults never need the hub: in-process runs are offline as subprocesses are.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

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


def w2s_in_process(args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`w2s ARGS` run by the CLI's own `main` in this process, its output captured: what a
    subprocess would give (exit code, stdout, stderr) without a new interpreter importing
    torch and transformers again. Global state the CLI touches (working directory, argv,
    environment, the package logger's handlers) is put back afterwards."""
    from weak2strong import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    package_logger = logging.getLogger("weak2strong")
    handlers, level = list(package_logger.handlers), package_logger.level
    environment, argv, directory = dict(os.environ), sys.argv, os.getcwd()
    # What `python -m weak2strong.cli` would see: the working directory and $PYTHONPATH on
    # the path (a user's plugin modules), and none of the plugin modules an earlier call
    # imported from another folder.
    entries = [str(cwd), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    plugin_dirs = list(
        dict.fromkeys(str(Path(e).resolve()) for e in entries if e and Path(e).is_dir())
    )
    added_paths = [path for path in plugin_dirs if path not in sys.path]
    sys.path[:0] = added_paths
    importlib.invalidate_caches()
    modules_before = set(sys.modules)
    code: int = 0
    try:
        os.chdir(cwd)
        sys.argv = ["w2s", *args]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                cli.main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        toolkit = str(Path(cli.__file__).resolve().parent)
        for name in set(sys.modules) - modules_before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            plugin = any(origin.startswith(path + os.sep) for path in plugin_dirs)
            if plugin and not origin.startswith(toolkit + os.sep):
                del sys.modules[name]
        for path in added_paths:
            sys.path.remove(path)
        os.chdir(directory)
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environment)
        package_logger.handlers[:] = handlers
        package_logger.setLevel(level)
    return subprocess.CompletedProcess(["w2s", *args], code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make demo`'s four commands at tiny size, run once per session (see tests/demo.py):
    the runs folder the demo, report, runs and compare tests read. Read it, never write."""
    from tests.demo import TINY, demo_commands

    root = tmp_path_factory.mktemp("demo")
    for command, path, flags in demo_commands("demo"):
        result = w2s_in_process((command, "--config", str(path), *flags, *TINY[command]), root)
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    return root / "runs"


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `w2s` as a user would, inside a scratch working directory: in this process (see
    `w2s_in_process`), so a test pays for its models, not for starting Python again."""

    def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return w2s_in_process(args, cwd or tmp_path)

    return run


@pytest.fixture
def run_cli_process(tmp_path: Path):
    """Run `w2s` in a subprocess, exactly as a user would: for the smoke tests of the real
    entry point (and what only a process can show: exit on a signal, a fresh interpreter)."""

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
