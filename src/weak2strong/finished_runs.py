"""Finished runs read back: their tables and plots, the run listing, comparisons, and the
report built from run folders.

This module sits above the method subpackages: it is the one place that knows which
command wrote a run folder and which tables and plot show its results. The command line
shows a run's tables through it, `w2s runs` and `w2s compare` list and compare run folders,
and `w2s report` renders the same tables for every run folder it finds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weak2strong.commands import COMMANDS, Command
from weak2strong.errors import W2SError
from weak2strong.fileio import FOLDER_MODE, check_writable, parse_yaml
from weak2strong.manifest import check_replaceable, write_manifest
from weak2strong.report import ResultTable
from weak2strong.report.pages import Report, RunSection, Skipped, write_html, write_markdown
from weak2strong.runs.folder import read_meta
from weak2strong.runs.results import SCHEMA
from weak2strong.settings import dotted_keys

RUN_FOLDER = re.compile(r"^(?P<command>[a-z][a-z-]*)-(?P<hash>[0-9a-f]{10})$")
PAGE_ORDER = ("generalize", "search", "extrapolate", "prune")


def summary_of(command: str) -> Command:
    """The registry's record of `command`; a plain table for anything it does not know."""
    known = COMMANDS.get(command)
    if known is not None:
        return known
    return Command(command, "", "", "", page=command)


# ---- the report


