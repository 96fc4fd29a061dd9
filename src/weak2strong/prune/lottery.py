"""Iterative magnitude pruning with rewinding, and the baselines at the same sparsities.

Any model fits: a `TicketProblem` says how to build a freshly initialised model for a
seed, how to train one (calling back after every optimiser step), and how to test it.

IMP (Frankle & Carbin 2019; Frankle et al. 2020 for k > 0): train the dense model,
recording its weights after `rewind_step` optimiser steps (0: the initialisation); then
each round prunes `fraction` of the remaining weights by magnitude, rewinds the survivors
to the recorded weights and retrains (the full schedule, with a fresh optimiser). Every
round is a cached step (its masks, trained prunable weights and test metric), so an
interrupted run resumes at the next round.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from weak2strong.errors import W2SError
from weak2strong.prune.masks import (
    Fractions,
    Masks,
    masked_gradients,
    prunable_weights,
    prune_lowest,
)
from weak2strong.prune.strategies import ScoringInputs, prune
from weak2strong.runs import Run
from weak2strong.settings import setting

BaselineName = Literal["random", "oneshot-magnitude", "snip", "grasp", "synflow", "reinit"]
BASELINES: tuple[BaselineName, ...] = typing.get_args(BaselineName)


@dataclass
class LotterySettings:
    rounds: int = setting(5, help="IMP rounds (sparsity 1 − (1 − fraction)^rounds)")
    fraction: float = setting(0.2, help="fraction of the remaining weights pruned per round")
    scope: Literal["global", "layer"] = setting(
        "global", help="global: one ranking over all layers; layer: per layer"
    )
    rewind_step: int = setting(
        0, help="rewind to the weights after this many steps; 0: the initialisation"
    )
    layer_fractions: dict[str, float] = setting(
        help="per-layer rates (scope layer): regex over a weight's name → fraction pruned per "
        "round, the first match; other weights prune `fraction`",
        factory=dict,
    )
    include: list[str] = setting(help="regexes over prunable parameter names", factory=list)
    exclude: list[str] = setting(help="regexes of parameters never pruned", factory=list)
    baselines: list[BaselineName] = setting(
        help="random, oneshot-magnitude, snip, grasp, synflow, reinit",
        factory=lambda: list(BASELINES),
    )

    def validate(self) -> None:
        if self.rounds < 1:
            raise W2SError("rounds must be at least 1")
        if not 0 < self.fraction < 1:
            raise W2SError(f"fraction must be in (0, 1), got {self.fraction}")
        if self.rewind_step < 0:
            raise W2SError("rewind_step must be ≥ 0")
        if self.layer_fractions and self.scope != "layer":
            raise W2SError("lottery.layer_fractions needs lottery.scope layer")
        for pattern, fraction in self.layer_fractions.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise W2SError(f"lottery.layer_fractions: bad regex '{pattern}': {error}") from None
            if not 0 < fraction < 1:
                raise W2SError(f"lottery.layer_fractions['{pattern}'] must be in (0, 1)")

    def sparsities(self) -> list[float]:
        """The nominal sparsity after each round (of `fraction`; per-layer rates differ)."""
        return [1 - (1 - self.fraction) ** r for r in range(1, self.rounds + 1)]

    def fractions(self, names: list[str]) -> Fractions:
        """What one round prunes: `fraction`, or each weight's rate by `layer_fractions`."""
        if not self.layer_fractions:
            return self.fraction
        return {
            name: next(
                (
                    rate
                    for pattern, rate in self.layer_fractions.items()
                    if re.search(pattern, name)
                ),
                self.fraction,
            )
            for name in names
        }

    def after_rounds(self, rounds: int, names: list[str]) -> Fractions:
        """The fraction pruned after `rounds` rounds, from dense (a baseline's one cut)."""
        fractions = self.fractions(names)
        if isinstance(fractions, Mapping):
            return {name: 1 - (1 - rate) ** rounds for name, rate in fractions.items()}
        return 1 - (1 - fractions) ** rounds


AfterStep = Callable[[int], None]


@dataclass
class TicketProblem:
    build: Callable[[int], nn.Module]  # a freshly initialised model for a seed
    train: Callable[[nn.Module, AfterStep, int], None]  # trains in place (model, hook, seed)
    evaluate: Callable[[nn.Module], float]  # test metric, higher is better
    scoring: Callable[[int], ScoringInputs] | None = None  # for SNIP, GraSP, SynFlow
    # a model with freshly drawn weights, for the reinitialisation control; default `build`
    # (right when `build` itself draws random weights, wrong for a pretrained model)
    random_init: Callable[[int], nn.Module] | None = None
    # what the last training measured beside the metric (the early-stopping iteration of an
    # image classifier), by name
    measures: Callable[[], dict[str, float]] | None = None


