"""Weak-to-strong generalization: `w2s generalize`."""

from weak2strong.generalize.config import (
    FinetuneConfig,
    GeneralizeConfig,
    ProbeConfig,
    StrategyConfig,
)
from weak2strong.generalize.pipeline import Generalize

__all__ = [
    "FinetuneConfig",
    "Generalize",
    "GeneralizeConfig",
    "ProbeConfig",
    "StrategyConfig",
]
