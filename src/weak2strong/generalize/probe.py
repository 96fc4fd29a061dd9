"""A linear or MLP head trained on cached features: the CPU default training regime."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from weak2strong.generalize.config import ProbeConfig, StrategyConfig
from weak2strong.generalize.strategies import strategy_loss


class Probe(nn.Module):
    def __init__(self, features: torch.Tensor, num_classes: int, hidden: int) -> None:
        super().__init__()
        # Standardise with the training features' statistics, stored with the head.
        self.register_buffer("mean", features.mean(0))
        self.register_buffer("scale", features.std(0).clamp(min=1e-6))
        width = features.shape[1]
        self.head: nn.Module = (
            nn.Linear(width, num_classes)
            if hidden == 0
            else nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_classes))
        )

    mean: torch.Tensor
    scale: torch.Tensor

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.scale)

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor) -> np.ndarray:
        self.eval()
        return torch.softmax(self(features), dim=-1).numpy()


def train_probe(
    features: torch.Tensor,
    targets: np.ndarray,
    *,
    strategy: str,
    probe: ProbeConfig,
    strategy_config: StrategyConfig,
    seed: int,
) -> Probe:
    """Fit a head to soft `targets` [n, classes] with the strategy's loss."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Probe(features, targets.shape[1], probe.hidden)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=probe.learning_rate, weight_decay=probe.weight_decay
    )
    target_tensor = torch.as_tensor(targets, dtype=torch.float32)
    steps_per_epoch = -(-len(features) // probe.batch_size)
    total_steps = probe.epochs * steps_per_epoch
    step = 0
    model.train()
    for _ in range(probe.epochs):
        for batch in torch.randperm(len(features), generator=generator).split(probe.batch_size):
            loss = strategy_loss(
                strategy,
                model(features[batch]),
                target_tensor[batch],
                step,
                total_steps,
                strategy_config,
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            step += 1
    return model
