"""Classifiers a method trains: a head on cached features, or a backbone with a head on texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from weak2strong.models.adapters import LoraSettings, with_lora
from weak2strong.models.features import pool

# Cached features [n, width] (probes), or the texts themselves (fine-tuning).
Inputs = torch.Tensor | Sequence[str]


def one_hot(labels: Sequence[int], classes: int) -> np.ndarray:
    """Integer labels as float32 probability rows, the target format of every training loop."""
    return np.eye(classes, dtype=np.float32)[np.asarray(labels, dtype=np.int64)]


def take(inputs: Inputs, indices: torch.Tensor | Sequence[int]) -> Inputs:
    """The rows of `inputs` at `indices`, features or texts alike."""
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(indices, dtype=torch.long).to(inputs.device)]
    return [inputs[int(i)] for i in indices]


def head(width: int, num_classes: int, hidden: int) -> nn.Module:
    """A linear head, or (hidden > 0) a one-hidden-layer MLP."""
    if hidden == 0:
        return nn.Linear(width, num_classes)
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_classes))


class Probe(nn.Module):
    """A head on standardised features (statistics of the training features, kept as buffers)."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, features: torch.Tensor, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", features.mean(0))
        self.register_buffer("scale", features.std(0).clamp(min=1e-6))
        self.head = head(features.shape[1], num_classes, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        device = self.mean.device
        return self.head((features.to(device) - self.mean) / self.scale)


class TextClassifier(nn.Module):
    """Backbone + mask-pooled hidden state + head; texts in, logits out.

    With `lora.rank` > 0 only LoRA adapters (peft) and the head train; rank 0 trains every
    weight of the backbone.
    """

    def __init__(
        self,
        backbone: Any,
        tokenizer: Any,
        num_classes: int,
        *,
        lora: LoraSettings,
        max_length: int,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        self.backbone = with_lora(backbone, lora)
        self.head = head(backbone.config.hidden_size, num_classes, hidden=0)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.head.parameters()).device
        batch = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        ).to(device)
        hidden = self.backbone(**batch).last_hidden_state
        return self.head(pool(hidden.float(), batch["attention_mask"], self.pooling))
