"""How a strong student learns from weak labels: the loss and which examples it sees."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from weak2strong.errors import W2SError
from weak2strong.generalize.config import STRATEGY_NAMES, StrategyConfig, StrategyName
from weak2strong.training import Loss, StepInfo, soft_cross_entropy


def check_strategies(names: list[str], config: StrategyConfig) -> list[StrategyName]:
    """The strategies to run: `all` expanded (bootstrap only with an intermediate model)."""
    if names == ["all"]:
        chosen = [
            name for name in STRATEGY_NAMES if not STRATEGIES[name].relabels or config.intermediate
        ]
        if not config.intermediate:
            logging.getLogger(__name__).warning(
                "--strategy all runs %s; bootstrap also needs an intermediate model "
                "(--strategy.intermediate NAME)",
                ", ".join(chosen),
            )
        return chosen
    if not names:
        raise W2SError("no strategy given")
    if "all" in names:
        raise W2SError("--strategy all stands alone (it runs every strategy)")
    chosen = [name for name in STRATEGY_NAMES if name in names]
    chosen.sort(key=names.index)
    if any(STRATEGIES[name].relabels for name in chosen) and not config.intermediate:
        raise W2SError(
            "strategy 'bootstrap' needs an intermediate model: --set strategy.intermediate=NAME"
        )
    return chosen


def confidence_weight(step: int, total_steps: int, config: StrategyConfig) -> float:
    """α at `step`: a linear ramp from 0 to `confidence_alpha` over the warm-up, then flat."""
    warmup_steps = config.confidence_warmup * total_steps
    if warmup_steps <= 0:
        return config.confidence_alpha
    return config.confidence_alpha * min(1.0, step / warmup_steps)


def _unchanged(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def harden(
    probs: torch.Tensor,
    weak_targets: torch.Tensor,
    gather: Callable[[torch.Tensor], torch.Tensor] = _unchanged,
) -> torch.Tensor:
    """The student's own predictions as one-hot targets.

    Binary: the threshold is set so the hardened positive fraction equals the weak labels'
    positive fraction in the batch (Burns et al.'s class balancing). Multi-class: argmax.
    `gather` turns this process's rows into the whole global batch's, so the threshold is
    the batch's whatever the number of processes.
    """
    if probs.shape[1] != 2:
        return F.one_hot(probs.argmax(1), probs.shape[1]).to(probs.dtype)
    positive_fraction = gather(weak_targets[:, 1]).mean()
    threshold = torch.quantile(gather(probs[:, 1]), (1 - positive_fraction).clamp(0.0, 1.0))
    positive = (probs[:, 1] >= threshold).to(probs.dtype)
    return torch.stack([1 - positive, positive], dim=1)


def confidence_loss(config: StrategyConfig) -> Loss:
    """Burns et al.'s auxiliary confidence loss, per example."""

    def loss(logits: torch.Tensor, weak_targets: torch.Tensor, info: StepInfo) -> torch.Tensor:
        alpha = confidence_weight(info.step, info.total_steps, config)
        hardened = harden(torch.softmax(logits.detach(), dim=-1), weak_targets, info.gather)
        # (1-α)·CE(f, y_weak) + α·CE(f, ŷ_f): CE is linear in its target, so mix the targets.
        return soft_cross_entropy(logits, (1 - alpha) * weak_targets + alpha * hardened)

    return loss


def _plain_loss(config: StrategyConfig) -> Loss:
    return soft_cross_entropy


def _every_example(weak_probs: np.ndarray, config: StrategyConfig) -> np.ndarray:
    return np.arange(len(weak_probs))


def _most_confident(weak_probs: np.ndarray, config: StrategyConfig) -> np.ndarray:
    """The `subset_keep` fraction the weak supervisor is most confident about."""
    if not 0.0 < config.subset_keep <= 1.0:
        raise W2SError(f"strategy.subset_keep must be in (0, 1], got {config.subset_keep}")
    confidence = weak_probs.max(1)
    keep = max(1, round(config.subset_keep * len(weak_probs)))
    return np.sort(np.argsort(-confidence, kind="stable")[:keep])


@dataclass(frozen=True)
class Strategy:
    loss: Callable[[StrategyConfig], Loss]  # what the student minimises
    subset: Callable[[np.ndarray, StrategyConfig], np.ndarray]  # which weak labels it sees
    # half B relabelled by an intermediate model first (weak → intermediate → strong); the
    # student then trains as a naive one
    relabels: bool = False


STRATEGIES: dict[StrategyName, Strategy] = {
    "naive": Strategy(_plain_loss, _every_example),
    "confidence": Strategy(confidence_loss, _every_example),
    "confident-subset": Strategy(_plain_loss, _most_confident),
    "bootstrap": Strategy(_plain_loss, _every_example, relabels=True),
}
assert tuple(STRATEGIES) == STRATEGY_NAMES


def strategy_loss(name: StrategyName, config: StrategyConfig) -> Loss:
    """The loss a strategy trains its student with."""
    return STRATEGIES[name].loss(config)


def training_subset(
    name: StrategyName, weak_probs: np.ndarray, config: StrategyConfig
) -> np.ndarray:
    """Indices of the weak-labelled examples the student trains on."""
    return STRATEGIES[name].subset(weak_probs, config)
