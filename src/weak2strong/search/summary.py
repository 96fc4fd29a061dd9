"""The results table and reward-vs-compute plot of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.report import ResultTable, format_interval, scatter_with_intervals


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
    skipped = [f"skipped {m}: {reason}" for m, reason in results.get("skipped", {}).items()]
    return [ResultTable(title, columns, rows, notes=skipped)]


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
        ylabel=f"mean gold reward ({results['scorer']})",
        x_scale="log",
    )
