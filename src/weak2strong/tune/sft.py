"""Supervised fine-tuning of a causal LM on prompt → completion pairs.

Only completion tokens are supervised: prompt and padding positions get label -100, found
from token counts and the attention mask, never from token ids (pad may equal EOS, and id 0
is a real token in some vocabularies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.models.adapters import LoraSettings, with_lora
from weak2strong.settings import setting
from weak2strong.training import StepInfo, train
from weak2strong.training.settings import AdamWSettings

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


def completion_token_losses(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """−log p of every supervised token of `build_sft_batch`'s rows [rows, length − 1]
    (0 at prompt and padding positions)."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]  # position t predicts token t+1
    return F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
    )


@torch.no_grad()
def completion_log_probs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 16,
    description: str = "log-likelihoods",
) -> np.ndarray:
    """log p(completion + EOS | prompt) per pair, batches shared between processes."""
    model.eval()

    def log_probs(indices: list[int]) -> torch.Tensor:
        batch = build_sft_batch(
            tokenizer, [prompts[i] for i in indices], [completions[i] for i in indices], max_length
        )
        return -completion_token_losses(model, batch).sum(1)

    return (
        distributed.map_rows(
            log_probs, len(prompts), batch_size, description=description, show_progress=False
        )
        .double()
        .numpy()
    )


@dataclass
class SFTConfig(AdamWSettings):
    lora: LoraSettings = setting(help="LoRA adapters (rank 0: every weight)", factory=LoraSettings)
    epochs: int = setting(2, help="epochs over the examples")
    batch_size: int = setting(
        8, help="prompt/completion pairs per optimiser step, across all processes"
    )
    learning_rate: float = setting(2e-4, help="AdamW learning rate")
    max_length: int = setting(96, help="tokens per prompt + completion")
    weight_decay: float = setting(0.01, help="AdamW weight decay (its default)")


def train_sft(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    config: SFTConfig,
    seed: int,
    curves_name: str = "sft",
) -> Any:
    """LoRA (or, with lora.rank=0, full) supervised fine-tuning on completion tokens only.

    The loss is the mean over every supervised token of the global batch.
    """
    model = with_lora(model, config.lora, task_type="CAUSAL_LM")

    def batch_loss(
        module: torch.nn.Module, indices: list[int], info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = indices or [0]  # a process without examples still joins DDP's all-reduce
        batch = build_sft_batch(
            tokenizer,
            [prompts[i] for i in rows],
            [completions[i] for i in rows],
            config.max_length,
        )
        token_losses = completion_token_losses(module, batch).sum()
        tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().float().to(token_losses.device)
        if not indices:
            return token_losses * 0.0, tokens * 0.0
        return token_losses, tokens

    tuned = train(
        model,
        len(prompts),
        batch_loss,
        config,
        seed=seed,
        curves_name=curves_name,
    )
    tuned.eval()
    return tuned
