"""Results tables: built once per method as a `ResultTable`, shown in every format.

The terminal, the HTML report, Markdown and CSV all render the same `ResultTable`, so a
number reads the same wherever it is looked at.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table


@dataclass
class ResultTable:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # lines shown under the table


def format_interval(interval: Mapping[str, float | None] | None, digits: int = 3) -> str:
    """`0.812 [0.790, 0.834]`, or `undefined` when the value is None."""
    if not interval or interval.get("value") is None:
        return "undefined"
    text = f"{interval['value']:.{digits}f}"
    if interval.get("low") is not None and interval.get("high") is not None:
        text += f" [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"
    return text


def print_table(console: Console, table: ResultTable) -> None:
    """The table (when it has rows), then its notes."""
    if table.rows:
        shown = Table(title=table.title)
        for column in table.columns:
            shown.add_column(column, overflow="fold")  # long names wrap, never lose their end
        for row in table.rows:
            shown.add_row(*row)
        console.print(shown)
    for note in table.notes:
        console.print(note, markup=False, highlight=False)


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def markdown_text(text: str) -> str:
    """User text (task names, labels, generations) as literal Markdown: HTML and Markdown
    syntax escaped, so a report never runs a script, loads a remote image or forms a link;
    line breaks become `<br>` (GitHub renders them inside table cells)."""
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text, quote=False))
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def markdown_table(table: ResultTable) -> str:
    """A pipe table of the escaped title, cells and notes."""
    cell = markdown_text
    lines = [f"**{cell(table.title)}**", ""]
    if table.rows:
        lines.append("| " + " | ".join(cell(c) for c in table.columns) + " |")
        lines.append("|" + "|".join("---" for _ in table.columns) + "|")
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    lines += ["", *(cell(note) for note in table.notes)] if table.notes else []
    return "\n".join(lines) + "\n"


def csv_table(table: ResultTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([[c.replace("\n", " ") for c in row] for row in table.rows])
    return buffer.getvalue()
