"""Reporting: readable tables and plots, shared by every command."""

from weak2strong.report.plots import (
    bar_chart_with_intervals,
    lines_with_intervals,
    scatter_with_intervals,
)
from weak2strong.report.tables import (
    ResultTable,
    csv_table,
    format_interval,
    markdown_table,
    plain,
    print_table,
    printable,
    reward_units,
    scorer_note,
)

__all__ = [
    "ResultTable",
    "bar_chart_with_intervals",
    "csv_table",
    "format_interval",
    "lines_with_intervals",
    "markdown_table",
    "plain",
    "print_table",
    "printable",
    "reward_units",
    "scatter_with_intervals",
    "scorer_note",
]
