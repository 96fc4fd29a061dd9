"""The table and reward-vs-α plot of an extrapolation run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.extrapolate.results import ExtrapolateResults
from weak2strong.report import (
    ResultTable,
    format_interval,
    reward_units,
    scatter_with_intervals,
    scorer_note,
)
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import to_json
from weak2strong.scoring.winrate import win_rate_table


def metric_records(results: ExtrapolateResults) -> list[MetricRecord]:
    """Mean reward of each model of the sweep at its α, and its difference from α = 0."""
    if results.select_by != "reward" or results.rows is None:
        return []
    reward = f"reward ({results.scorer})"
    higher = results.higher_is_better
    records = [
        metric_record(
            reward, label, to_json(row.reward), higher_is_better=higher, at={"alpha": row.alpha}
        )
        for label, row in results.rows.items()
    ]
    records += [
        metric_record(
            "difference",
            label,
            to_json(row.reward_minus_aligned),
            higher_is_better=higher,
            of=reward,
            baseline="aligned (α=0)",
            at={"alpha": row.alpha},
        )
        for label, row in results.rows.items()
        if row.reward_minus_aligned
    ]
    return records


def _survival(report: dict[str, Any]) -> str:
    overall = report.get("cast_survival", {}).get("all", {})
    fraction = overall.get("survived_fraction")
    if fraction is None:
        return "no update"
    ratio = overall.get("update_norm_ratio")
    return f"{fraction:.1%} of updated weights changed, ‖stored‖/‖fp32‖ update {ratio:.2f}"


def cast_survival_table(report: dict[str, Any]) -> ResultTable:
    """Per tensor group: how much of the fp32 update survived the cast to the stored dtype."""
    overall = report.get("cast_survival", {}).get("all", {})
    dtypes = ", ".join(report.get("out_dtypes", []))
    columns = [
        "tensor group",
        "tensors",
        "updated weights changed",
        "‖stored‖/‖fp32‖",
        "rel. error",
    ]
    title = f"update kept after the cast to {dtypes} (α={report['alpha']:g})"
    if overall.get("relative_error") in (0.0, None):
        return ResultTable(title, columns, [], [f"every update stored exactly ({dtypes})"])
    rows = []
    for group, entry in report.get("cast_survival", {}).items():
        if entry.get("survived_fraction") is None:
            continue
        rows.append(
            [
                group,
                str(entry["tensors"]),
                f"{entry['survived_fraction']:.1%}",
                f"{entry['update_norm_ratio']:.3f}",
                f"{entry['relative_error']:.3f}",
            ]
        )
    return ResultTable(title, columns, rows)


def extrapolate_tables(results: ExtrapolateResults) -> list[ResultTable]:
    """The α sweep's reward table, or (without a sweep) what was written and its cast losses."""
    if results.select_by == "none" or results.rows is None:
        last = cast_survival_table(list(results.written.values())[-1])
        last.notes = [
            f"{label}: {report['out']}{' (cached)' if report.get('cached') else ''} — "
            f"{_survival(report)}"
            for label, report in results.written.items()
        ] + last.notes
        return [last]
    rows = []
    for label, row in results.rows.items():
        difference = row.reward_minus_aligned
        rows.append(
            [
                label + (" ★" if label == results.best else ""),
                f"{row.alpha:g}",
                format_interval(row.reward, 2),
                format_interval(difference, 2) if difference else "",
            ]
        )
    direction = "higher" if results.higher_is_better else "lower"
    title = (
        f"{results.prompts} ({results.test_prompts} prompts, {results.new_tokens} new "
        f"tokens): reward {results.scorer} ({direction} is better, 95% bootstrap CI)"
    )
    kept = (
        f"kept {results.best} → {results.out} ({_survival(results.written)})"
        if results.best_alpha != 0
        else f"no α beat the aligned model; {results.out} holds the aligned weights"
    )
    columns = ["model", "α", "mean reward", "reward − aligned"]
    notes = [kept] + ([scorer_note(results.gold_scorer)] if results.gold_scorer else [])
    judged = (
        [win_rate_table("AlpacaEval win rates (judge:pairwise)", results.win_rates)]
        if results.win_rates
        else []
    )
    return [ResultTable(title, columns, rows, notes), *judged]


def plot_extrapolate_summary(results: ExtrapolateResults, path: Path) -> Path | None:
    if results.select_by == "none" or results.rows is None:
        return None
    entries = sorted(results.rows.items(), key=lambda item: item[1].alpha)
    widest = max(abs(row.alpha) for _, row in entries)
    return scatter_with_intervals(
        path,
        [label for label, _ in entries],
        [row.alpha for _, row in entries],
        [row.reward.value for _, row in entries],  # type: ignore[misc]
        [row.reward.low for _, row in entries],
        [row.reward.high for _, row in entries],
        title=f"{results.prompts}: reward vs α",
        xlabel="α (inputs at −1 … 0 in steps of the extrapolation direction)",
        ylabel=f"mean gold reward ({reward_units(results.scorer or '')})",
        x_scale="symlog" if widest > 4 else "linear",
        connect=True,
    )


def headline(results: ExtrapolateResults) -> dict[str, float]:
    """The chosen α and the reward of every model in the sweep (nothing when not swept)."""
    if results.select_by != "reward" or results.rows is None:
        return {}
    numbers = {"best α": float(results.best_alpha or 0.0)}
    for label, row in results.rows.items():
        numbers[f"{label} reward"] = row.reward.value  # type: ignore[assignment]
    return numbers


def example_tables(results: ExtrapolateResults, rows: list[dict[str, Any]]) -> list[ResultTable]:
    """The first prompts' responses of each model of the sweep, with their rewards."""
    prompts = list(dict.fromkeys(row["prompt"] for row in rows))[:2]
    shown = [
        [row["model"], row["prompt"] + " ▸ " + row["responses"][0], f"{row['reward']:.2f}"]
        for prompt in prompts
        for row in rows
        if row["prompt"] == prompt
    ]
    note = "▸ marks where the prompt ends; every response is in examples.jsonl"
    return [
        ResultTable("example generations", ["model", "prompt ▸ response", "reward"], shown, [note])
    ]
