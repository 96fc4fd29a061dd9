"""Runs: typed configs and the run folders they name."""

from weak2strong.runs.config import (
    config_hash,
    config_to_dict,
    load_config,
    parse_override,
    results_version,
)
from weak2strong.runs.folder import Run, seed_everything

__all__ = [
    "Run",
    "config_hash",
    "config_to_dict",
    "load_config",
    "parse_override",
    "results_version",
    "seed_everything",
    "setting",
]
