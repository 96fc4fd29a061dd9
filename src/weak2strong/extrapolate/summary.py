"""The table and reward-vs-α plot of an extrapolation run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from weak2strong.report import format_interval, print_table, scatter_with_intervals


def _survival(report: dict[str, Any]) -> str:
    overall = report.get("cast_survival", {}).get("all", {})
    fraction = overall.get("survived_fraction")
    if fraction is None:
        return "no update"
    ratio = overall.get("update_norm_ratio")
    return f"{fraction:.1%} of updated weights changed, ‖stored‖/‖fp32‖ update {ratio:.2f}"


def print_cast_survival(console: Console, report: dict[str, Any]) -> None:
    """Per tensor group: how much of the fp32 update survived the cast to the stored dtype."""
    overall = report.get("cast_survival", {}).get("all", {})
    if overall.get("relative_error") in (0.0, None):
        console.print(
            f"α={report['alpha']:g}: every update stored exactly "
            f"({', '.join(report.get('out_dtypes', []))})"
        )
        return
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
    title = (
        f"update kept after the cast to {', '.join(report.get('out_dtypes', []))} "
        f"(α={report['alpha']:g})"
    )
    columns = [
        "tensor group",
        "tensors",
        "updated weights changed",
        "‖stored‖/‖fp32‖",
        "rel. error",
    ]
    print_table(console, title, columns, rows)


def print_extrapolate_summary(console: Console, results: dict[str, Any]) -> None:
    if results["select_by"] == "none":
        for label, report in results["written"].items():
            cached = " (cached)" if report.get("cached") else ""
            console.print(f"{label}: {report['out']}{cached} — {_survival(report)}")
        last = list(results["written"].values())[-1]
        print_cast_survival(console, last)
        return
    rows = []
    for label, row in results["rows"].items():
        rows.append(
            [
                label + (" ★" if label == results["best"] else ""),
                f"{row['alpha']:g}",
                format_interval(row["reward"], 2),
                format_interval(row["reward_minus_aligned"], 2)
                if row["reward_minus_aligned"]
                else "",
            ]
        )
    direction = "higher" if results["higher_is_better"] else "lower"
    title = (
        f"{results['prompts']} ({results['test_prompts']} prompts, {results['new_tokens']} new "
        f"tokens): reward {results['scorer']} ({direction} is better, 95% bootstrap CI)"
    )
    print_table(console, title, ["model", "α", "mean reward", "reward − aligned"], rows)
    written = results["written"]
    console.print(
        f"kept {results['best']} → {results['out']} ({_survival(written)})"
        if results["best_alpha"] != 0
        else f"no α beat the aligned model; {results['out']} holds the aligned weights"
    )


def plot_extrapolate_summary(results: dict[str, Any], path: Path) -> Path | None:
    if results["select_by"] == "none":
        return None
    entries = sorted(results["rows"].items(), key=lambda item: item[1]["alpha"])
    widest = max(abs(row["alpha"]) for _, row in entries)
    return scatter_with_intervals(
        path,
        [label for label, _ in entries],
        [row["alpha"] for _, row in entries],
        [row["reward"]["value"] for _, row in entries],
        [row["reward"]["low"] for _, row in entries],
        [row["reward"]["high"] for _, row in entries],
        title=f"{results['prompts']}: reward vs α",
        xlabel="α (inputs at −1 … 0 in steps of the extrapolation direction)",
        ylabel=f"mean reward ({results['scorer']})",
        x_scale="symlog" if widest > 4 else "linear",
        connect=True,
    )
