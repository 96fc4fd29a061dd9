"""Plots written atomically as PNG files."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# xs, values, interval lows, interval highs
Series = tuple[Sequence[float], Sequence[float], Sequence[float | None], Sequence[float | None]]


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
    chance: float | None = None,
) -> Path:
    """Bars with intervals; with `chance` (an accuracy's chance level) the axis starts at
    chance or below and a dashed line marks it."""
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
    bottom = max(0.0, floor - 0.05)
    if chance is not None:
        bottom = min(bottom, chance)
        axis.axhline(chance, linestyle="--", linewidth=1, color="grey")
        axis.annotate(
            "chance", (1.0, chance), xycoords=("axes fraction", "data"), ha="right", va="bottom",
            fontsize=8, color="grey",
        )  # fmt: skip
    axis.set_ylim(bottom, max(v + up for v, up in zip(values, upper, strict=True)) + 0.05)
    _title(axis, title)
    axis.set_ylabel(ylabel)
    axis.tick_params(axis="x", labelrotation=20)
    return _save(figure, path)


def _label_points(
    axis: Any,
    labels: Sequence[str],
    xs: Sequence[float],
    values: Sequence[float],
    highs: Sequence[float | None],
) -> None:
    order = sorted(range(len(xs)), key=lambda index: xs[index])
    for rank, index in enumerate(order):
        # above the interval's top, so a label never sits on its own bar; of two points at
        # almost the same x (best-of-16 and CBS(4,4,5) sample about as many tokens) the
        # first label leans left and the second right, clear of each other's bars
        top = highs[index] if highs[index] is not None else values[index]
        near = [
            other
            for other in order
            if other != index and abs(xs[other] - xs[index]) <= 0.05 * max(abs(xs[index]), 1e-9)
        ]
        align, shift = "center", 0
        if near:
            before = any(order.index(other) < rank for other in near)
            align, shift = ("left", 4) if before else ("right", -4)
        axis.annotate(
            labels[index], (xs[index], top), xytext=(shift, 4), textcoords="offset points",
            fontsize=8, ha=align, va="bottom",
        )  # fmt: skip


def scatter_with_intervals(
    path: Path,
    labels: Sequence[str],
    xs: Sequence[float],
    values: Sequence[float],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    x_scale: str = "linear",
    connect: bool = False,
) -> Path:
    """One labelled point per method (e.g. reward vs compute), with vertical intervals.

    `x_scale`: linear, log, or symlog (log-like far from 0, linear near it: a sweep that
    spans orders of magnitude and includes 0 or negative values). `connect` joins the points
    in the given order (a sweep over one setting).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lower = [v - lo if lo is not None else 0.0 for v, lo in zip(values, lows, strict=True)]
    upper = [hi - v if hi is not None else 0.0 for v, hi in zip(values, highs, strict=True)]
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    axis.errorbar(
        xs, values, yerr=[lower, upper], fmt="o-" if connect else "o", capsize=4, color="#1565c0"
    )
    _label_points(axis, labels, xs, values, highs)
    axis.margins(x=0.08, y=0.12)  # room for the labels beside and above the intervals
    if x_scale == "log":
        _log_x(axis, xs)
    elif x_scale == "symlog":
        from matplotlib.ticker import ScalarFormatter

        axis.set_xscale("symlog", linthresh=1.0)
        axis.xaxis.set_major_formatter(ScalarFormatter())
    _title(axis, title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    return _save(figure, path)


def lines_with_intervals(
    path: Path,
    series: Mapping[str, Series],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    invert_x: bool = False,
    reference_lines: dict[str, float] | None = None,
    ylim: tuple[float, float] | None = None,
    x_scale: str = "linear",
) -> Path:
    """One line per series (xs, values, lows, highs) with a shaded interval band.

    `reference_lines` draws labelled horizontal lines (e.g. a weak supervisor, a ceiling);
    `x_scale` "log" ticks every measured x.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for label, (xs, values, lows, highs) in series.items():
        (line,) = axis.plot(xs, values, marker="o", markersize=3, label=label)
        if all(v is not None for v in (*lows, *highs)):
            axis.fill_between(xs, lows, highs, alpha=0.15, color=line.get_color())  # type: ignore[arg-type]
    for label, value in (reference_lines or {}).items():
        axis.axhline(value, linestyle="--", linewidth=1, color="grey")
        axis.annotate(
            label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=8, va="bottom"
        )
    if x_scale == "log":
        _log_x(axis, [x for xs, *_ in series.values() for x in xs])
    if invert_x:
        axis.invert_xaxis()
    if ylim is not None:  # wide intervals (few seeds) must not flatten the lines themselves
        axis.set_ylim(*ylim)
    _title(axis, title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return _save(figure, path)


def _log_x(axis: Any, xs: Sequence[float]) -> None:
    """A log x-axis with a tick at every measured x, labelled as a plain number: a log axis
    spanning less than a decade would otherwise show one label, or none."""
    from matplotlib.ticker import NullFormatter, NullLocator

    axis.set_xscale("log")
    ticks: list[float] = []
    for x in sorted({float(x) for x in xs if x > 0}):
        # labels of x's within 10% of each other would print over one another
        if not ticks or x > ticks[-1] * 1.1:
            ticks.append(x)
    axis.set_xticks(ticks, [f"{x:,.0f}" if x >= 10 else f"{x:.2g}" for x in ticks])
    axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_minor_formatter(NullFormatter())


def _title(axis: Any, title: str, width: int = 60) -> None:
    """A long title wrapped onto lines the figure's width holds, never cut off."""
    import textwrap

    axis.set_title("\n".join(textwrap.wrap(title, width)), fontsize=10)


def _save(figure: Any, path: Path) -> Path:
    """Write atomically: a crash mid-save never leaves a truncated PNG behind."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)
    return path
