"""Tuning small models: the tuned member of a search pair, the aligned model of ExPO."""

from weak2strong.tune.tuning import METHODS, TrainingSettings, Tune, TuneConfig

__all__ = ["METHODS", "TrainingSettings", "Tune", "TuneConfig"]
