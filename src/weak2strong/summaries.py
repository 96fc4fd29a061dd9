"""Every command's results as tables and plots, and the report built from run folders.

This module sits above the method subpackages: it is the one place that knows which
command wrote a run folder and which tables and plot show its results. The command line
prints through it after a run, and `w2s report` renders the same tables for every run
folder it finds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from weak2strong.errors import W2SError
from weak2strong.extrapolate.summary import extrapolate_tables, plot_extrapolate_summary
from weak2strong.fileio import FOLDER_MODE, write_text
from weak2strong.generalize.summary import generalize_tables, plot_summary
from weak2strong.prune.summary import plot_prune_summary, prune_tables
from weak2strong.report import ResultTable, print_table
from weak2strong.report.pages import Report, RunSection, Skipped, write_html, write_markdown
from weak2strong.search import SearchConfig
from weak2strong.search.summary import plot_search_summary, search_tables

Tables = Callable[[dict[str, Any]], list[ResultTable]]
Plot = Callable[[dict[str, Any], Path], Path | None]

RUN_FOLDER = re.compile(r"^(?P<command>[a-z][a-z-]*)-(?P<hash>[0-9a-f]{10})$")
REPORT_MARKER = ".w2s-report"


def _scalar_table(results: dict[str, Any]) -> list[ResultTable]:
    """Commands without a table of their own: their scalar results, one per row."""
    rows = []
    for key, value in results.items():
        if isinstance(value, bool | int | float | str) or value is None:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            rows.append([key, shown])
    return [ResultTable("results", ["result", "value"], rows)]


@dataclass(frozen=True)
class CommandSummary:
    page: str  # the report page its runs appear on
    tables: Tables
    plot: Plot | None = None
    plot_name: str = ""
    results_version: int = 1  # what the command computes today (its config's RESULTS_VERSION)


SUMMARIES: dict[str, CommandSummary] = {
    "generalize": CommandSummary("generalize", generalize_tables, plot_summary, "generalize.png"),
    "generalize-generative": CommandSummary("generalize", generalize_tables),
    "search": CommandSummary(
        "search",
        search_tables,
        plot_search_summary,
        "search.png",
        results_version=SearchConfig.RESULTS_VERSION,
    ),
    "extrapolate": CommandSummary(
        "extrapolate", extrapolate_tables, plot_extrapolate_summary, "extrapolate.png"
    ),
    "prune": CommandSummary("prune", prune_tables, plot_prune_summary, "prune.png"),
}
PAGE_ORDER = ("generalize", "search", "extrapolate", "prune")


def summary_of(command: str) -> CommandSummary:
    return SUMMARIES.get(command, CommandSummary(command, _scalar_table))


def show_results(console: Console, command: str, run_path: Path, results: dict[str, Any]) -> None:
    """After a run: its tables on the terminal, its plot into the run folder."""
    summary = summary_of(command)
    for table in summary.tables(results):
        print_table(console, table)
    plot = None
    if summary.plot is not None:
        plot = summary.plot(results, run_path / "plots" / summary.plot_name)
    console.print(f"run folder: {run_path}" + (f"  plot: {plot}" if plot else ""))


# ---- the report


def _read_run(folder: Path, scratch: Path) -> RunSection:
    """The folder as a report section; W2SError says why it cannot be one."""
    match = RUN_FOLDER.match(folder.name)
    if match is None:
        raise W2SError("not a run folder (names are <command>-<10 hex digits>)")
    command = match["command"]
    config_file, results_file, env_file = (
        folder / "config.yaml",
        folder / "results.json",
        folder / "env.json",
    )
    if not config_file.is_file():
        raise W2SError("no config.yaml: the run never started properly")
    if not results_file.is_file():
        steps = len(list((folder / "steps").glob("*"))) if (folder / "steps").is_dir() else 0
        raise W2SError(f"no results.json: unfinished or interrupted ({steps} steps done)")
    try:
        config_text = config_file.read_text("utf-8")
        yaml.safe_load(config_text)
        results = json.loads(results_file.read_text("utf-8"))
        environment = json.loads(env_file.read_text("utf-8")) if env_file.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise W2SError(f"unreadable: {type(error).__name__}: {error}") from error
    if not isinstance(results, dict):
        raise W2SError("results.json does not hold an object")
    summary = summary_of(command)
    try:
        tables = summary.tables(results)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise W2SError(
            f"results.json lacks what the {command} table needs "
            f"({type(error).__name__}: {error}); written by another version?"
        ) from error
    notes = []
    version = results.get("results_version", 1)
    if isinstance(version, int) and version < summary.results_version:
        notes.append(
            f"stale: computed by results version {version} of {command}; this version of the "
            f"toolkit computes version {summary.results_version} (rerun to refresh)"
        )
    section = RunSection(
        name=folder.name,
        command=command,
        tables=tables,
        plots=[],
        config_text=config_text,
        environment_text=json.dumps(environment, indent=2),
        started=str(environment.get("started_at", "")),
        notes=notes,
    )
    existing = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if existing:
        section.plots = existing
    elif summary.plot is not None:  # the run ended before its plot: draw it from the results
        try:
            drawn = summary.plot(results, scratch / folder.name / summary.plot_name)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            section.notes.append(f"plot not drawn: {type(error).__name__}: {error}")
        else:
            section.plots = [drawn] if drawn else []
    return section


def collect(runs_dir: Path, scratch: Path) -> Report:
    if not runs_dir.is_dir():
        raise W2SError(f"no runs folder at {runs_dir}")
    pages: dict[str, list[RunSection]] = {}
    skipped: list[Skipped] = []
    single = RUN_FOLDER.match(runs_dir.name) and (runs_dir / "config.yaml").is_file()
    for folder in [runs_dir] if single else sorted(runs_dir.iterdir()):
        if folder.name == "shared" or folder.name.startswith("."):
            continue  # features cached across runs; hidden files
        if not folder.is_dir():
            skipped.append(Skipped(folder.name, "not a folder"))
            continue
        try:
            section = _read_run(folder, scratch)
        except W2SError as error:
            skipped.append(Skipped(folder.name, str(error)))
            continue
        pages.setdefault(summary_of(section.command).page, []).append(section)
    ordered = {page: pages[page] for page in PAGE_ORDER if page in pages}
    ordered |= {page: runs for page, runs in sorted(pages.items()) if page not in ordered}
    for sections in ordered.values():
        sections.sort(key=lambda section: section.started, reverse=True)  # newest first
    return Report("weak2strong runs", str(runs_dir), ordered, skipped)


def build_report(runs_dir: str | Path, out: str | Path, fmt: str = "html") -> tuple[Path, Report]:
    """Write the report of every run under `runs_dir` to `out` (replaced as a whole).

    The report is built in a staging folder beside `out` and renamed into place, so `out`
    holds either the previous report or the complete new one. A folder at `out` that is
    not an earlier report is refused rather than replaced.
    """
    if fmt not in ("html", "markdown"):
        raise W2SError(f"unknown report format '{fmt}' (html or markdown)")
    runs_dir, out = Path(runs_dir).expanduser(), Path(out).expanduser()
    if out.exists() and not (out / REPORT_MARKER).exists() and any(out.iterdir()):
        raise W2SError(f"{out} exists and is not a w2s report; choose another --out")
    if out.resolve() == runs_dir.resolve() or runs_dir.resolve() in out.resolve().parents:
        raise W2SError("--out must lie outside the runs folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        staged.chmod(FOLDER_MODE)
        with tempfile.TemporaryDirectory() as scratch:
            report = collect(runs_dir, Path(scratch))
            writer = write_html if fmt == "html" else write_markdown
            entry = writer(report, staged)
        write_text(staged / REPORT_MARKER, "made by w2s report\n")
        if out.exists():
            previous = out.with_name(f".{out.name}.previous-{os.getpid()}")
            os.replace(out, previous)
            os.replace(staged, out)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(staged, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staged)
        raise
    return out / entry.name, report
