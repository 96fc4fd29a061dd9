"""Training and inference shared by every method: classifiers, the one training loop, predictions.

The loop is data-parallel through accelerate and its results do not depend on the number
of processes (see `weak2strong.distributed`).
"""

from weak2strong.training.classifier import Inputs, Probe, TextClassifier, one_hot, take
from weak2strong.training.loop import (
    Loss,
    Schedule,
    StepInfo,
    fit,
    predict_proba,
    soft_cross_entropy,
    train,
)
from weak2strong.training.settings import AdamWSettings, OptimiserSettings, TrainingSettings

__all__ = [
    "AdamWSettings",
    "Inputs",
    "Loss",
    "OptimiserSettings",
    "Probe",
    "Schedule",
    "StepInfo",
    "TextClassifier",
    "TrainingSettings",
    "fit",
    "one_hot",
    "predict_proba",
    "soft_cross_entropy",
    "take",
    "train",
]
