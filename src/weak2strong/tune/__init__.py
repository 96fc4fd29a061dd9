"""Tuning small models: the tuned member of a search pair, the aligned model of ExPO.

A library below the methods as well as a command: `search` and `extrapolate` call `Tune`
for their default tuned model, and generative `generalize` fine-tunes with `train_sft`.
It imports only shared parts (training, models, data, scoring, runs), never a method.
"""

from weak2strong.tune.tuning import METHODS, TrainingSettings, Tune, TuneConfig, chance_warning

__all__ = ["METHODS", "TrainingSettings", "Tune", "TuneConfig", "chance_warning"]
