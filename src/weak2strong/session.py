"""Running a registered command from the command line: its config resolved, printed or planned
(dry run), run once or as replicates over seeds, named and tagged, its results shown."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from weak2strong import distributed
from weak2strong.commands import COMMANDS, Command
from weak2strong.errors import W2SError, shown
from weak2strong.fileio import read_json, write_json
from weak2strong.report import ResultTable, format_interval, print_table
from weak2strong.runs import Run, config_hash, config_to_dict, load_config
from weak2strong.runs.config import non_default_settings
from weak2strong.runs.folder import META_FILE
from weak2strong.runs.results import metric_record, record_name
from weak2strong.settings import SEED_RANGE, setting

# the settings that name a model, by their last key part
MODEL_KEYS = {
    "weak", "strong", "large", "tuned", "untuned", "base", "sft", "aligned", "encoder",
    "intermediate", "model", "checkpoints",
}  # fmt: skip


def run_command(
    command: Command,
    config_file: str | None,
    overrides: list[str],
    *,
    runs_dir: str,
    print_config: bool = False,
    dry_run: bool = False,
    seeds: str | None = None,
    run_name: str | None = None,
    tags: list[str] | None = None,
    console: Console,
) -> None:
    seed_list = _seeds(seeds)
    fields = {item.name for item in dataclasses.fields(command.config)}
    if seed_list and "seed" not in fields:
        if "seeds" not in fields:
            raise W2SError(f"{command.name} has no seed to replicate over")
        overrides = [*overrides, f"seeds={seed_list}"]  # the command runs its seeds itself
        seed_list = []
    config: Any = load_config(command.config, config_file, overrides)
    if print_config:
        print(yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True), end="")
        return
    if dry_run:
        show_plan(command, config, runs_dir, console)
        return
    if seed_list:
        replicate(command, config, seed_list, runs_dir, run_name, tags or [], console)
        return
    run_once(command, config, runs_dir, run_name, tags or [], console, show=True)


def _seeds(text: str | None) -> list[int]:
    if text is None:
        return []
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise W2SError(f"--seeds takes integers like 0,1,2, got {shown(text)}") from None
    if not seeds:
        raise W2SError("--seeds needs at least one seed, like 0,1,2")
    if len(seeds) != len(set(seeds)):
        raise W2SError("each seed may appear once in --seeds")
    outside = [seed for seed in seeds if not SEED_RANGE.allows(seed)]
    if outside:
        raise W2SError(f"--seeds must be in {SEED_RANGE}, got {outside[0]}")
    return seeds


def run_once(
    command: Command,
    config: Any,
    runs_dir: str,
    run_name: str | None,
    tags: list[str],
    console: Console,
    *,
    show: bool,
) -> tuple[Path, dict[str, Any]]:
    from weak2strong.tracking import report_run, run_group

    tracked_name = run_name or f"{command.name}-{config_hash(config)}"
    with run_group(tracked_name, tags):
        run, results = command.run(config, runs_dir)
    report_run(tracked_name, config_to_dict(config), results.get("metrics", []), tags)
    if distributed.is_main():
        label(run.path, run_name, tags)
        if show:
            from weak2strong.summaries import show_results

            show_results(console, command.name, run.path, results)
    return run.path, results


def label(folder: Path, name: str | None, tags: list[str]) -> None:
    """Record a run's name and tags (the name replaces, tags add up)."""
    meta = read_meta(folder)
    if name is None and not tags:
        return
    if name is not None:
        meta["name"] = name
    meta["tags"] = sorted(set(meta.get("tags", [])) | set(tags))
    write_json(folder / META_FILE, meta)
    results_file = folder / "results.json"
    if results_file.is_file():  # results.json names its run too
        results = read_json(results_file)
        results["run"].update(name=meta.get("name"), tags=meta["tags"])
        write_json(results_file, results)


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / META_FILE
    try:
        meta = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        meta = {}
    return meta if isinstance(meta, dict) else {}


# ---- dry run


def describe_model(name: str) -> str:
    from weak2strong.models import embedded
    from weak2strong.models.assets import prepared_dir

    if not name:
        return "w2s tune's default model (trained on first use)"
    if name.startswith("lexicon:"):
        return "a lexicon (no model)"
    model = embedded(name)
    if model is not None:
        prepared = prepared_dir(model) is not None
        return "embedded, " + ("prepared" if prepared else "prepared on first use")
    if Path(name).expanduser().is_dir():
        return f"local folder {Path(name).expanduser().resolve()}"
    return "hub id (downloaded unless cached)"


