"""Pruning strategies: which weights to remove, each scored as its paper defines.

Every strategy maps (model, current masks, fraction of kept weights to remove) to new
masks, removing the lowest-scoring weights:
- `magnitude`: |θ| (Han et al. 2015; Frankle & Carbin 2019 use it between IMP rounds).
- `random`: uniform random scores (the sparse-architecture control).
- `snip`: |θ ⊙ ∂L/∂θ|, connection sensitivity on one batch (Lee et al. 2019).
- `grasp`: θ ⊙ Hg with g = ∂L/∂θ and H the Hessian, on logits divided by a temperature
  (Wang et al. 2020, T = 200). GraSP removes the weights with the largest −θ ⊙ Hg, whose
  removal least reduces gradient flow: here, the lowest θ ⊙ Hg.
- `synflow`: |θ ⊙ ∂R/∂θ| with R = 1ᵀ(∏|θ_l|)1, the output sum of the network with every
  parameter replaced by its absolute value on an all-ones input, in float64, pruned over
  `iterations` rounds to the target on an exponential schedule (Tanaka et al. 2020). Data-free.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from weak2strong.errors import W2SError
from weak2strong.prune.masks import Fractions, Masks, masked_gradients, prune_lowest

Logits = Callable[[nn.Module], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ScoringInputs:
    """What data-dependent strategies need from the task, whatever the model is."""

    # logits and integer targets of the model on one training batch
    batch_logits: Logits
    # the model's output on an all-ones input (for SynFlow; the model's parameters are made
    # absolute and float64 by the caller)
    ones_output: Callable[[nn.Module], torch.Tensor]
    seed: int = 0
    grasp_temperature: float = 200.0
    synflow_iterations: int = 100


def _weights(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    parameters = dict(model.named_parameters())
    return {name: parameters[name] for name in masks}


def _gradients(
    output: torch.Tensor, weights: Sequence[torch.Tensor], create_graph: bool = False
) -> list[torch.Tensor]:
    """∂output/∂w for each weight; zeros for a weight the output does not use."""
    grads = torch.autograd.grad(output, weights, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads, strict=True)]


def magnitude_scores(model: nn.Module, masks: Masks) -> dict[str, torch.Tensor]:
    return {name: w.detach().abs() for name, w in _weights(model, masks).items()}


def random_scores(masks: Masks, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(mask.shape, generator=generator) for name, mask in masks.items()}


def snip_scores(model: nn.Module, masks: Masks, inputs: ScoringInputs) -> dict[str, torch.Tensor]:
    weights = _weights(model, masks)
    masks.apply(model)
    with masked_gradients(model, masks):
        logits, targets = inputs.batch_logits(model)
        loss = nn.functional.cross_entropy(logits, targets)
        grads = _gradients(loss, list(weights.values()))
    return {
        name: (w.detach() * g).abs() for (name, w), g in zip(weights.items(), grads, strict=True)
    }


def grasp_scores(model: nn.Module, masks: Masks, inputs: ScoringInputs) -> dict[str, torch.Tensor]:
    weights = _weights(model, masks)
    parameters = list(weights.values())
    masks.apply(model)
    temperature = inputs.grasp_temperature
    logits, targets = inputs.batch_logits(model)
    loss = nn.functional.cross_entropy(logits / temperature, targets)
    gradient = [g.detach() for g in _gradients(loss, parameters)]
    logits, targets = inputs.batch_logits(model)
    loss = nn.functional.cross_entropy(logits / temperature, targets)
    with_graph = _gradients(loss, parameters, create_graph=True)
    flow = torch.stack([(g * h).sum() for g, h in zip(gradient, with_graph, strict=True)]).sum()
    hessian_gradient = _gradients(flow, parameters)  # Hg, g held constant
    return {
        name: (w.detach() * hg).detach()
        for (name, w), hg in zip(weights.items(), hessian_gradient, strict=True)
    }


def synflow_prune(
    model: nn.Module, masks: Masks, fraction: Fractions, scope: str, inputs: ScoringInputs
) -> Masks:
    """Iterative SynFlow from `masks` down to (1 − fraction) of their kept weights."""
    if not isinstance(fraction, float | int):
        raise W2SError(
            "SynFlow ranks every layer together: it takes one fraction, not per-layer ones "
            "(leave out the synflow baseline, or lottery.layer_fractions)"
        )
    probe = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for parameter in probe.parameters():
            parameter.abs_()
    start_kept = masks.kept()
    target_kept = round((1 - fraction) * start_kept)
    current = masks
    iterations = max(1, inputs.synflow_iterations)
    for iteration in range(1, iterations + 1):
        # exponential schedule: the kept fraction shrinks geometrically to the target
        goal = round(start_kept * ((target_kept / start_kept) ** (iteration / iterations)))
        step_fraction = 1 - goal / current.kept() if current.kept() else 0.0
        probe.zero_grad()
        current.apply(probe)
        weights = _weights(probe, current)
        with masked_gradients(probe, current):
            output = inputs.ones_output(probe)
            grads = _gradients(output.sum(), list(weights.values()))
        scores = {
            name: (w.detach() * g).abs()
            for (name, w), g in zip(weights.items(), grads, strict=True)
        }
        current = prune_lowest(scores, current, max(0.0, step_fraction), scope)
    return current


# (model, masks, training inputs or None for a data-free strategy) → scores
ScoreFunction = Callable[[nn.Module, Masks, ScoringInputs | None], dict[str, torch.Tensor]]
Iterative = Callable[[nn.Module, Masks, Fractions, str, ScoringInputs], Masks]


@dataclass(frozen=True)
class Strategy:
    """A pruning strategy: one-shot scores (the highest kept), or an iterative pruner."""

    scores: ScoreFunction | None = None
    iterative: Iterative | None = None
    needs: str | None = "training data"  # what it scores from; None: nothing


def _given(inputs: ScoringInputs | None) -> ScoringInputs:
    assert inputs is not None  # `prune` and `one_shot_scores` checked `Strategy.needs`
    return inputs


STRATEGIES: dict[str, Strategy] = {
    "magnitude": Strategy(
        scores=lambda model, masks, inputs: magnitude_scores(model, masks), needs=None
    ),
    "random": Strategy(
        scores=lambda model, masks, inputs: random_scores(
            masks, inputs.seed if inputs is not None else 0
        ),
        needs=None,
    ),
    "snip": Strategy(scores=lambda model, masks, inputs: snip_scores(model, masks, _given(inputs))),
    "grasp": Strategy(
        scores=lambda model, masks, inputs: grasp_scores(model, masks, _given(inputs))
    ),
    "synflow": Strategy(iterative=synflow_prune, needs="the model's all-ones forward"),
}


def _strategy(name: str, inputs: ScoringInputs | None) -> Strategy:
    if name not in STRATEGIES:
        raise W2SError(f"unknown pruning strategy '{name}' (known: {', '.join(STRATEGIES)})")
    strategy = STRATEGIES[name]
    if strategy.needs is not None and inputs is None:
        raise W2SError(f"pruning strategy '{name}' needs {strategy.needs}")
    return strategy


def one_shot_scores(
    strategy: str, model: nn.Module, masks: Masks, inputs: ScoringInputs | None = None
) -> dict[str, torch.Tensor]:
    """A strategy's score of every prunable weight (higher = more worth keeping)."""
    chosen = _strategy(strategy, inputs)
    if chosen.scores is None:
        raise W2SError(f"'{strategy}' prunes iteratively: it has no one-shot scores")
    return chosen.scores(model, masks, inputs)


def prune(
    strategy: str,
    model: nn.Module,
    masks: Masks,
    fraction: Fractions,
    scope: str,
    inputs: ScoringInputs | None = None,
) -> Masks:
    """Remove `fraction` of the kept weights of `model` by `strategy`."""
    chosen = _strategy(strategy, inputs)
    if chosen.iterative is not None:
        return chosen.iterative(model, masks, fraction, scope, _given(inputs))
    return prune_lowest(one_shot_scores(strategy, model, masks, inputs), masks, fraction, scope)
