"""Student training, one loop for both regimes.

`probe`: a linear/MLP head on cached, frozen backbone features (the CPU default).
`finetune`: the backbone itself (LoRA adapters through peft, or every weight) plus a head,
on the texts. Both run through the same `fit` loop and the same strategy losses, driven by
accelerate, so `accelerate launch -m weak2strong.cli generalize ...` shards the batches over
GPUs without code changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from weak2strong.generalize.config import FinetuneConfig, StrategyConfig
from weak2strong.generalize.strategies import strategy_loss
from weak2strong.models.adapters import with_lora
from weak2strong.models.features import pool
from weak2strong.tracking import training_curves

Inputs = torch.Tensor | Sequence[str]


class Probe(nn.Module):
    """A head on standardised features (statistics of the training features, kept as buffers)."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, features: torch.Tensor, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", features.mean(0))
        self.register_buffer("scale", features.std(0).clamp(min=1e-6))
        self.head = _head(features.shape[1], num_classes, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.scale)


class TextClassifier(nn.Module):
    """Backbone + mask-pooled hidden state + head; texts in, logits out."""

    def __init__(
        self, backbone: Any, tokenizer: Any, num_classes: int, config: FinetuneConfig
    ) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.config = config
        backbone = with_lora(backbone, config.lora)
        self.backbone = backbone
        self.head = _head(backbone.config.hidden_size, num_classes, hidden=0)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.head.parameters()).device
        batch = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.config.max_length,
        ).to(device)
        hidden = self.backbone(**batch).last_hidden_state
        return self.head(pool(hidden.float(), batch["attention_mask"], self.config.pooling))


def _head(width: int, num_classes: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(width, num_classes)
    return nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_classes))


def take(inputs: Inputs, indices: torch.Tensor) -> Inputs:
    if isinstance(inputs, torch.Tensor):
        return inputs[indices.to(inputs.device)]
    return [inputs[int(i)] for i in indices]


def fit(
    model: nn.Module,
    inputs: Inputs,
    targets: np.ndarray,
    *,
    strategy: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    strategy_config: StrategyConfig,
    seed: int,
    after_step: Callable[[int], None] | None = None,
    curves_name: str = "fit",
) -> nn.Module:
    """Minimise the strategy's loss of `model(inputs)` against soft `targets` [n, classes].

    `after_step(n)` runs after the n-th optimiser step (pruning keeps masks and rewind
    points through it). With a tracker asked for, the loss per step is logged under
    `curves_name`.
    """
    from accelerate import Accelerator

    accelerator = Accelerator()
    torch.manual_seed(seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=learning_rate, weight_decay=weight_decay)
    loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
        TensorDataset(torch.arange(len(targets))),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    target_tensor = torch.as_tensor(targets, dtype=torch.float32)
    total_steps = epochs * len(loader)
    step = 0
    model.train()
    settings = {
        "strategy": strategy,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "seed": seed,
        "examples": len(targets),
    }
    with training_curves(curves_name, settings) as log_values:
        for _ in range(epochs):
            for (indices,) in loader:
                logits = model(take(inputs, indices))
                batch_targets = target_tensor[indices.cpu()].to(logits.device)
                loss = strategy_loss(
                    strategy, logits, batch_targets, step, total_steps, strategy_config
                )
                optimiser.zero_grad()
                accelerator.backward(loss)
                optimiser.step()
                step += 1
                log_values({"train/loss": loss.detach()}, step)
                if after_step is not None:
                    after_step(step)
    return accelerator.unwrap_model(model)


@torch.no_grad()
def predict_proba(model: nn.Module, inputs: Inputs, batch_size: int = 64) -> np.ndarray:
    model.eval()
    chunks = []
    for start in range(0, len(inputs), batch_size):
        indices = torch.arange(start, min(start + batch_size, len(inputs)))
        chunks.append(torch.softmax(model(take(inputs, indices)).float(), dim=-1).cpu())
    return torch.cat(chunks).numpy()
