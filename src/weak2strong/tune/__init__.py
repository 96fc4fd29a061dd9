"""Tuning small models: the tuned member of a search pair, the aligned model of ExPO.

A library below the methods as well as a command: `search` and `extrapolate` take their
default tuned model from `default_tuned_model`, and generative `generalize` fine-tunes with
`train_sft`. It imports only shared parts (training, models, data, scoring, runs), never a
method.
"""

from weak2strong.tune.config import TuneConfig, TuneTraining
from weak2strong.tune.summary import chance_warning
from weak2strong.tune.tuning import Tune, default_tuned_model

__all__ = ["Tune", "TuneConfig", "TuneTraining", "chance_warning", "default_tuned_model"]
