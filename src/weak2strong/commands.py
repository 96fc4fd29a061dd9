"""The command registry: one record per command, from which the CLI and the report are made.

A record names the command's typed config, the class that runs it, where its runs appear
in the report, the tables and plot that show its results, the headline numbers that list
and compare runs, and the flags researchers know it by. Everything is imported lazily
(paths as strings), so `w2s --help` loads no model library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weak2strong.report import ResultTable

Tables = Callable[[dict[str, Any]], list[ResultTable]]
Plot = Callable[[dict[str, Any], Path], Path | None]


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Shortcut:
    """A flag for a config key, in the names researchers know (`--task` for `task.name`)."""

    flag: str
    key: str
    help: str
    multiple: bool = False  # repeatable; the values form the key's list
    expand_all: str | None = None  # "module:NAME" of the full list that `all` stands for


@dataclass(frozen=True)
class Command:
    name: str  # run folders are <name>-<hash>
    help: str
    config_path: str  # "module:Class" of its typed config
    runner_path: str  # "module:Class" made with (config, runs_dir), whose .run() runs it
    page: str  # the report page its runs appear on
    tables_path: str | None = None  # "module:function" of its result tables
    plot_path: str | None = None
    plot_name: str = ""
    headline_path: str | None = None  # "module:function": results → {name: number}
    # "module:function": (results, examples.jsonl rows) → tables of example outputs (report)
    examples_path: str | None = None
    shortcuts: tuple[Shortcut, ...] = ()
    # "module:Class" of its typed results: what its tables, plot and headline read (results
    # without one are read as the JSON dict)
    results_path: str | None = None
    cli_name: str | None = None  # the CLI's name, when it differs (generative mode)
    on_cli: bool = True  # False: made by another command (replicates), not run by name

    @property
    def config(self) -> type:
        config: type = _load(self.config_path)
        return config

    @property
    def results_version(self) -> int:
        return int(getattr(self.config, "RESULTS_VERSION", 1))

    def run(self, config: Any, runs_dir: str | Path) -> tuple[Any, dict[str, Any]]:
        runner = _load(self.runner_path)(config, str(runs_dir))
        result: tuple[Any, dict[str, Any]] = runner.run()
        return result

    def typed(self, results: dict[str, Any]) -> Any:
        """results.json's detail as the command's results type (the dict if it has none)."""
        if self.results_path is None:
            return results
        from weak2strong.runs.typed import from_json

        return from_json(_load(self.results_path), results)

    def tables(self, results: dict[str, Any]) -> list[ResultTable]:
        if self.tables_path is None:
            return scalar_table(results)
        tables: list[ResultTable] = _load(self.tables_path)(self.typed(results))
        return tables

    def example_tables(
        self, results: dict[str, Any], rows: list[dict[str, Any]]
    ) -> list[ResultTable]:
        if self.examples_path is None or not rows:
            return []
        tables: list[ResultTable] = _load(self.examples_path)(self.typed(results), rows)
        return tables

    def plot(self, results: dict[str, Any], path: Path) -> Path | None:
        if self.plot_path is None:
            return None
        drawn: Path | None = _load(self.plot_path)(self.typed(results), path)
        return drawn

    def headline(self, results: dict[str, Any]) -> dict[str, float]:
        """The few numbers that stand for a run (listing, comparison, seed aggregation)."""
        if self.headline_path is not None:
            numbers: dict[str, float] = _load(self.headline_path)(self.typed(results))
            return numbers
        from weak2strong.runs.results import metric_records_of, record_name

        return {
            record_name(record): record.value
            for record in metric_records_of({"metrics": results.get("metrics", [])})
            if record.value is not None
        }


def scalar_table(results: dict[str, Any]) -> list[ResultTable]:
    """Commands without a table of their own: their scalar results, one per row."""
    rows = []
    for key, value in results.items():
        if isinstance(value, bool | int | float | str) or value is None:
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            rows.append([key, shown])
    return [ResultTable("results", ["result", "value"], rows)]


_SEED = Shortcut("--seed", "seed", "the seed of everything random in the run")

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "generalize",
            "Weak-to-strong generalization: weak supervisor, strong student, ceiling, PGR.",
            "weak2strong.generalize.config:GeneralizeConfig",
            "weak2strong.generalize.pipeline:Generalize",
            results_path="weak2strong.generalize.results:GeneralizeResults",
            page="generalize",
            tables_path="weak2strong.generalize.summary:generalize_tables",
            plot_path="weak2strong.generalize.summary:plot_summary",
            plot_name="generalize.png",
            headline_path="weak2strong.generalize.summary:headline",
            shortcuts=(
                _SEED,
                Shortcut("--task", "task.name", "task name, data file or hub dataset id"),
                Shortcut("--weak", "weak", "weak supervisor: a model, or lexicon:vader|afinn"),
                Shortcut("--strong", "strong", "strong student model"),
                Shortcut(
                    "--strategy",
                    "strategies",
                    "naive, confidence, confident-subset, bootstrap (needs "
                    "strategy.intermediate), or all (repeatable)",
                    multiple=True,
                ),
            ),
        ),
        Command(
            "generalize-generative",
            "Generative weak-to-strong: weak LM completions become a strong LM's SFT targets "
            "(also: w2s generalize --generative).",
            "weak2strong.generalize.generative:GenerativeConfig",
            "weak2strong.generalize.generative:GenerativeGeneralize",
            results_path="weak2strong.generalize.results:GenerativeResults",
            page="generalize",
            tables_path="weak2strong.generalize.summary:generalize_tables",
            headline_path="weak2strong.generalize.summary:headline",
            shortcuts=(
                _SEED,
                Shortcut("--weak", "weak", "the weak LM"),
                Shortcut("--strong", "strong", "the strong LM"),
            ),
        ),
        Command(
            "tune",
            "Tune a small model towards a behaviour (DPO via TRL, or SFT), LoRA merged and saved.",
            "weak2strong.tune.config:TuneConfig",
            "weak2strong.tune.tuning:Tune",
            results_path="weak2strong.tune.results:TuneResults",
            page="tune",
            tables_path="weak2strong.tune.summary:tune_tables",
            plot_path="weak2strong.tune.summary:plot_tune",
            plot_name="tune.png",
            shortcuts=(
                _SEED,
                Shortcut("--method", "method", "dpo or sft"),
                Shortcut("--base", "base", "the model to tune"),
                Shortcut("--learning-rate", "training.learning_rate", "learning rate"),
                Shortcut("--epochs", "training.epochs", "epochs"),
                Shortcut("--batch-size", "training.batch_size", "global batch (pairs per step)"),
            ),
        ),
        Command(
            "search",
            "Weak-to-strong search: decode with a large model steered by a small tuned/untuned "
            "pair.",
            "weak2strong.search.config:SearchConfig",
            "weak2strong.search.pipeline:Search",
            results_path="weak2strong.search.results:SearchResults",
            page="search",
            tables_path="weak2strong.search.summary:search_tables",
            plot_path="weak2strong.search.summary:plot_search_summary",
            plot_name="search.png",
            headline_path="weak2strong.search.summary:headline",
            examples_path="weak2strong.search.summary:example_tables",
            shortcuts=(
                _SEED,
                Shortcut("--method", "methods", "sample, bon, cbs, eft, or all (repeatable)", True),
                Shortcut("--large", "large", "the large model to steer"),
                Shortcut("--tuned", "pair.tuned", "tuned small model (default: w2s tune's)"),
                Shortcut("--untuned", "pair.untuned", "untuned small model"),
                Shortcut("--backend", "backend", "transformers, vllm or api"),
            ),
        ),
        Command(
            "extrapolate",
            "Model extrapolation (ExPO): θ_aligned + α(θ_aligned − θ_sft), streamed shard by "
            "shard.",
            "weak2strong.extrapolate.config:ExtrapolateConfig",
            "weak2strong.extrapolate.pipeline:Extrapolate",
            results_path="weak2strong.extrapolate.results:ExtrapolateResults",
            page="extrapolate",
            tables_path="weak2strong.extrapolate.summary:extrapolate_tables",
            plot_path="weak2strong.extrapolate.summary:plot_extrapolate_summary",
            plot_name="extrapolate.png",
            headline_path="weak2strong.extrapolate.summary:headline",
            examples_path="weak2strong.extrapolate.summary:example_tables",
            shortcuts=(
                _SEED,
                Shortcut("--sft", "sft", "the SFT (starting) checkpoint"),
                Shortcut("--aligned", "aligned", "the aligned checkpoint (default: w2s tune's)"),
                Shortcut("--checkpoint", "checkpoints", "n-model form, weakest → strongest", True),
                Shortcut("--alpha", "alphas", "α, or several to sweep: 0.1,0.3,0.5"),
                Shortcut("--out", "out", "output folder (default: the run folder's model/)"),
                Shortcut("--output-dir", "out", "the same as --out"),
                Shortcut("--select-by", "select_by", "none (write each α) or reward"),
                Shortcut("--prompts", "prompts", "held-out prompts of the sweep: imdb or rtp"),
                Shortcut("--dtype", "dtype", "auto, float32, bfloat16, float16"),
                Shortcut("--shard-size", "shard_size", "largest output shard, e.g. 2GB"),
                Shortcut("--force", "force", "replace an existing output written by w2s"),
            ),
        ),
        Command(
            "prune",
            "Lottery tickets: iterative magnitude pruning with rewinding, against the baselines.",
            "weak2strong.prune.experiment:PruneConfig",
            "weak2strong.prune.experiment:Prune",
            results_path="weak2strong.prune.results:PruneResults",
            page="prune",
            tables_path="weak2strong.prune.summary:prune_tables",
            plot_path="weak2strong.prune.summary:plot_prune_summary",
            plot_name="prune.png",
            headline_path="weak2strong.prune.summary:headline",
            shortcuts=(
                Shortcut("--rounds", "lottery.rounds", "IMP rounds"),
                Shortcut("--fraction", "lottery.fraction", "fraction pruned per round"),
                Shortcut("--rewind-step", "lottery.rewind_step", "rewind point (0: init)"),
                Shortcut("--weak", "weak", "weak labels (lexicon:vader): weak-to-strong tickets"),
                Shortcut(
                    "--baseline",
                    "lottery.baselines",
                    "random, oneshot-magnitude, snip, grasp, synflow, reinit, or all (repeatable)",
                    multiple=True,
                    expand_all="weak2strong.prune.lottery:BASELINES",
                ),
                Shortcut("--learning-rate", "student.learning_rate", "the student's learning rate"),
                Shortcut("--epochs", "student.epochs", "epochs per training"),
                Shortcut("--batch-size", "student.batch_size", "global batch (examples per step)"),
            ),
        ),
        Command(
            "prune-lm",
            "One-shot pruning of a causal LM by perplexity (magnitude, Wanda, SparseGPT, OWL, "
            "N-of-M).",
            "weak2strong.prune.language_config:LanguagePruneConfig",
            "weak2strong.prune.language:LanguagePrune",
            results_path="weak2strong.prune.language_summary:LanguagePruneResults",
            page="prune",
            tables_path="weak2strong.prune.language_summary:language_tables",
            headline_path="weak2strong.prune.language_summary:language_headline",
            plot_path="weak2strong.prune.language_summary:plot_language",
            shortcuts=(
                _SEED,
                Shortcut("--model", "model", "the causal LM to prune"),
                Shortcut(
                    "--method", "methods", "magnitude, wanda, sparsegpt (repeatable)", multiple=True
                ),
                Shortcut(
                    "--sparsity", "sparsities", "0.5, 0.7, 2:4, ... (repeatable)", multiple=True
                ),
            ),
        ),
        Command(
            "replicates",
            "Runs of one config that differ only in their seed, aggregated "
            "(w2s <command> --seeds 0,1,2).",
            "weak2strong.replicates:ReplicatesConfig",
            "weak2strong.replicates:Replicates",
            results_path="weak2strong.replicates:ReplicatesResults",
            page="replicates",
            tables_path="weak2strong.replicates:replicates_tables",
            headline_path="weak2strong.replicates:replicates_headline",
            on_cli=False,
        ),
        Command(
            "check",
            "Verify the prepared assets, then load the embedded model and tasks offline.",
            "weak2strong.check:CheckConfig",
            "weak2strong.check:Check",
            results_path="weak2strong.check:CheckResults",
            page="check",
            tables_path="weak2strong.check:check_tables",
            shortcuts=(_SEED,),
        ),
    )
}


def command_of(name: str) -> Command | None:
    """The command whose run folders are named `name-<hash>`, if any."""
    return COMMANDS.get(name)
