"""The results table and plot of a generalize run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong.report import ResultTable, bar_chart_with_intervals, format_interval

TABLE_METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc")


def model_order(results: dict[str, Any]) -> list[str]:
    return ["weak", *[f"w2s:{name}" for name in results["strategies"]], "ceiling"]


def generalize_tables(results: dict[str, Any]) -> list[ResultTable]:
    """The results table of a classification or a generative run."""
    if "mean_score" in results:
        return [generative_table(results)]
    return [classification_table(results)]


def classification_table(results: dict[str, Any]) -> ResultTable:
    boot = results["bootstrap"]
    rows = []
    for name in model_order(results):
        row = [name, *[format_interval(boot[metric][name]) for metric in TABLE_METRICS]]
        row.append(
            format_interval(boot["accuracy"].get(f"pgr:{name}")) if name.startswith("w2s:") else ""
        )
        rows.append(row)
    sizes = results["sizes"]
    title = (
        f"{results['task']}: weak {results['weak']} → strong {results['strong']} "
        f"(A={sizes['weak_train_a']}, B={sizes['student_train_b']}, test={sizes['test']}; 95% bootstrap CI)"
    )
    return ResultTable(title, ["model", *TABLE_METRICS, "PGR (accuracy)"], rows)


def plot_summary(results: dict[str, Any], path: Path) -> Path:
    accuracy = results["bootstrap"]["accuracy"]
    names = model_order(results)
    notes = []
    for name in names:
        pgr = accuracy.get(f"pgr:{name}")
        notes.append(f"PGR {format_interval(pgr, 2)}" if pgr is not None else None)
    colors = [
        "#9e9e9e" if n == "weak" else "#2e7d32" if n == "ceiling" else "#1565c0" for n in names
    ]
    return bar_chart_with_intervals(
        path,
        names,
        [accuracy[n]["value"] for n in names],
        [accuracy[n]["low"] for n in names],
        [accuracy[n]["high"] for n in names],
        title=f"{results['task']}: {results['weak']} → {results['strong']}",
        ylabel="test accuracy",
        annotations=notes,
        colors=colors,
    )


def generative_table(results: dict[str, Any]) -> ResultTable:
    table = results["mean_score"]
    direction = "higher" if results["scorer_higher_is_better"] else "lower"
    rows = []
    for name in ("weak", "strong-base", "w2s", "ceiling"):
        pgr = table.get(f"pgr:{name}")
        rows.append(
            [name, format_interval(table[name]), format_interval(pgr) if pgr is not None else ""]
        )
    sizes = results["sizes"]
    title = (
        f"generative {results['prompts']}: weak {results['weak']} → strong {results['strong']}, "
        f"{results['scorer']} score ({direction} is better; {sizes['train_prompts']} train / "
        f"{sizes['test_prompts']} test prompts; 95% bootstrap CI)"
    )
    return ResultTable(title, ["model", "mean gold score", "PGR"], rows)


def headline(results: dict[str, Any]) -> dict[str, float]:
    """Test accuracy of each model and PGR of each strategy (generative: mean scores)."""
    numbers: dict[str, float] = {}
    if "mean_score" in results:
        for name, entry in results["mean_score"].items():
            if entry.get("value") is not None:
                numbers[f"{name} score" if not name.startswith("pgr:") else name] = entry["value"]
        return numbers
    accuracy = results["bootstrap"]["accuracy"]
    for name in model_order(results):
        numbers[f"{name} accuracy"] = accuracy[name]["value"]
        pgr = accuracy.get(f"pgr:{name}")
        if pgr is not None and pgr.get("value") is not None:
            numbers[f"PGR {name}"] = pgr["value"]
    return numbers
