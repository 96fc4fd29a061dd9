"""The results table and reward-vs-compute plot of a search run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.report import (
    ResultTable,
    format_interval,
    lines_with_intervals,
    reward_units,
    scatter_with_intervals,
    scorer_note,
)
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import to_json
from weak2strong.scoring.winrate import win_rate_table
from weak2strong.search.results import CurvePoint, SearchResults


def metric_records(results: SearchResults) -> list[MetricRecord]:
    """Mean gold reward per method, and its difference from plain sampling."""
    reward = f"reward ({results.scorer})"
    records = [
        metric_record(reward, method, to_json(entry.reward))
        for method, entry in results.methods.items()
    ]
    records += [
        metric_record(
            "difference", method, to_json(entry.reward_minus_sample), of=reward, baseline="sample"
        )
        for method, entry in results.methods.items()
        if entry.reward_minus_sample
    ]
    for point in results.curve or []:
        records.append(
            metric_record(reward, point.method, to_json(point.reward), at={"N": point.n})
        )
        if point.reward_minus_sample:
            records.append(
                metric_record(
                    "difference",
                    point.method,
                    to_json(point.reward_minus_sample),
                    of=reward,
                    baseline="sample",
                    at={"N": point.n},
                )
            )
    return records


def search_tables(results: SearchResults) -> list[ResultTable]:
    rows = []
    for entry in results.methods.values():
        difference = entry.reward_minus_sample
        rows.append(
            [
                entry.label,
                format_interval(entry.reward, 2),
                format_interval(difference, 2) if difference else "",
                f"{entry.tokens_per_prompt:,.0f}",
                f"{entry.seconds:,.1f}",
            ]
        )
    title = (
        f"{results.prompts} ({results.test_prompts} prompts, {results.new_tokens} new "
        f"tokens): large {results.large}, pair {results.tuned} / {results.untuned}; "
        f"gold reward {results.scorer} (95% bootstrap CI)"
    )
    columns = ["method", "mean reward", "reward − sample", "tokens sampled / prompt", "seconds"]
    notes = [f"skipped {m}: {reason}" for m, reason in results.skipped.items()]
    if results.gold_scorer is not None:
        notes.append(scorer_note(results.gold_scorer))
    if results.startup_seconds:  # runs before the backends' start-up was timed apart
        loads = ", ".join(f"{role} {s:.1f}s" for role, s in results.startup_seconds.items())
        dtypes = ", ".join(f"{role} {d}" for role, d in results.dtypes.items())
        notes.append(
            f"{results.backend} backend; seconds exclude start-up ({loads}); dtypes: {dtypes}"
        )
    judged = (
        [win_rate_table("AlpacaEval win rates (judge:pairwise)", results.win_rates)]
        if results.win_rates
        else []
    )
    return [ResultTable(title, columns, rows, notes=notes), *judged, *curve_tables(results)]


def curve_tables(results: SearchResults) -> list[ResultTable]:
    """Reward against compute N = W·K: best-of-N beside CBS(W, N/W, L)."""
    if not results.curve:
        return []
    by_n: dict[int, dict[str, CurvePoint]] = {}
    for point in results.curve:
        by_n.setdefault(point.n, {})[point.method] = point
    rows = []
    for n, pair in sorted(by_n.items()):
        row = [str(n)]
        for method in ("bon", "cbs"):
            point = pair[method]
            difference = point.reward_minus_sample
            row += [
                point.label,
                format_interval(point.reward, 2),
                format_interval(difference, 2) if difference else "",
                f"{point.tokens_per_prompt:,.0f}",
            ]
        rows.append(row)
    columns = ["N = W·K"]
    for method in ("best-of-N", "CBS"):
        columns += [method, "mean reward", "− sample", "tokens / prompt"]
    note = (
        "best-of-n for n < N is the best of the bon run's first n candidates (the same "
        "seeds), its tokens n × that run's mean candidate length"
    )
    return [ResultTable("reward against compute", columns, rows, notes=[note])]


def plot_search_summary(results: SearchResults, path: Path) -> Path:
    """Reward against tokens sampled per method; with a curve, search-curve.png beside it."""
    if results.curve:
        plot_curve(results, path.with_name("search-curve.png"))
    entries = list(results.methods.values())
    return scatter_with_intervals(
        path,
        [e.label for e in entries],
        [e.tokens_per_prompt for e in entries],
        [e.reward.value for e in entries],  # type: ignore[misc]
        [e.reward.low for e in entries],
        [e.reward.high for e in entries],
        title=f"{results.prompts}: reward vs compute ({results.large})",
        xlabel="large-model tokens sampled per prompt",
        ylabel=f"mean gold reward ({reward_units(results.scorer)})",
        x_scale="log",
    )


def plot_curve(results: SearchResults, path: Path) -> Path:
    series = {}
    for method, name in (("bon", "best-of-N"), ("cbs", "CBS (W·K = N)")):
        points = sorted((p for p in results.curve or [] if p.method == method), key=lambda p: p.n)
        series[name] = (
            [p.n for p in points],
            [p.reward.value for p in points],
            [p.reward.low for p in points],
            [p.reward.high for p in points],
        )
    sample = results.methods.get("sample")
    return lines_with_intervals(
        path,
        series,  # type: ignore[arg-type]
        title=f"{results.prompts}: reward against N = W·K ({results.large})",
        xlabel="N = W·K (candidates per prompt)",
        ylabel=f"mean gold reward ({reward_units(results.scorer)})",
        reference_lines={"sample": sample.reward.value} if sample else None,  # type: ignore[dict-item]
        x_scale="log",
    )


def headline(results: SearchResults) -> dict[str, float]:
    """Mean gold reward of each decoder."""
    return {
        f"{entry.label} reward": entry.reward.value  # type: ignore[misc]
        for entry in results.methods.values()
    }


def example_tables(results: SearchResults, rows: list[dict[str, Any]]) -> list[ResultTable]:
    """The first prompts' responses of every method, side by side with their rewards."""
    prompts = list(dict.fromkeys(row["prompt"] for row in rows))[:3]
    labels = {method: entry.label for method, entry in results.methods.items()}
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
