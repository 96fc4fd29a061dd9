"""Results tables printed to the terminal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.table import Table


def format_interval(interval: Mapping[str, float | None] | None, digits: int = 3) -> str:
    """`0.812 [0.790, 0.834]`, or `undefined` when the value is None."""
    if not interval or interval.get("value") is None:
        return "undefined"
    text = f"{interval['value']:.{digits}f}"
    if interval.get("low") is not None and interval.get("high") is not None:
        text += f" [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"
    return text


def print_table(
    console: Console, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]
) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")  # long names wrap instead of losing their end
    for row in rows:
        table.add_row(*row)
    console.print(table)
