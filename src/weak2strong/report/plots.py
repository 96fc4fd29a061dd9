"""Plots written atomically as PNG files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def bar_chart_with_intervals(
    path: Path,
    labels: Sequence[str],
    values: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str,
    ylabel: str,
    annotations: Sequence[str | None] = (),
    colors: Sequence[str] | None = None,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lower = [v - lo if lo is not None else 0.0 for v, lo in zip(values, lows, strict=True)]
    upper = [hi - v if hi is not None else 0.0 for v, hi in zip(values, highs, strict=True)]
    figure, axis = plt.subplots(figsize=(max(4.0, 1.3 * len(labels)), 3.6))
    axis.bar(labels, values, yerr=[lower, upper], capsize=4, color=colors)
    for index, note in enumerate(annotations):
        if note:
            axis.annotate(
                note,
                (index, values[index] + upper[index]),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 3),
                textcoords="offset points",
            )
    floor = min(v - lo for v, lo in zip(values, lower, strict=True))
    axis.set_ylim(
        max(0.0, floor - 0.05), max(v + up for v, up in zip(values, upper, strict=True)) + 0.05
    )
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    axis.tick_params(axis="x", labelrotation=20)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)
    return path
