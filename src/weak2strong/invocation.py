"""One invocation of a registered command: its config resolved from a file, overrides and
seeds, its dry-run plan, and its run (once, or as replicates over seeds), named and tagged,
with its plot drawn into the run folder. Nothing here prints: the CLI shows what it returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weak2strong import distributed
from weak2strong.commands import COMMANDS, Command
from weak2strong.errors import W2SError, shown
from weak2strong.replicates import ReplicatesConfig
from weak2strong.report import ResultTable
from weak2strong.runs import config_hash, config_to_dict, load_config
from weak2strong.runs.config import leaves, non_default_settings
from weak2strong.runs.folder import label_run
from weak2strong.settings import SEED_RANGE

# the settings that name a model, by their last key part
MODEL_KEYS = {
    "weak", "strong", "large", "tuned", "untuned", "base", "sft", "aligned", "encoder",
    "intermediate", "model", "checkpoints",
}  # fmt: skip


@dataclass
class Outcome:
    """A finished run of an invocation: what the CLI shows."""

    command: Command
    folder: Path
    results: dict[str, Any]
    plot: Path | None  # drawn into the run folder (main process only)


def resolve(
    command: Command, config_file: str | None, overrides: list[str], seeds: str | None
) -> tuple[Any, list[int]]:
    """The config, and the seeds to replicate it over (none: one run). A command that runs
    its seeds itself (prune) takes --seeds as its own setting."""
    seed_list = _seeds(seeds)
    fields = {item.name for item in dataclasses.fields(command.config)}
    if seed_list and "seed" not in fields:
        if "seeds" not in fields:
            raise W2SError(f"{command.name} has no seed to replicate over")
        overrides = [*overrides, f"seeds={seed_list}"]
        seed_list = []
    return load_config(command.config, config_file, overrides), seed_list


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
    command: Command, config: Any, runs_dir: str, run_name: str | None, tags: list[str]
) -> Outcome:
    from weak2strong.tracking import report_run, run_group

    tracked_name = run_name or f"{command.name}-{config_hash(config)}"
    with run_group(tracked_name, tags):
        run, results = command.run(config, runs_dir)
    report_run(tracked_name, config_to_dict(config), results.get("metrics", []), tags)
    plot = None
    if distributed.is_main():
        label_run(run.path, run_name, tags)
        if command.plot_path is not None:
            plot = command.plot(results, run.path / "plots" / command.plot_name)
    return Outcome(command, run.path, results, plot)


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


def plan(command: Command, config: Any, runs_dir: str) -> ResultTable:
    """What the command would do with this config, and what is cached already."""
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
    return ResultTable(f"w2s {command.name} --dry-run", ["", ""], rows)


def _value(config: Any, key: str) -> Any:
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


# ---- replicates over seeds


def replicate(
    command: Command,
    config: Any,
    seeds: list[int],
    runs_dir: str,
    run_name: str | None,
    tags: list[str],
    starting: Callable[[int, int], None],
) -> Outcome:
    """One run per seed (`starting(seed, number)` before each), then their replicates run."""
    folders = []
    for number, seed in enumerate(seeds, start=1):
        starting(seed, number)
        outcome = run_once(
            command,
            dataclasses.replace(config, seed=seed),
            runs_dir,
            None if run_name is None else f"{run_name} (seed {seed})",
            tags,
        )
        folders.append(outcome.folder.name)
    replicates = ReplicatesConfig(command=command.name, runs=folders, seeds=seeds)
    return run_once(COMMANDS["replicates"], replicates, runs_dir, run_name, tags)
