"""Generative weak-to-strong: a weak LM's completions become a strong LM's SFT targets.

Only completion tokens are supervised: prompt and padding positions get label -100, found
from token counts and the attention mask, never from token ids (pad may equal EOS, and id 0
is a real token in some vocabularies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def build_sft_batch(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` for prompt+completion pairs.

    The completion is followed by EOS so the student learns to stop; when a pair is too
    long the completion is cut first, then the prompt from the left.
    """
    if len(prompts) != len(completions):
        raise ValueError("prompts and completions differ in length")
    rows: list[tuple[list[int], int]] = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + eos
        room = max_length - len(prompt_ids)
        if room < 1:
            prompt_ids = prompt_ids[-(max_length - 1) :]
            room = 1
        completion_ids = completion_ids[:room]
        rows.append((prompt_ids + completion_ids, len(prompt_ids)))
    width = max(len(ids) for ids, _ in rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
