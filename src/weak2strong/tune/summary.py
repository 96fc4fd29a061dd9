"""What a tune run says: the chance warning, its tables and its training curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weak2strong.report import ResultTable, format_interval, lines_with_intervals
from weak2strong.tune.results import TuneResults

# what training reports in results.json (the rest is the run's common layout)
TRAINING_KEYS = (
    "pairs",
    "sft_examples",
    "final_loss",
    "final_reward_accuracy",
    "final_reward_margin",
    "steps",
)


def chance_warning(results: TuneResults) -> str | None:
    """Said when the tuned model ranks held-out pairs no better than chance: a search or ExPO
    steered by it steers by noise."""
    estimate = results.heldout_accuracy
    accuracy, low, high = estimate.value, estimate.low, estimate.high
    if accuracy is None:
        return None
    if accuracy <= 0.5:
        return (
            f"the tuned model {results.model} prefers the held-out chosen response in only "
            f"{accuracy:.0%} of pairs (chance: 50%): it has not learned the preference"
        )
    if low is not None and high is not None and low <= 0.5:
        return (
            f"the tuned model {results.model} prefers the held-out chosen response in "
            f"{accuracy:.0%} of pairs [{low:.0%}, {high:.0%}]: not distinguishable from chance"
        )
    return None


def plot_tune(results: TuneResults, path: Path) -> Path | None:
    """The training curve: DPO loss and the batch's reward margin per optimiser step."""
    curve = results.curve or []
    if not curve:
        return None
    steps = [point.step for point in curve]
    none = [None] * len(curve)
    series = {"DPO loss": (steps, [p.loss for p in curve], none, none)}
    margins = [p.reward_margin for p in curve]
    if all(margin is not None for margin in margins):
        series["reward margin (chosen − rejected, β-scaled log-ratio)"] = (
            steps,
            [float(m) for m in margins if m is not None],
            none,
            none,
        )
    return lines_with_intervals(
        path,
        series,
        title=f"tuning {results.base} by {results.method}: training curve",
        xlabel="optimiser step",
        ylabel="per-batch value",
        reference_lines={"loss at the start, log 2": float(np.log(2))},
    )


def tune_tables(results: TuneResults) -> list[ResultTable]:
    """What was tuned, how training ended, the held-out evaluation, and where the model is."""
    rows = [
        [key, f"{value:.4g}" if isinstance(value, float) else str(value)]
        for key in (*TRAINING_KEYS, "heldout_pairs")
        if (value := getattr(results, key)) is not None
    ]
    rows += [
        ["held-out preference accuracy", format_interval(results.heldout_accuracy)],
        ["held-out reward margin", format_interval(results.heldout_margin)],
    ]
    return [
        ResultTable(
            f"tuned {results.base} by {results.method}",
            ["result", "value"],
            rows,
            [f"model: {results.model}"],
        )
    ]
