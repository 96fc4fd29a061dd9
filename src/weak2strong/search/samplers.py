"""Samplers for the large model: transformers (one KV cache for every candidate) or vLLM.

A sampler holds rows (candidate responses). `start` sets one row per prompt; `extend`
first makes the rows copies of `parents` (fan-out and beam selection in one step), then
samples up to `max_tokens` more tokens for every active, unfinished row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch

from weak2strong.errors import W2SError
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import CachedRows, LanguageModel

BACKENDS = ("transformers", "vllm")


def token_sampler(
    settings: SamplingConfig, generator: torch.Generator
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Next-token sampling from logits [rows, vocab] with transformers' public warpers."""
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

    def sample(logits: torch.Tensor) -> torch.Tensor:
        no_history = torch.zeros((logits.shape[0], 0), dtype=torch.long, device=logits.device)
        scores = warpers(no_history, logits.float())  # type: ignore[arg-type]
        probs = torch.softmax(scores, dim=-1)
        return torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0]

    return sample


class Sampler(Protocol):
    lm: LanguageModel
    responses: list[list[int]]
    finished: list[bool]
    sampled_tokens: int

    def start(self, prompts: Sequence[str], seed: int) -> None: ...

    def extend(self, parents: Sequence[int], max_tokens: int) -> None: ...

    def texts(self) -> list[str]: ...


class _Rows:
    """Row bookkeeping shared by both backends."""

    lm: LanguageModel

    def __init__(self) -> None:
        self.responses: list[list[int]] = []
        self.finished: list[bool] = []
        self.sampled_tokens = 0

    def _reorder(self, parents: Sequence[int]) -> None:
        self.responses = [list(self.responses[p]) for p in parents]
        self.finished = [self.finished[p] for p in parents]

    def texts(self) -> list[str]:
        return [
            self.lm.tokenizer.decode(tokens, skip_special_tokens=True) for tokens in self.responses
        ]


class TransformersSampler(_Rows):
    def __init__(self, lm: LanguageModel, settings: SamplingConfig) -> None:
        super().__init__()
        settings.validate()
        self.lm = lm
        self.settings = settings
        self.rows = CachedRows(lm)
        self._sample: Callable[[torch.Tensor], torch.Tensor] | None = None

    def start(self, prompts: Sequence[str], seed: int) -> None:
        generator = torch.Generator(device=self.lm.device).manual_seed(seed)
        self._sample = token_sampler(self.settings, generator)
        self.rows.prefill([self.lm.prompt_ids(prompt) for prompt in prompts])
        self.responses = [[] for _ in prompts]
        self.finished = [False for _ in prompts]

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        assert self._sample is not None, "start() first"
        self.rows.select(parents)
        self._reorder(parents)
        eos = self.lm.eos_ids
        for _ in range(max_tokens):
            active = [row for row, done in enumerate(self.finished) if not done]
            if not active:
                break
            tokens = self._sample(self.rows.last_logits[active]).tolist()
            feeds: list[list[int]] = [[] for _ in self.finished]
            for row, token in zip(active, tokens, strict=True):
                self.sampled_tokens += 1
                if token in eos:
                    self.finished[row] = True  # EOS ends the row; it is not part of the text
                else:
                    self.responses[row].append(token)
                    feeds[row] = [token]
            self.rows.append(feeds)


class VLLMSampler(_Rows):
    """The large model served by vLLM (GPU only): each chunk is a request of n samples per
    distinct parent, continuing the parent's tokens; scoring stays in transformers."""

    def __init__(self, name: str, template: str, settings: SamplingConfig, **engine: Any) -> None:
        super().__init__()
        settings.validate()
        try:
            from vllm import LLM
        except ImportError:
            raise W2SError(
                "--backend vllm needs vLLM on a CUDA machine: pip install 'weak2strong[vllm]'"
            ) from None
        from weak2strong.models import load_tokenizer, resolve

        self.llm = LLM(model=resolve(name).location, **engine)
        self.lm = LanguageModel(name, _NoModel(), load_tokenizer(name), template)
        self.settings = settings
        self.prompt_ids: list[list[int]] = []
        self.seed = 0

    def start(self, prompts: Sequence[str], seed: int) -> None:
        self.seed = seed
        self.prompt_ids = [self.lm.prompt_ids(prompt) for prompt in prompts]
        self.responses = [[] for _ in prompts]
        self.finished = [False for _ in prompts]

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        from vllm import SamplingParams, TokensPrompt

        self.prompt_ids = [self.prompt_ids[p] for p in parents]
        self._reorder(parents)
        groups: list[list[int]] = []  # runs of rows that share a parent: one request with n
        for row, parent in enumerate(parents):
            if groups and parents[groups[-1][0]] == parent and not self.finished[row]:
                groups[-1].append(row)
            elif not self.finished[row]:
                groups.append([row])
        if not groups:
            return
        requests = [
            TokensPrompt(prompt_token_ids=self.prompt_ids[g[0]] + self.responses[g[0]])
            for g in groups
        ]
        params = [
            SamplingParams(
                n=len(g),
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                top_k=self.settings.top_k if self.settings.top_k > 0 else -1,
                top_p=self.settings.top_p,
                seed=self.seed + i,
            )
            for i, g in enumerate(groups)
        ]
        self.seed += len(groups)
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        for group, output in zip(groups, outputs, strict=True):
            for row, completion in zip(group, output.outputs, strict=True):
                tokens = list(completion.token_ids)
                self.sampled_tokens += len(tokens)
                if completion.finish_reason == "stop":
                    self.finished[row] = True
                    tokens = [t for t in tokens if t not in self.lm.eos_ids]
                self.responses[row] += tokens


class _NoModel:
    """vLLM owns the weights; the LanguageModel wrapper only needs the tokenizer."""

    generation_config = None
