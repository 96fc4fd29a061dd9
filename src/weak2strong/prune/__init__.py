"""Lottery tickets: masks, pruning strategies, and iterative magnitude pruning with rewinding."""

from weak2strong.prune.masks import Masks, masked_gradients, prunable_weights, prune_lowest
from weak2strong.prune.strategies import STRATEGIES, ScoringInputs, one_shot_scores, prune

__all__ = [
    "STRATEGIES",
    "Masks",
    "ScoringInputs",
    "masked_gradients",
    "one_shot_scores",
    "prunable_weights",
    "prune",
    "prune_lowest",
]
