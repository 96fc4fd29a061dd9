"""Sampling completions from a causal LM with the public `generate` API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from weak2strong import distributed
from weak2strong.errors import W2SError
from weak2strong.settings import setting


@dataclass
class SamplingConfig:
    new_tokens: int = setting(24, help="tokens sampled per response")
    temperature: float = setting(0.7, help="sampling temperature (> 0)")
    top_k: int = setting(50, help="sample among the k most likely tokens; 0: off")
    top_p: float = setting(1.0, help="nucleus sampling mass; 1: off")
    batch_size: int = setting(16, help="prompts per batch (each batch is seeded by position)")

    def validate(self) -> None:
        if self.temperature <= 0:
            raise W2SError("temperature must be positive (sampling, not greedy decoding)")
        if self.top_k < 0 or not 0 < self.top_p <= 1:
            raise W2SError("top_k must be ≥ 0 (0: off) and top_p in (0, 1]")
        if self.new_tokens < 1 or self.batch_size < 1:
            raise W2SError("new_tokens and batch_size must be at least 1")


@torch.no_grad()
def sample_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    config: SamplingConfig,
    *,
    seed: int,
    description: str = "sampling",
    show_progress: bool = True,
    add_special_tokens: bool = True,
) -> list[str]:
    """One sampled continuation per prompt (only the new text), in prompt order.

    `add_special_tokens=False` for prompts that already hold them (chat-formatted text).

    Each batch of prompts is seeded by its position, so the samples are the same however
    the batches are shared between processes.
    """
    config.validate()
    device = next(model.parameters()).device

    def complete(indices: list[int]) -> list[str]:
        batch = tokenizer(
            [prompts[i] for i in indices],
            return_tensors="pt",
            padding=True,
            add_special_tokens=add_special_tokens,
        )
        batch = batch.to(device)
        torch.manual_seed(seed + indices[0])
        output = model.generate(
            # only what every causal LM takes (BERT-style tokenizers add token_type_ids)
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            do_sample=True,
            max_new_tokens=config.new_tokens,
            temperature=config.temperature,
            top_k=config.top_k,
            top_p=config.top_p,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return list(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))

    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
    try:
        return distributed.map_items(
            complete,
            len(prompts),
            config.batch_size,
            description=description,
            show_progress=show_progress,
        )
    finally:
        tokenizer.padding_side = previous_side
