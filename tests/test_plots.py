"""Interval plots stay readable: labels clear of every error bar, log-axis ticks apart."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from weak2strong.report import plots


def render(monkeypatch: pytest.MonkeyPatch, **arguments: object):
    kept = {}

    def keep(figure, path):  # the drawn figure instead of a file, to measure its artists
        figure.tight_layout()
        figure.canvas.draw()
        kept["figure"] = figure
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.scatter_with_intervals(Path("unused.png"), title="t", xlabel="x", ylabel="y", **arguments)
    return kept["figure"]


def bars_under_labels(figure) -> list[str]:
    """Labels whose box meets a vertical error bar, in display coordinates."""
    axis = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    hits = []
    for text in axis.texts:
        box = text.get_window_extent(renderer)
        for collection in axis.collections:
            for segment in collection.get_segments():
                (x, y_low), (_, y_high) = axis.transData.transform(segment)
                low, high = sorted((y_low, y_high))
                if box.x0 <= x <= box.x1 and low <= box.y1 and high >= box.y0:
                    hits.append(text.get_text())
    return hits


def test_labels_of_points_at_almost_the_same_x_clear_every_bar(monkeypatch):
    # the demo search: best-of-16 and CBS sample 776 and 786 tokens per prompt
    figure = render(
        monkeypatch,
        labels=["sample", "bon-16", "cbs(4,4,5)"],
        xs=[47, 776, 786],
        values=[3.97, 5.18, 5.92],
        lows=[2.48, 3.93, 4.64],
        highs=[5.54, 6.58, 7.26],
        x_scale="log",
    )
    assert bars_under_labels(figure) == []
    axis = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    ticks = [label for label in axis.get_xticklabels() if label.get_text()]
    assert [label.get_text() for label in ticks] == ["47", "776"]  # 786 would print over 776
    boxes = [label.get_window_extent(renderer) for label in ticks]
    assert all(left.x1 < right.x0 for left, right in itertools.pairwise(boxes))


def test_labels_of_an_alpha_sweep_clear_every_bar(monkeypatch):
    # the demo ExPO sweep on a symlog axis
    alphas = [-1, 0, 1, 2, 4, 8, 16, 32, 64, 128]
    rewards = [3.92, 3.95, 4.45, 4.44, 5.01, 4.91, 5.94, 6.61, 4.68, 1.87]
    figure = render(
        monkeypatch,
        labels=["sft", "aligned (α=0)", *(f"α={a}" for a in alphas[2:])],
        xs=alphas,
        values=rewards,
        lows=[r - 0.6 for r in rewards],
        highs=[r + 0.6 for r in rewards],
        x_scale="symlog",
        connect=True,
    )
    assert bars_under_labels(figure) == []
    assert len(figure.axes[0].texts) == len(alphas)
