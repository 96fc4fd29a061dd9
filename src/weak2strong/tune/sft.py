"""Supervised fine-tuning of a causal LM on prompt → completion pairs.

Only completion tokens are supervised: prompt and padding positions get label -100, found
from token counts and the attention mask, never from token ids (pad may equal EOS, and id 0
is a real token in some vocabularies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from weak2strong.models.adapters import LoraSettings, with_lora
from weak2strong.tracking import training_curves

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


@dataclass
class SFTConfig:
    lora: LoraSettings = field(default_factory=LoraSettings)
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    max_length: int = 96


def train_sft(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    config: SFTConfig,
    seed: int,
    curves_name: str = "sft",
) -> Any:
    """LoRA (or, with lora.rank=0, full) supervised fine-tuning on completion tokens only."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, TensorDataset

    model = with_lora(model, config.lora, task_type="CAUSAL_LM")
    accelerator = Accelerator()
    torch.manual_seed(seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate)
    loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
        TensorDataset(torch.arange(len(prompts))),
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    model.train()
    step = 0
    settings = {"epochs": config.epochs, "learning_rate": config.learning_rate, "seed": seed}
    with training_curves(curves_name, settings) as log_values:
        for _ in range(config.epochs):
            for (indices,) in loader:
                rows = [int(i) for i in indices]
                batch = build_sft_batch(
                    tokenizer,
                    [prompts[i] for i in rows],
                    [completions[i] for i in rows],
                    config.max_length,
                )
                inputs = {key: value.to(accelerator.device) for key, value in batch.items()}
                loss = model(**inputs).loss
                optimiser.zero_grad()
                accelerator.backward(loss)
                optimiser.step()
                step += 1
                log_values({"train/loss": loss.detach()}, step)
    model = accelerator.unwrap_model(model)
    model.eval()
    return model
