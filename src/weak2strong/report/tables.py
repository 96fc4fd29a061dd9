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
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from weak2strong.errors import printable
from weak2strong.runs.typed import Estimate, to_json


@dataclass
class ResultTable:
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)  # lines shown under the table


def format_interval(
    interval: Mapping[str, Any] | Estimate | None, digits: int = 3, *, signed: bool = False
) -> str:
    """`0.812 [0.790, 0.834]` (signed: `+0.041 [-0.006, +0.088]`, for differences), or
    `undefined` when the value is None."""
    values: Mapping[str, Any] = (
        to_json(interval) if isinstance(interval, Estimate) else interval or {}
    )
    if values.get("value") is None:
        return "undefined"
    spec = f"{'+' if signed else ''}.{digits}f"
    text = f"{values['value']:{spec}}"
    if values.get("low") is not None and values.get("high") is not None:
        text += f" [{values['low']:{spec}}, {values['high']:{spec}}]"
    return text


# Control characters (ANSI escapes, NUL, carriage returns) in names or generated text would
# restyle a terminal or break a page; tabs and line breaks are kept.


def plain(text: object) -> Text:
    """User or model text for the console: printable, and never read as rich markup."""
    return Text(printable(str(text)))


_INTERVAL = re.compile(r" \[(-?[0-9.]+), (-?[0-9.]+)\]")


def terminal_cell(text: str, digits: int | None = None) -> str:
    """A cell as a narrow terminal shows it: `0.700 [0.583, 0.817]` becomes `0.700` over
    `0.583–0.817` (11 characters), or with `digits` decimals, `0.58–0.82`."""

    def stacked(match: re.Match[str]) -> str:
        low, high = match[1], match[2]
        if digits is not None:
            low, high = f"{float(low):.{digits}f}", f"{float(high):.{digits}f}"
        return f"\n{low}–{high}"

    return _INTERVAL.sub(stacked, text)


def print_table(console: Console, table: ResultTable) -> None:
    """The table (when it has rows), then its notes.

    Readable at 80 columns: headers wrap at word boundaries (`balanced accuracy`), intervals
    sit under their values, and the first column (run folders, model names: what a user
    copies) is never cut.
    """
    if table.rows:
        # no vertical rules: six columns of `0.583–0.817` then fit 80 characters
        shown = Table(
            title=plain(table.title),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            collapse_padding=True,
        )
        headers = [column.replace("_", " ") for column in table.columns]
        for digits in (None, 2):  # intervals as printed, then shorter if the table is too wide
            rows = [[r[0], *(terminal_cell(cell, digits) for cell in r[1:])] for r in table.rows]
            # every column as wide as its longest line (or header word), when the table fits
            widths = [
                max(
                    [len(word) for word in header.split()]
                    + [len(line) for row in rows for line in row[index].splitlines()]
                    or [1]
                )
                for index, header in enumerate(headers)
            ]
            fits = sum(widths) + 2 * len(widths) <= console.width  # and the padding
            if fits:
                break
        for index, header in enumerate(headers):
            shown.add_column(
                plain(header),
                no_wrap=index == 0,  # run folders and model names are copied: never cut
                overflow="fold",  # too narrow anyway: wrap, never lose the end
                min_width=widths[index] if fits else None,
            )
        for row in rows:
            shown.add_row(*(plain(cell) for cell in row))
        console.print(shown, markup=False, highlight=False)
    for note in table.notes:
        console.print(plain(note), highlight=False)


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def markdown_text(text: str) -> str:
    """User text (task names, labels, generations) as literal Markdown: HTML and Markdown
    syntax escaped, so a report never runs a script, loads a remote image or forms a link;
    line breaks become `<br>` (GitHub renders them inside table cells)."""
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(printable(text), quote=False))
    return escaped.replace("\n", "<br>")


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
    writer.writerow([printable(c) for c in table.columns])
    writer.writerows([[printable(c).replace("\n", " ") for c in row] for row in table.rows])
    return buffer.getvalue()


METRICS_CSV_COLUMNS = (
    "run", "model", "metric", "of", "baseline", "at", "value", "low", "high", "n", "interval",
    "higher_is_better",
)  # fmt: skip


def metrics_csv(run: str, records: list[dict[str, Any]]) -> str:
    """results.json's metric records as CSV: numbers in their own columns, ready for pandas."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(METRICS_CSV_COLUMNS)
    for record in records:
        at = "; ".join(f"{key}={value}" for key, value in record.get("at", {}).items())
        row = {**record, "run": run, "at": at}
        writer.writerow(["" if row.get(c) is None else row[c] for c in METRICS_CSV_COLUMNS])
    return buffer.getvalue()


def scorer_note(description: dict[str, Any]) -> str:
    """One line for a table: the reward's units and its held-out quality."""
    text = f"gold {description['name']}: {description['units']}"
    if "heldout_accuracy" in description:
        text += (
            f"; held-out accuracy {description['heldout_accuracy']:.3f}, AUROC "
            f"{description['heldout_auroc']:.3f} on {description['test_examples']} labelled "
            f"texts it never saw (trained on {description['train_examples']})"
        )
    return text


def reward_units(scorer: str) -> str:
    """A plot axis's short name for a gold scorer's units."""
    short = {"sentiment": "log-odds positive", "toxicity": "p(toxic)"}
    return f"{scorer}: {short[scorer]}" if scorer in short else scorer