def show_plan(command: Command, config: Any, runs_dir: str, console: Console) -> None:
    """What the command would do with this config, and what is cached already."""
    from weak2strong.cli_commands import leaves

    folder = Path(runs_dir).expanduser() / f"{command.name}-{config_hash(config)}"
    steps = sorted(p.stem for p in (folder / "steps").glob("*") if p.is_file())
    rows = [["run folder", str(folder.resolve())]]
    if (folder / "results.json").is_file():
        rows.append(["state", "finished: a rerun reads every step from the cache"])
    elif folder.is_dir():
        rows.append(["state", f"started: {len(steps)} step(s) cached"])
    else:
        rows.append(["state", "new: every step is computed"])
    rows += [["cached step", step] for step in steps]
    for leaf in leaves(type(config)):
        if leaf.key.split(".")[-1] not in MODEL_KEYS:
            continue
        value = _value(config, leaf.key)
        for name in value if isinstance(value, list) else [value]:
            if isinstance(name, str):
                rows.append([f"model {leaf.key}", f"{name or '(default)'}: {describe_model(name)}"])
    task = getattr(config, "task", None)
    if task is not None and hasattr(task, "max_per_split"):
        from weak2strong.data import load_task

        data = load_task(task, seed=int(getattr(config, "seed", 0)))
        counts = data.counts()
        rows.append(
            [
                "data",
                f"{data.name}: train {sum(counts['train'].values())}, "
                f"test {sum(counts['test'].values())} ({' / '.join(data.label_names)})",
            ]
        )
    for key in ("prompts", "test_prompts", "train_prompts"):
        if hasattr(config, key):
            rows.append([key, str(getattr(config, key))])
    settings = non_default_settings(config)
    rows.append(["settings changed", yaml.safe_dump(settings, sort_keys=True).strip() or "none"])
    print_table(console, ResultTable(f"w2s {command.name} --dry-run", ["", ""], rows))


def _value(config: Any, key: str) -> Any:
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


# ---- replicates over seeds


@dataclass
class ReplicatesConfig:
    command: str = setting("", help="the command replicated")
    runs: list[str] = setting(help="run folders of the replicates, one per seed", factory=list)
    seeds: list[int] = setting(help="their seeds", factory=list)


class Replicates:
    """Aggregates finished runs of one config that differ only in their seed."""

    def __init__(self, config: ReplicatesConfig, runs_dir: str) -> None:
        self.config = config
        self.runs_dir = runs_dir

    def _per_seed(self) -> dict[str, list[dict[str, Any]]]:
        return {
            str(seed): read_json(Path(self.runs_dir) / name / "results.json")["metrics"]
            for seed, name in zip(self.config.seeds, self.config.runs, strict=True)
        }

    def run(self) -> tuple[Run, dict[str, Any]]:
        from weak2strong.scoring import seed_interval

        # the main process wrote the replicates' results: it reads them and hands them on
        # (another process may run ahead of those writes, or on a machine without the disk)
        per_seed: dict[str, list[dict[str, Any]]] = distributed.main_decides(self._per_seed)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for records in per_seed.values():
            for record in records:
                grouped.setdefault(record_name(record), []).append(record)
        aggregate = []
        for records in grouped.values():
            values = [r["value"] for r in records if r["value"] is not None]
            if not values:
                continue
            first = records[0]
            qualifiers = {key: first[key] for key in ("of", "baseline", "at") if key in first}
            aggregate.append(
                metric_record(
                    first["metric"],
                    first["model"],
                    seed_interval(values),
                    kind="seeds",
                    higher_is_better=first["higher_is_better"],
                    **qualifiers,
                )
            )
        with Run.open("replicates", self.config, self.runs_dir) as run:
            results = {
                "replicated": self.config.command,
                "seeds": self.config.seeds,
                "runs": self.config.runs,
                "per_seed": {
                    seed: {record_name(r): r["value"] for r in records}
                    for seed, records in per_seed.items()
                },
            }
            run.write_results(results, aggregate)
            return run, results


def replicate(
    command: Command,
    config: Any,
    seeds: list[int],
    runs_dir: str,
    run_name: str | None,
    tags: list[str],
    console: Console,
) -> None:
    folders = []
    for seed in seeds:
        console.print(f"[bold]seed {seed}[/bold] ({seeds.index(seed) + 1} of {len(seeds)})")
        folder, _ = run_once(
            command,
            dataclasses.replace(config, seed=seed),
            runs_dir,
            None if run_name is None else f"{run_name} (seed {seed})",
            tags,
            console,
            show=False,
        )
        folders.append(folder.name)
    replicates = ReplicatesConfig(command=command.name, runs=folders, seeds=seeds)
    run_once(COMMANDS["replicates"], replicates, runs_dir, run_name, tags, console, show=True)


def replicates_tables(results: dict[str, Any]) -> list[ResultTable]:
    seeds = results["seeds"]
    columns = ["", "mean [95% t-interval]", *[f"seed {seed}" for seed in seeds]]
    rows = []
    for record in results["metrics"]:
        key = record_name(record)
        values = [results["per_seed"][str(seed)].get(key) for seed in seeds]
        rows.append(
            [
                key,
                format_interval(record, 3),
                *["" if value is None else f"{value:.3f}" for value in values],
            ]
        )
    title = f"{results['replicated']} over {len(seeds)} seeds"
    return [ResultTable(title, columns, rows, [f"runs: {', '.join(results['runs'])}"])]


def replicates_headline(results: dict[str, Any]) -> dict[str, float]:
    return {
        record_name(record): record["value"]
        for record in results["metrics"]
        if record.get("value") is not None
    }