MEASURE = "__measure__/"  # the key prefix of a measure among a round's stored tensors


def measures_of(trained: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A round's test metric, and its training's measures if it has any."""
    record: dict[str, Any] = {"metric": float(trained["__metric__"])}
    measured = {
        key.removeprefix(MEASURE): float(value)
        for key, value in trained.items()
        if key.startswith(MEASURE)
    }
    if measured:
        record["measures"] = measured
    return record


def state_of(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    keys = names if names is not None else list(state)
    return {key: state[key].detach().cpu().clone() for key in keys}


class Lottery:
    """One seed's IMP rounds and baselines, each a cached step of `run`."""

    def __init__(self, problem: TicketProblem, settings: LotterySettings, run: Run) -> None:
        settings.validate()
        self.problem = problem
        self.settings = settings
        self.run = run
        weights = prunable_weights(problem.build(0), settings.include, settings.exclude)
        self.names = list(weights)
        self.shapes = {name: weight.shape for name, weight in weights.items()}

    def dense_masks(self) -> Masks:
        return Masks(
            {name: torch.ones(shape, dtype=torch.bool) for name, shape in self.shapes.items()}
        )

    # ---- masked training with a rewind point

    def _train(
        self, model: nn.Module, masks: Masks, seed: int, record_at: int | None = None
    ) -> dict[str, torch.Tensor] | None:
        """Train under `masks`; return the full state after `record_at` steps if asked."""
        recorded: dict[str, dict[str, torch.Tensor]] = {}
        if record_at == 0:
            recorded["state"] = state_of(model)

        def after_step(step: int) -> None:
            masks.apply(model)  # optimiser updates (weight decay, momentum) never revive one
            if record_at is not None and step == record_at:
                recorded["state"] = state_of(model)

        masks.apply(model)
        with masked_gradients(model, masks):
            self.problem.train(model, after_step, seed)
        masks.apply(model)
        if record_at is not None and "state" not in recorded:
            raise W2SError(f"rewind_step {record_at} is beyond the training run's steps")
        return recorded.get("state")

    def _tensors(self, name: str, compute: Callable[[], dict[str, torch.Tensor]]) -> Any:
        return self.run.cached_tensors(name, compute)

    # ---- IMP

    def dense(self, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The initial weights, the rewind point, the trained dense model (cached), metric."""
        init = self._tensors(f"seed{seed}-init", lambda: state_of(self.problem.build(seed)))

        def train_dense() -> dict[str, torch.Tensor]:
            model = self._model(seed, init)
            rewind = self._train(model, self.dense_masks(), seed, self.settings.rewind_step)
            assert rewind is not None
            self.run.save_tensors(f"seed{seed}-rewind", rewind)
            return self._outcome(model, self.names)

        trained = self._tensors(f"seed{seed}-round0-trained", train_dense)
        return init, trained

    def _model(self, seed: int, state: dict[str, torch.Tensor]) -> nn.Module:
        model = self.problem.build(seed)
        model.load_state_dict(state)
        return model

    def rewind_state(self, seed: int) -> dict[str, torch.Tensor]:
        state = self.run.load_tensors(f"seed{seed}-rewind")
        if state is None:
            raise W2SError(f"rewind point of seed {seed} is missing: rerun the dense step")
        return state

    def imp(self, seed: int) -> list[dict[str, Any]]:
        _, trained = self.dense(seed)
        masks = self.dense_masks()
        rounds = [self._record(0, masks, trained)]
        for number in range(1, self.settings.rounds + 1):
            masks = self._round_masks(seed, number, masks, trained)
            trained = self._tensors(
                f"seed{seed}-round{number}-trained",
                functools.partial(self._retrain_from_rewind, seed, masks),
            )
            rounds.append(self._record(number, masks, trained))
        return rounds

    def _round_masks(
        self, seed: int, number: int, masks: Masks, previous: dict[str, torch.Tensor]
    ) -> Masks:
        name = f"seed{seed}-round{number}-masks"
        stored = self.run.load_tensors(name)
        if stored is not None:
            return Masks(stored)
        magnitudes = {weight: previous[weight].abs() for weight in masks}
        new = prune_lowest(
            magnitudes, masks, self.settings.fractions(self.names), self.settings.scope
        )
        self.run.save_tensors(name, new.tensors())
        return new

    def _retrain_from_rewind(self, seed: int, masks: Masks) -> dict[str, torch.Tensor]:
        return self._retrain(seed, masks, self.rewind_state(seed))

    def _retrain(
        self, seed: int, masks: Masks, start: dict[str, torch.Tensor], train_seed: int | None = None
    ) -> dict[str, torch.Tensor]:
        model = self._model(seed, start)
        self._train(model, masks, seed if train_seed is None else train_seed)
        return self._outcome(model, list(masks))

    def _outcome(self, model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        """The trained prunable weights, the test metric and the training's measures."""
        trained = state_of(model, names)
        trained["__metric__"] = torch.tensor(self.problem.evaluate(model), dtype=torch.float64)
        measured = self.problem.measures() if self.problem.measures is not None else {}
        for name, value in measured.items():
            trained[f"{MEASURE}{name}"] = torch.tensor(value, dtype=torch.float64)
        return trained

    @staticmethod
    def _record(number: int, masks: Masks, trained: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"round": number, "sparsity": masks.sparsity(), **measures_of(trained)}

    # ---- baselines at the IMP sparsities

    def baseline(self, method: BaselineName, seed: int) -> list[dict[str, Any]]:
        init, trained = self.dense(seed)
        results = []
        for number in range(1, self.settings.rounds + 1):
            key = f"seed{seed}-{method}-round{number}"

            def compute(number: int = number, key: str = key) -> dict[str, Any]:
                pruned = self.settings.after_rounds(number, self.names)
                masks = self._baseline_masks(method, seed, number, pruned, init, trained)
                self.run.save_tensors(f"{key}-masks", masks.tensors())
                start = RULES[method].start(self, seed, init)
                outcome = self._retrain(seed, masks, start)
                return {"sparsity": masks.sparsity(), **measures_of(outcome)}

            results.append({"round": number, **self.run.cached_json(key, compute)})
        return results

    def _baseline_masks(
        self,
        method: BaselineName,
        seed: int,
        number: int,
        pruned: Fractions,
        init: dict[str, torch.Tensor],
        trained: dict[str, torch.Tensor],
    ) -> Masks:
        rule = RULES[method]
        if rule.masks == "ticket":
            name = f"seed{seed}-round{number}-masks"
            stored = self.run.load_tensors(name)
            if stored is None:
                self.imp(seed)  # the ticket's masks come from its IMP rounds
                stored = self.run.load_tensors(name)
            assert stored is not None
            return Masks(stored)
        dense = self.dense_masks()
        if rule.masks == "trained magnitude":  # the trained dense weights, pruned at once
            magnitudes = {name: trained[name].abs() for name in self.names}
            return prune_lowest(magnitudes, dense, pruned, self.settings.scope)
        inputs = self.problem.scoring(seed) if self.problem.scoring is not None else None
        model = self._model(seed, init)  # pruning at initialisation
        return prune(rule.masks, model, dense, pruned, self.settings.scope, inputs)

    def fresh_start(self, seed: int, init: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Freshly drawn prunable weights; the rest (embeddings, norms, biases, head) starts
        where IMP's tickets do."""
        fresh = self.problem.random_init or self.problem.build
        return {**init, **state_of(fresh(seed + 10_000), self.names)}


@dataclass(frozen=True)
class BaselineRule:
    # "ticket": the winning ticket's masks (IMP's, same round); "trained magnitude": the
    # trained dense weights pruned at once; else a strategy's name, pruning at initialisation
    masks: str
    # where the masked network starts training from (given the seed and the initialisation)
    start: Callable[[Lottery, int, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _from_init(lottery: Lottery, seed: int, init: dict[str, torch.Tensor]) -> Any:
    return init


RULES: dict[BaselineName, BaselineRule] = {
    "random": BaselineRule("random", _from_init),
    "oneshot-magnitude": BaselineRule(
        "trained magnitude", lambda lottery, seed, init: lottery.rewind_state(seed)
    ),
    "snip": BaselineRule("snip", _from_init),
    "grasp": BaselineRule("grasp", _from_init),
    "synflow": BaselineRule("synflow", _from_init),
    # the winning ticket's masks over freshly drawn weights (Frankle & Carbin's control)
    "reinit": BaselineRule("ticket", Lottery.fresh_start),
}
assert tuple(RULES) == BASELINES
