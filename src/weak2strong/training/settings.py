"""The one training-settings type: every config section that trains a model extends it.

Subclasses set their own defaults (a probe trains longer and faster than a fine-tuned
backbone) by declaring the same fields again; the names, and so the run hashes and the
command-line keys, are the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from weak2strong.settings import setting


@dataclass
class TrainingSettings:
    epochs: int = setting(1, help="epochs over the training examples")
    batch_size: int = setting(8, help="examples per optimiser step, across all processes")
    learning_rate: float = setting(1e-3, help="learning rate")


@dataclass
class AdamWSettings(TrainingSettings):
    """Training by the shared loop (`weak2strong.training.train`), with AdamW."""

    weight_decay: float = setting(0.0, help="AdamW weight decay")


@dataclass
class OptimiserSettings(AdamWSettings):
    """AdamW by default; SGD with momentum and a step decay of the learning rate, as open_lth
    trains VGG-16 and ResNet-20 on CIFAR-10 (`weight_decay` is then SGD's L2 penalty)."""

    optimiser: Literal["adamw", "sgd"] = setting("adamw", help="adamw or sgd")
    momentum: float = setting(0.0, help="SGD momentum")
    milestones: list[int] = setting(
        help="epochs after which the learning rate is multiplied by `gamma`", factory=list
    )
    gamma: float = setting(0.1, help="the learning rate's factor at every milestone")
