"""The sparsity-vs-metric table and plot of a lottery-ticket run."""

from __future__ import annotations

from pathlib import Path

from weak2strong.prune.results import PruneResults
from weak2strong.report import ResultTable, format_interval, lines_with_intervals
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import Estimate, to_json


def metric_records(results: PruneResults) -> list[MetricRecord]:
    """Test accuracy (and PGR on weak labels) of every method at every sparsity, over seeds."""
    metric = results.metric
    records = []
    for method, points in results.curves.items():
        for point in points:
            where = {"remaining": round(1 - point.sparsity, 6), "round": point.round}
            records.append(
                metric_record(metric, method, to_json(point.metric), kind="seeds", at=where)
            )
            if point.pgr:
                records.append(
                    metric_record(
                        "pgr", method, to_json(point.pgr), kind="seeds", of=metric, at=where
                    )
                )
    records += _imp_differences(results)
    if results.ceiling:
        records.append(
            metric_record(metric, "dense gold ceiling", to_json(results.ceiling), kind="seeds")
        )
    return records


def _imp_differences(results: PruneResults) -> list[MetricRecord]:
    """IMP minus each baseline at each round they share: per-seed differences (the same seed
    draws both), mean with a t-interval over the seeds."""
    from weak2strong.scoring import seed_interval

    imp = {point.round: point for point in results.curves["imp"]}
    records = []
    for method, points in results.curves.items():
        for point in points:
            ticket = imp.get(point.round)
            if method == "imp" or ticket is None:
                continue
            differences = [a - b for a, b in zip(ticket.per_seed, point.per_seed, strict=True)]
            where = {"remaining": round(1 - ticket.sparsity, 6), "round": point.round}
            records.append(
                metric_record(
                    "difference",
                    "imp",
                    seed_interval(differences),
                    kind="seeds",
                    of=results.metric,
                    baseline=method,
                    at=where,
                )
            )
    return records


def _plus_minus(interval: Estimate, digits: int) -> str:
    """`0.641 ± 0.080`: the table stays narrow; results.json keeps the bounds."""
    if interval.value is None or interval.low is None or interval.high is None:
        return format_interval(interval, digits)
    half = (interval.high - interval.low) / 2
    return f"{interval.value:.{digits}f} ± {half:.{digits}f}"


def prune_tables(results: PruneResults) -> list[ResultTable]:
    curves = results.curves
    methods = list(curves)
    rows = []
    for point in curves["imp"]:
        row = [f"{1 - point.sparsity:.1%}"]
        for method in methods:
            entry = {p.round: p for p in curves[method]}.get(point.round)
            cell = _plus_minus(entry.metric, 3) if entry else ""
            if entry and entry.pgr:
                cell += f"\nPGR {_plus_minus(entry.pgr, 2)}"
            if entry and entry.measures and STOP in entry.measures:
                cell += f"\nstop {_plus_minus(entry.measures[STOP], 0)}"
            row.append(cell)
        rows.append(row)
    seeds = len(results.seeds)
    stopped = bool(curves["imp"][0].measures)
    where = " at early stopping" if stopped else ""
    network = f" {results.network}" if results.network else ""
    title = (
        f"{results.task}{network}: test {results.metric}{where} by weights remaining, labels "
        f"{results.labels} (mean over {seeds} seed{'s' if seeds > 1 else ''} ± 95% t-interval)"
    )
    notes = []
    if stopped:
        notes.append(
            "stop: the early-stopping iteration (least validation loss); the accuracy is the "
            "test accuracy there (Frankle & Carbin 2019)"
        )
    if results.weak_accuracy is not None:
        notes.append(
            f"weak supervisor {results.labels}: {results.weak_accuracy:.3f}; dense ceiling "
            f"(gold labels): {format_interval(results.ceiling, 3)}"
        )
    return [ResultTable(title, ["weights remaining", *methods], rows, notes)]


STOP = "early-stop iteration"


def _plot_early_stopping(results: PruneResults, path: Path) -> None:
    """Frankle & Carbin's other panel: when each network stopped, by weights remaining."""
    series = {}
    for method, points in results.curves.items():
        stops = [p.measures[STOP] if p.measures else None for p in points]
        if any(stop is None for stop in stops):
            return
        series[method] = (
            [100 * (1 - p.sparsity) for p in points],
            [stop.value for stop in stops if stop],
            [stop.low for stop in stops if stop],
            [stop.high for stop in stops if stop],
        )
    lines_with_intervals(
        path,
        series,  # type: ignore[arg-type]
        title=f"{results.task} {results.network or ''}: early stopping (least validation loss; "
        f"bands: 95% t-interval over {len(results.seeds)} seeds)",
        xlabel="% of prunable weights remaining",
        ylabel="early-stop iteration",
        invert_x=True,
        x_scale="log",
    )


def plot_prune_summary(results: PruneResults, path: Path) -> Path:
    if results.curves["imp"][0].measures:
        _plot_early_stopping(results, path.with_name(f"{path.stem}-early-stop{path.suffix}"))
    series = {}
    for method, points in results.curves.items():
        series[method] = (
            [100 * (1 - p.sparsity) for p in points],
            [p.metric.value for p in points],
            [p.metric.low for p in points],
            [p.metric.high for p in points],
        )
    references: dict[str, float] = {}
    if results.weak_accuracy is not None:
        references["weak supervisor"] = results.weak_accuracy
        if results.ceiling and results.ceiling.value is not None:
            references["dense gold ceiling"] = results.ceiling.value
    shown = [v for _, values, _, _ in series.values() for v in values if v is not None]
    shown += list(references.values())
    return lines_with_intervals(
        path,
        series,  # type: ignore[arg-type]
        title=f"{results.task}{' ' + results.network if results.network else ''}: lottery "
        f"tickets ({results.labels} labels; "
        f"bands: 95% t-interval over {len(results.seeds)} seeds)",
        xlabel="% of prunable weights remaining",
        ylabel=f"test {results.metric}",
        invert_x=True,
        reference_lines=references,
        ylim=(min(shown) - 0.05, max(shown) + 0.05),
        x_scale="log" if results.network else "linear",  # Frankle & Carbin's axes
    )


def headline(results: PruneResults) -> dict[str, float]:
    """The dense student and each method at the highest sparsity reached."""
    curves = results.curves
    numbers: dict[str, float] = {"dense": curves["imp"][0].metric.value}  # type: ignore[dict-item]
    for method, points in curves.items():
        last = points[-1]
        numbers[f"{method} at {1 - last.sparsity:.1%}"] = last.metric.value  # type: ignore[assignment]
    return numbers
