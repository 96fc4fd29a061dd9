"""Reporting: readable tables and plots, shared by every command."""

from weak2strong.report.plots import (
    bar_chart_with_intervals,
    lines_with_intervals,
    scatter_with_intervals,
)
from weak2strong.report.tables import format_interval, print_table

__all__ = [
    "bar_chart_with_intervals",
    "format_interval",
    "lines_with_intervals",
    "print_table",
    "scatter_with_intervals",
]
