"""The search methods by name: each one's label and how it decodes a batch of prompts.

`--method` picks them; `Search` runs whatever the registry holds, so a new decoder is one
entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from weak2strong.data.prompt_files import Prompt
from weak2strong.search.config import METHODS, MethodName, SearchConfig
from weak2strong.search.decoders import (
    CBSSettings,
    Decoded,
    best_of_n,
    chunk_beam_search,
    emulated_fine_tuning,
    sample,
)
from weak2strong.search.lm import LanguageModel
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.samplers import Sampler


class Models(Protocol):
    """The loaded models a decoder reads (loaded on first use)."""

    config: SearchConfig

    def sampler(self) -> Sampler: ...

    def pair(self) -> ModelPair: ...

    def large(self) -> LanguageModel: ...


@dataclass(frozen=True)
class Batch:
    prompts: list[Prompt]
    prompt_ids: Sequence[int] | None  # their indices in the run: they pick the seeds
    cbs: CBSSettings | None = None  # a curve point's settings instead of the configured ones


@dataclass(frozen=True)
class Method:
    label: Callable[[SearchConfig], str]
    decode: Callable[[Models, Batch], Decoded]
    steered: bool  # the small pair scores or mixes in: it loads before decoding starts


def cbs_label(settings: CBSSettings) -> str:
    return f"cbs({settings.width},{settings.successors},{settings.chunk_length or '∞'})"


def _sample(models: Models, batch: Batch) -> Decoded:
    config = models.config
    return sample(
        models.sampler(), batch.prompts, config.sampling.new_tokens, config.seed, batch.prompt_ids
    )


def _best_of_n(models: Models, batch: Batch) -> Decoded:
    config = models.config
    return best_of_n(
        models.sampler(),
        PairScorer(models.pair()),
        batch.prompts,
        config.bon_n,
        config.sampling.new_tokens,
        config.seed,
        batch.prompt_ids,
    )


def _chunk_beam_search(models: Models, batch: Batch) -> Decoded:
    config = models.config
    return chunk_beam_search(
        models.sampler(),
        PairScorer(models.pair()),
        batch.prompts,
        batch.cbs or config.cbs,
        config.sampling.new_tokens,
        config.seed,
        batch.prompt_ids,
    )


def _emulated_fine_tuning(models: Models, batch: Batch) -> Decoded:
    config = models.config
    return emulated_fine_tuning(
        models.large(),
        models.pair(),
        batch.prompts,
        config.eft_beta,
        config.sampling,
        config.sampling.new_tokens,
        config.seed,
        batch.prompt_ids,
    )


REGISTRY: dict[MethodName, Method] = {
    "sample": Method(lambda config: "sample", _sample, steered=False),
    "bon": Method(lambda config: f"bon-{config.bon_n}", _best_of_n, steered=True),
    "cbs": Method(lambda config: cbs_label(config.cbs), _chunk_beam_search, steered=True),
    "eft": Method(
        lambda config: f"eft(β={config.eft_beta:g})", _emulated_fine_tuning, steered=True
    ),
}
assert tuple(REGISTRY) == METHODS


def method_label(method: MethodName, config: SearchConfig) -> str:
    return REGISTRY[method].label(config)
