"""The results table and reward-vs-compute plot of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.report import (
    ResultTable,
    format_interval,
    reward_units,
    scatter_with_intervals,
    scorer_note,
)
from weak2strong.runs.results import metric_record


def metric_records(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Mean gold reward per method, and its difference from plain sampling."""
    reward = f"reward ({results['scorer']})"
    records = [
        metric_record(reward, method, entry["reward"])
        for method, entry in results["methods"].items()
    ]
    records += [
        metric_record(
            "difference", method, entry["reward_minus_sample"], of=reward, baseline="sample"
        )
        for method, entry in results["methods"].items()
        if entry["reward_minus_sample"]
    ]
    return records


def search_tables(results: dict[str, Any]) -> list[ResultTable]:
    rows = []
    for entry in results["methods"].values():
        rows.append(
            [
                entry["label"],
                format_interval(entry["reward"], 2),
                format_interval(entry["reward_minus_sample"], 2)
                if entry["reward_minus_sample"]
                else "",
                f"{entry['tokens_per_prompt']:,.0f}",
                f"{entry['seconds']:,.1f}",
            ]
        )
    title = (
        f"{results['prompts']} ({results['test_prompts']} prompts, {results['new_tokens']} new "
        f"tokens): large {results['large']}, pair {results['tuned']} / {results['untuned']}; "
        f"gold reward {results['scorer']} (95% bootstrap CI)"
    )
    columns = ["method", "mean reward", "reward − sample", "tokens sampled / prompt", "seconds"]
    notes = [f"skipped {m}: {reason}" for m, reason in results.get("skipped", {}).items()]
    if "gold_scorer" in results:
        notes.append(scorer_note(results["gold_scorer"]))
    backend = results.get("backend", "transformers")
    if results.get("startup_seconds"):  # runs before the backends' start-up was timed apart
        loads = ", ".join(f"{role} {s:.1f}s" for role, s in results["startup_seconds"].items())
        dtypes = ", ".join(f"{role} {d}" for role, d in results.get("dtypes", {}).items())
        notes.append(f"{backend} backend; seconds exclude start-up ({loads}); dtypes: {dtypes}")
    return [ResultTable(title, columns, rows, notes=notes)]


def plot_search_summary(results: dict[str, Any], path: Path) -> Path:
    entries = list(results["methods"].values())
    return scatter_with_intervals(
        path,
        [e["label"] for e in entries],
        [e["tokens_per_prompt"] for e in entries],
        [e["reward"]["value"] for e in entries],
        [e["reward"]["low"] for e in entries],
        [e["reward"]["high"] for e in entries],
        title=f"{results['prompts']}: reward vs compute ({results['large']})",
        xlabel="large-model tokens sampled per prompt",
        ylabel=f"mean gold reward ({reward_units(results['scorer'])})",
        x_scale="log",
    )


def headline(results: dict[str, Any]) -> dict[str, float]:
    """Mean gold reward of each decoder."""
    return {
        f"{entry['label']} reward": entry["reward"]["value"]
        for entry in results["methods"].values()
    }


def example_tables(results: dict[str, Any], rows: list[dict[str, Any]]) -> list[ResultTable]:
    """The first prompts' responses of every method, side by side with their rewards."""
    prompts = list(dict.fromkeys(row["prompt"] for row in rows))[:3]
    labels = {method: entry["label"] for method, entry in results["methods"].items()}
    shown = [
        [labels.get(row["method"], row["method"]), row["prompt"] + " ▸ " + row["response"],
         f"{row['reward']:.2f}"]
        for prompt in prompts
        for row in rows
        if row["prompt"] == prompt
    ]  # fmt: skip
    note = "▸ marks where the prompt ends; every response is in examples.jsonl"
    return [
        ResultTable("example generations", ["method", "prompt ▸ response", "reward"], shown, [note])
    ]