def _read_files(folder: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """config.yaml's text, results.json and env.json of a finished run."""
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
        parse_yaml(config_text, "config.yaml")
        results = json.loads(results_file.read_text("utf-8"))
        environment = json.loads(env_file.read_text("utf-8")) if env_file.is_file() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise W2SError(f"unreadable: {type(error).__name__}: {error}") from error
    if not isinstance(results, dict):
        raise W2SError("results.json does not hold an object")
    if results.get("schema") != SCHEMA:
        raise W2SError(
            "results.json in an older layout: rerun the same command to rewrite it "
            "(its cached steps are reused)"
        )
    return config_text, results, environment


def _tables_and_notes(
    folder: Path, command: str, results: dict[str, Any]
) -> tuple[list[Any], list[str]]:
    """The command's tables (examples included) and what the reader should know."""
    summary = summary_of(command)
    try:
        tables = summary.tables(results)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        raise W2SError(
            f"results.json lacks what the {command} table needs "
            f"({type(error).__name__}: {error}); written by another version?"
        ) from error
    notes = [f"warning: {note}" for note in results.get("warnings", [])]
    version = results.get("results_version", 1)
    current = summary.results_version if summary.config_path else 1
    if isinstance(version, int) and version < current:
        notes.append(
            f"stale: computed by results version {version} of {command}; this version of the "
            f"toolkit computes version {current} (rerun to refresh)"
        )
    examples_file = folder / "examples.jsonl"
    if summary.examples_path is not None and examples_file.is_file():
        try:
            lines = examples_file.read_text("utf-8").splitlines()
            tables += summary.example_tables(results, [json.loads(line) for line in lines])
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            notes.append(f"examples not shown: {type(error).__name__}: {error}")
    return tables, notes


def _read_run(folder: Path, scratch: Path) -> RunSection:
    """The folder as a report section; W2SError says why it cannot be one."""
    match = RUN_FOLDER.match(folder.name)
    if match is None:
        raise W2SError("not a run folder (names are <command>-<10 hex digits>)")
    command = match["command"]
    config_text, results, environment = _read_files(folder)
    tables, notes = _tables_and_notes(folder, command, results)
    info = run_info(folder)
    section = RunSection(
        name=folder.name,
        command=command,
        tables=tables,
        plots=[],
        config_text=config_text,
        environment_text=json.dumps(environment, indent=2),
        started=str(environment.get("started_at", "")),
        notes=notes,
        label=info.label if info else "",
        headline=info.headline if info else {},
        settings=info.settings if info else "",
        metrics=list(results["metrics"]),
        aggregates=[str(name) for name in results.get("runs", [])]
        if command == "replicates"
        else [],
    )
    summary = summary_of(command)
    existing = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
    if existing:
        section.plots = existing
    elif summary.plot_path is not None:  # the run ended before its plot: draw it from results
        try:
            drawn = summary.plot(results, scratch / folder.name / summary.plot_name)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
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
    comparisons = {
        page: comparison_table(
            f"{page}: every run side by side",
            [(s.name, s.label, s.settings, s.headline) for s in sections],
        )
        for page, sections in ordered.items()
        if len(sections) > 1
    }
    return Report("weak2strong runs", str(runs_dir), ordered, skipped, comparisons=comparisons)


def effects_of(report: Report) -> list[tuple[str, list[str]]]:
    """Each run's effects in words, page by page, newest first; a run that a replicates run
    aggregates (one seed of several) is left to the aggregate."""
    sections = [section for page in report.pages.values() for section in page]
    aggregated = {name for section in sections for name in section.aggregates}
    return [
        (section.name, section.effects)
        for section in sections
        if section.effects and section.name not in aggregated
    ]


# ---- listing and comparing runs


@dataclass
class RunInfo:
    folder: Path
    command: str
    label: str  # run name and tags
    status: str
    settings: str  # the non-default settings, key=value
    headline: dict[str, float]
    started: str


def run_info(folder: Path) -> RunInfo | None:
    """What `w2s runs` shows of a run folder (None: not a run folder)."""
    match = RUN_FOLDER.match(folder.name)
    if match is None or not (folder / "config.yaml").is_file():
        return None
    command = summary_of(match["command"])
    meta = read_meta(folder)
    label = " ".join(
        [str(meta.get("name", "")), *(f"#{tag}" for tag in meta.get("tags", []))]
    ).strip()
    environment = _json_or_empty(folder / "env.json")
    results = _json_or_empty(folder / "results.json")
    steps = len(list((folder / "steps").glob("*"))) if (folder / "steps").is_dir() else 0
    if _locked(folder):
        status = f"running ({steps} steps)"
    elif not results and (folder / "results.json").exists():
        status = "damaged results.json (rerun)"
    elif not results:
        status = f"unfinished ({steps} steps)"
    elif results.get("schema") != SCHEMA:
        status = "older layout (rerun)"
    elif command.config_path and results.get("results_version", 1) < command.results_version:
        status = "stale"
    else:
        status = "finished"
    try:
        headline = command.headline(results) if results else {}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        headline = {}
    return RunInfo(
        folder,
        command.name,
        label,
        status,
        _settings(command, folder / "config.yaml"),
        headline,
        str(environment.get("started_at", "")),
    )


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _locked(folder: Path) -> bool:
    """Whether a run holds the folder's lock now."""
    import fcntl

    lock = folder / ".lock"
    if not lock.is_file():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def _settings(command: Command, config_file: Path) -> str:
    """The run's settings that differ from the defaults, as key=value."""
    from weak2strong.runs import load_config
    from weak2strong.runs.config import non_default_settings

    if not command.config_path:
        return ""
    try:
        changed = non_default_settings(load_config(command.config, config_file))
    except (W2SError, OSError, ValueError, TypeError):
        return "(unreadable config)"
    return " ".join(f"{key}={_flat(value)}" for key, value in dotted_keys(changed).items())


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    if not runs_dir.is_dir():
        raise W2SError(f"no runs folder at {runs_dir}")
    infos = [run_info(folder) for folder in sorted(runs_dir.iterdir()) if folder.is_dir()]
    found = [info for info in infos if info is not None]
    return sorted(found, key=lambda info: info.started, reverse=True)


def comparison_table(title: str, runs: list[tuple[str, str, str, dict[str, float]]]) -> ResultTable:
    """Runs side by side: one row per setting that differs and per headline number."""
    columns = ["", *[name for name, _, _, _ in runs]]
    rows = [["name / tags", *[label for _, label, _, _ in runs]]]
    settings = [dict(part.split("=", 1) for part in s.split() if "=" in part) for *_, s, _ in runs]
    keys = sorted({key for found in settings for key in found})
    for key in keys:
        values = [found.get(key, "(default)") for found in settings]
        if len(set(values)) > 1:
            rows.append([key, *values])
    numbers: list[str] = []
    for *_, headline in runs:
        numbers += [key for key in headline if key not in numbers]
    for key in numbers:
        cells = [
            "" if headline.get(key) is None else f"{headline[key]:.3f}" for *_, headline in runs
        ]
        rows.append([key, *cells])
    return ResultTable(title, columns, rows)


def build_report(runs_dir: str | Path, out: str | Path, fmt: str = "html") -> tuple[Path, Report]:
    """Write the report of every run under `runs_dir` to `out` (replaced as a whole).

    The report is built in a staging folder beside `out` and renamed into place, so `out`
    holds either the previous report or the complete new one. A folder at `out` that is
    not an earlier report, untouched since, is refused rather than replaced.
    """
    if fmt not in ("html", "markdown"):
        raise W2SError(f"unknown report format '{fmt}' (html or markdown)")
    runs_dir, out = Path(runs_dir).expanduser(), Path(out).expanduser()
    check_replaceable(out, "--out")  # an earlier report, untouched since, or nothing
    check_writable(out, "--out")
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
        write_manifest(staged, "w2s report")
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
