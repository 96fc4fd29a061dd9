"""A static report: one page per method, each run a section of tables, plots and settings.

The HTML pages are self-contained (styles inline, plots embedded as data URIs, no script),
so a page opens from disk or as an e-mail attachment with no server and no network; the
only links are between the report's own pages and to each table's CSV file. The Markdown
version is one file with the plots beside it, for pasting into papers and issues.
"""

from __future__ import annotations

import base64
import html
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weak2strong.fileio import write_text
from weak2strong.report.effects import effect_sentences
from weak2strong.report.tables import (
    ResultTable,
    csv_table,
    markdown_table,
    markdown_text,
    metrics_csv,
    printable,
)

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d2430; background: #fafbfc; }
header { background: #1d2430; color: #fff; padding: 0.8em 2em; }
header a { color: #cfe3ff; margin-right: 1.2em; text-decoration: none; }
header a.current { color: #fff; font-weight: 600; border-bottom: 2px solid #fff; }
main { padding: 1em 2em 3em; max-width: 78em; }
section.run { background: #fff; border: 1px solid #dde2e8; border-radius: 6px;
              padding: 0.6em 1.4em 1em; margin: 1.4em 0; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; } .muted { color: #68717d; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
th, td { border: 1px solid #dde2e8; padding: 0.3em 0.7em; text-align: left;
         vertical-align: top; white-space: pre-line; }
th { background: #eef2f6; } tr:nth-child(even) td { background: #f7f9fb; }
img.plot { max-width: 100%; border: 1px solid #eef2f6; margin: 0.4em 0; }
pre { background: #f3f5f8; padding: 0.7em; overflow-x: auto; font-size: 0.85em; }
ul.notes { margin: 0.2em 0 0.8em; } .skipped td { color: #8a4b00; }
"""


@dataclass
class RunSection:
    """One run folder as the report shows it."""

    name: str  # the run folder's name, also the section's anchor
    command: str
    tables: list[ResultTable]
    plots: list[Path]
    config_text: str
    environment_text: str
    started: str = ""
    notes: list[str] = field(default_factory=list)
    label: str = ""  # the run's name and tags
    headline: dict[str, float] = field(default_factory=dict)
    settings: str = ""  # its non-default settings, key=value
    metrics: list[dict[str, Any]] = field(default_factory=list)  # results.json's records
    aggregates: list[str] = field(default_factory=list)  # a replicates run: its seeds' runs

    @property
    def effects(self) -> list[str]:
        """Each difference the run measured against a baseline, in words."""
        return effect_sentences(self.metrics)


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Report:
    title: str
    source: str  # the runs folder it was made from
    pages: dict[str, list[RunSection]]  # page name (a method) → its runs
    skipped: list[Skipped] = field(default_factory=list)
    made_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %z"))
    comparisons: dict[str, ResultTable] = field(default_factory=dict)  # page → its runs compared

    def csv_name(self, section: RunSection) -> str:
        """The run's metrics, one record per row with value, low and high in their own columns."""
        return f"csv/{section.name}-metrics.csv"


def _e(text: str) -> str:
    return html.escape(printable(text), quote=True)


def _table_html(table: ResultTable, csv_link: str) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    parts = []
    if table.rows:
        parts.append(
            f'<table class="results"><caption>{_e(table.title)} '
            f'<a class="muted" href="{_e(csv_link)}">CSV</a></caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    else:
        parts.append(f"<p><strong>{_e(table.title)}</strong></p>")
    if table.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in table.notes))
        parts.append("</ul>")
    return "".join(parts)


def _image_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img class="plot" alt="{_e(path.name)}" src="data:image/png;base64,{data}">'


def _page_file(page: str) -> str:
    return f"{page}.html"


def _frame(report: Report, current: str, title: str, body: str) -> str:
    links = [("index", "overview")] + [(page, page) for page in report.pages]
    nav = "".join(
        f'<a href="{_page_file(name)}"{" class=current" if name == current else ""}>{_e(label)}</a>'
        for name, label in links
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body><header><nav>{nav}</nav></header><main>{body}</main></body></html>\n"
    )


def _section_html(report: Report, section: RunSection) -> str:
    parts = [
        f'<section class="run" id="{_e(section.name)}">',
        f'<h2><a href="#{_e(section.name)}">{_e(section.name)}</a></h2>',
        f'<p class="muted">{_e(section.command)} run, started {_e(section.started or "?")}</p>',
    ]
    if section.effects:
        parts.append('<ul class="effects">' + "".join(f"<li>{_e(e)}</li>" for e in section.effects))
        parts.append("</ul>")
    parts += [_table_html(t, report.csv_name(section)) for t in section.tables]
    if section.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in section.notes))
        parts.append("</ul>")
    parts += [_image_html(plot) for plot in section.plots]
    parts.append(
        f"<details><summary>config</summary><pre>{_e(section.config_text)}</pre></details>"
        f"<details><summary>environment</summary><pre>{_e(section.environment_text)}</pre>"
        "</details></section>"
    )
    return "".join(parts)


READING_GUIDE = (
    (
        "PGR",
        "performance gap recovered = (w2s − weak) / (ceiling − weak): 0 means the student "
        "only matches its weak supervisor, 1 that it matches the same student trained on gold "
        "labels. For metrics where lower is better the same ratio is taken in that direction; "
        "it is undefined (with the reason) when the ceiling is not better than the weak model.",
    ),
    (
        "A/B split",
        "generalize halves the training data: the weak supervisor learns from half A's gold "
        "labels and labels half B; the weak-to-strong student learns from B's weak labels, the "
        "ceiling from B's gold labels. No model sees the test data.",
    ),
    (
        "Intervals",
        "95%: a paired bootstrap over test examples or prompts (every model scored on the "
        "same resamples, so differences and PGR are paired), or a t-interval over seeds. A "
        "warning under a table says when they rest on too few examples.",
    ),
    (
        "Rewards",
        "`sentiment` is the log-odds that a MiniLM classifier trained on IMDB calls a text "
        "positive (0: undecided; +2: about 88% positive); `toxicity` is p(toxic). Each result "
        "notes its scorer's held-out accuracy and AUROC.",
    ),
)


def _index_html(report: Report) -> str:
    guide = "".join(f"<li><b>{_e(term)}</b>: {_e(text)}</li>" for term, text in READING_GUIDE)
    parts = [
        f"<h1>{_e(report.title)}</h1>",
        f'<p class="muted">from {_e(report.source)}, made {_e(report.made_at)}</p>',
        f'<h2>Reading the numbers</h2><ul class="notes">{guide}</ul>',
    ]
    if not report.pages:
        parts.append("<p>No finished runs found.</p>")
    for page, sections in report.pages.items():
        parts.append(f'<h2><a href="{_page_file(page)}">{_e(page)}</a> ({len(sections)})</h2><ul>')
        for section in sections:
            first = section.tables[0].title if section.tables else ""
            parts.append(
                f'<li><a href="{_page_file(page)}#{_e(section.name)}">{_e(section.name)}</a>'
                f' <span class="muted">{_e(first)}</span></li>'
            )
        parts.append("</ul>")
    if report.skipped:
        rows = "".join(
            f"<tr><td>{_e(s.path)}</td><td>{_e(s.reason)}</td></tr>" for s in report.skipped
        )
        parts.append(
            '<h2>Skipped</h2><table class="skipped"><thead><tr><th>folder</th><th>reason</th>'
            f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    return "".join(parts)


def _comparison_csv(page: str) -> str:
    return f"csv/{page}-comparison.csv"


def _write_csv(report: Report, out: Path) -> None:
    for page, table in report.comparisons.items():
        write_text(out / _comparison_csv(page), csv_table(table))
    for sections in report.pages.values():
        for section in sections:
            write_text(out / report.csv_name(section), metrics_csv(section.name, section.metrics))


def write_html(report: Report, out: Path) -> Path:
    """index.html (overview and skipped folders), a page per method, a CSV per table."""
    _write_csv(report, out)
    for page, sections in report.pages.items():
        body = f"<h1>{_e(page)}</h1>"
        if page in report.comparisons:
            body += _table_html(report.comparisons[page], _comparison_csv(page))
        body += "".join(_section_html(report, s) for s in sections)
        write_text(out / _page_file(page), _frame(report, page, f"{report.title}: {page}", body))
    index = out / "index.html"
    write_text(index, _frame(report, "index", report.title, _index_html(report)))
    return index


def write_markdown(report: Report, out: Path) -> Path:
    """report.md with every table, the plots copied beside it, a CSV per table."""
    _write_csv(report, out)
    lines = [f"# {report.title}", "", f"From `{report.source}`, made {report.made_at}.", ""]
    lines += ["## Reading the numbers", ""]
    lines += [f"- **{term}**: {text}" for term, text in READING_GUIDE] + [""]
    for page, sections in report.pages.items():
        lines += [f"## {page}", ""]
        if page in report.comparisons:
            lines += [markdown_table(report.comparisons[page]), ""]
        for section in sections:
            lines += [
                f"### {markdown_text(section.name)}",
                "",
                markdown_text(f"{section.command} run, started {section.started}"),
            ]
            lines.append("")
            lines += [f"- **effect**: {markdown_text(e)}" for e in section.effects]
            lines += [""] if section.effects else []
            for table in section.tables:
                lines.append(markdown_table(table))
            lines += [f"[metrics CSV]({report.csv_name(section)})", ""]
            notes = [f"- {markdown_text(note)}" for note in section.notes]
            lines += [*notes, ""] if notes else []
            for plot in section.plots:
                target = out / "plots" / f"{section.name}-{plot.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(plot, target)
                lines += [f"![{markdown_text(plot.stem)}](plots/{target.name})", ""]
    if report.skipped:
        lines += ["## Skipped", "", "| folder | reason |", "|---|---|"]
        lines += [
            f"| {markdown_text(s.path)} | {markdown_text(s.reason)} |" for s in report.skipped
        ]
        lines.append("")
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
