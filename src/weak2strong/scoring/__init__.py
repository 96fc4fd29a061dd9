"""Scoring: metrics, PGR and bootstrap intervals shared by every method."""

from weak2strong.scoring.metrics import (
    METRICS,
    Metric,
    compute_metrics,
    paired_bootstrap,
    paired_bootstrap_means,
    performance_gap_recovered,
    seed_interval,
)

__all__ = [
    "METRICS",
    "Metric",
    "compute_metrics",
    "paired_bootstrap",
    "paired_bootstrap_means",
    "performance_gap_recovered",
    "seed_interval",
]
