"""What a tune run says: the chance warning, its tables and its training curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from weak2strong.report import ResultTable, format_interval, lines_with_intervals
from weak2strong.runs.results import metric_records_of

# what training reports in results.json (the rest is the run's common layout)
TRAINING_KEYS = (
    "pairs",
    "sft_examples",
    "final_loss",
    "final_reward_accuracy",
    "final_reward_margin",
    "steps",
)


def chance_warning(results: dict[str, Any]) -> str | None:
    """Said when the tuned model ranks held-out pairs no better than chance: a search or ExPO
    steered by it steers by noise."""
    estimate = results.get("heldout_accuracy") or {}
    accuracy, low, high = estimate.get("value"), estimate.get("low"), estimate.get("high")
    if accuracy is None:
        return None
    if accuracy <= 0.5:
        return (
            f"the tuned model {results['model']} prefers the held-out chosen response in only "
            f"{accuracy:.0%} of pairs (chance: 50%): it has not learned the preference"
        )
    if low is not None and high is not None and low <= 0.5:
        return (
            f"the tuned model {results['model']} prefers the held-out chosen response in "
            f"{accuracy:.0%} of pairs [{low:.0%}, {high:.0%}]: not distinguishable from chance"
        )
    return None


def plot_tune(results: dict[str, Any], path: Path) -> Path | None:
    """The training curve: DPO loss and the batch's reward margin per optimiser step."""
    curve = results.get("curve") or []
    if not curve:
        return None
    steps = [point["step"] for point in curve]
    series = {
        "DPO loss": (steps, [p["loss"] for p in curve], [None] * len(curve), [None] * len(curve))
    }
    if all(point["reward_margin"] is not None for point in curve):
        margins = [float(p["reward_margin"]) for p in curve]
        series["reward margin (chosen − rejected, β-scaled log-ratio)"] = (
            steps,
            margins,
            [None] * len(curve),
            [None] * len(curve),
        )
    return lines_with_intervals(
        path,
        series,
        title=f"tuning {results['base']} by {results['method']}: training curve",
        xlabel="optimiser step",
        ylabel="per-batch value",
        reference_lines={"loss at the start, log 2": float(np.log(2))},
    )


def tune_tables(results: dict[str, Any]) -> list[ResultTable]:
    """What was tuned, how training ended, the held-out evaluation, and where the model is."""
    rows = [
        [key, f"{value:.4g}" if isinstance(value, float) else str(value)]
        for key, value in results.items()
        if key in (*TRAINING_KEYS, "heldout_pairs") and value is not None
    ]
    rows += [
        [record.metric, format_interval(record.to_json())] for record in metric_records_of(results)
    ]
    return [
        ResultTable(
            f"tuned {results['base']} by {results['method']}",
            ["result", "value"],
            rows,
            [f"model: {results['model']}"],
        )
    ]
