"""What the large model's samplers share: the protocol, row bookkeeping and per-sequence seeds.

The backends (transformers, vLLM, an API server) each have their module; `backends` names them.

A sampler holds rows (candidate responses). `start` sets one row per prompt; `extend`
first makes the rows copies of `parents` (fan-out and beam selection in one step), then
samples up to `max_tokens` more tokens for every active, unfinished row.

Every sampled sequence has its own seed, derived from (run seed, prompt index, step,
beam, child): the `child`-th continuation of the `beam`-th distinct parent of a prompt at
the `step`-th extension. Texts therefore depend neither on which prompts share a batch
nor on how batches are shared between processes, and no two sequences share a seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from weak2strong.data.prompt_files import Prompt
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import LanguageModel


def group_seed(seed: int, prompt: int, step: int, beam: int) -> int:
    """The seed of child 0 of a beam's continuations; child j's is this + j (as vLLM seeds
    the j-th sample of an n-sample request), so children never share a seed."""
    key = f"{seed}/{prompt}/{step}/{beam}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 2  # room for + child


def sequence_seeds(
    seed: int, prompt_of: Sequence[int], parents: Sequence[int], step: int
) -> list[int]:
    """One seed per new row (a copy of `parents[i]`), from its prompt, beam and child index.

    A prompt's beams are its distinct parents in order of first appearance; a parent's
    children are counted in order.
    """
    beams: dict[tuple[int, int], int] = {}
    children: dict[int, int] = {}
    per_prompt: dict[int, int] = {}
    seeds = []
    for parent in parents:
        prompt = prompt_of[parent]
        if (prompt, parent) not in beams:
            beams[(prompt, parent)] = per_prompt.get(prompt, 0)
            per_prompt[prompt] = beams[(prompt, parent)] + 1
        child = children.get(parent, 0)
        children[parent] = child + 1
        seeds.append(group_seed(seed, prompt, step, beams[(prompt, parent)]) + child)
    return seeds


def request_groups(
    parents: Sequence[int], finished: Sequence[bool], seeds: Sequence[int]
) -> list[list[int]]:
    """Runs of unfinished rows that copy the same parent: one n-sample request each.

    Servers (vLLM's engine and its OpenAI server) seed the j-th sample of a request with
    seed + j, so sending the group's first seed gives every row the seed `sequence_seeds`
    gave it.
    """
    groups: list[list[int]] = []
    for row, parent in enumerate(parents):
        if finished[row]:
            continue
        if groups and parents[groups[-1][0]] == parent:
            groups[-1].append(row)
        else:
            groups.append([row])
    assert all(seeds[row] == seeds[g[0]] + j for g in groups for j, row in enumerate(g))
    return groups


def row_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(value) for value in seeds]


def token_sampler(
    settings: SamplingConfig,
) -> Callable[[torch.Tensor, Sequence[torch.Generator]], torch.Tensor]:
    """Next-token sampling from logits [rows, vocab] with transformers' public warpers, each
    row drawing from its own generator."""
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList([TemperatureLogitsWarper(settings.temperature)])
    if settings.top_k > 0:
        warpers.append(TopKLogitsWarper(settings.top_k))
    if settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(settings.top_p))

    def sample(logits: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
        no_history = torch.zeros((logits.shape[0], 0), dtype=torch.long, device=logits.device)
        scores = warpers(no_history, logits.float())  # type: ignore[arg-type]
        probs = torch.softmax(scores, dim=-1)
        return torch.cat(
            [
                torch.multinomial(row.to(generator.device), 1, generator=generator).cpu()
                for row, generator in zip(probs, generators, strict=True)
            ]
        )

    return sample


class Sampler(Protocol):
    finished: list[bool]
    sampled_tokens: int
    dtype: str  # what the large model computes in, for results.json

    def start(
        self, prompts: Sequence[Prompt], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None: ...

    def extend(self, parents: Sequence[int], max_tokens: int) -> None: ...

    def texts(self) -> list[str]: ...


class Rows:
    """Row bookkeeping shared by the backends: responses, which prompt each row answers, and
    each new row's seed."""

    lm: LanguageModel

    def __init__(self) -> None:
        self.responses: list[list[int]] = []
        self.finished: list[bool] = []
        self.sampled_tokens = 0
        self.seed = 0
        self.prompt_of: list[int] = []  # per row, the index of its prompt in the whole run
        self.steps = 0

    def _start_rows(self, count: int, seed: int, prompt_ids: Sequence[int] | None) -> None:
        self.seed = seed
        self.prompt_of = list(prompt_ids) if prompt_ids is not None else list(range(count))
        if len(self.prompt_of) != count:
            raise ValueError("one prompt id per prompt")
        self.responses = [[] for _ in range(count)]
        self.finished = [False] * count
        self.steps = 0
        self.sampled_tokens = 0  # counted per decode: a reused engine starts again

    def _reorder(self, parents: Sequence[int]) -> list[int]:
        """Rows become copies of `parents`; returns the new rows' seeds."""
        seeds = sequence_seeds(self.seed, self.prompt_of, parents, self.steps)
        self.steps += 1
        self.responses = [list(self.responses[p]) for p in parents]
        self.finished = [self.finished[p] for p in parents]
        self.prompt_of = [self.prompt_of[p] for p in parents]
        return seeds

    def texts(self) -> list[str]:
        return [
            self.lm.tokenizer.decode(tokens, skip_special_tokens=True) for tokens in self.responses
        ]
