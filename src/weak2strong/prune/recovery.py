"""Recovery: fine-tuning a one-shot-pruned language model with its mask held fixed.

The full model is trained (next-token loss on token windows of the task's train split) by
the shared training loop; pruned weights get zero gradients and are zeroed again after
every step, so the model that is measured afterwards has exactly the pruned model's mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from weak2strong.prune.masks import Masks, masked_gradients
from weak2strong.prune.oneshot import block_linears, transformer_blocks
from weak2strong.settings import setting
from weak2strong.training import AdamWSettings, StepInfo, train


@dataclass
class RecoverySettings(AdamWSettings):
    windows: int = setting(
        0, help="train-split token windows to fine-tune each pruned model on (0: no recovery)"
    )
    epochs: int = setting(1, help="epochs over the recovery windows")
    batch_size: int = setting(8, help="windows per optimiser step, across all processes")
    learning_rate: float = setting(5e-5, help="AdamW learning rate of the recovery")


def pruned_masks(model: nn.Module) -> Masks:
    """Keep-masks of the blocks' linear weights as pruning left them (nonzero = kept)."""
    names = {id(module): name for name, module in model.named_modules()}
    return Masks(
        {
            f"{names[id(layer)]}.weight": layer.weight.detach() != 0
            for block in transformer_blocks(model)
            for layer in block_linears(block).values()
        }
    )


def recover(
    model: nn.Module, windows: torch.Tensor, settings: RecoverySettings, *, seed: int
) -> Masks:
    """Fine-tune `model` in place on `windows` [count, length], its pruned weights held at
    zero; returns the masks it was held to."""
    masks = pruned_masks(model)
    model.float()  # trained in fp32 whatever it is measured in
    device = next(model.parameters()).device

    def batch_loss(
        module: nn.Module, indices: list[int], info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # a process without windows in this batch runs one, kept out of the loss, so that its
        # zero gradients join DDP's all-reduce
        batch = windows[indices or [0]].to(device)
        logits = module(input_ids=batch, use_cache=False).logits[:, :-1]
        losses = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none"
        )
        tokens = batch[:, 1:].numel() if indices else 0
        return losses.sum() * bool(indices), torch.tensor(float(tokens), device=device)

    model.train()
    with masked_gradients(model, masks):
        train(
            model,
            len(windows),
            batch_loss,
            settings,
            seed=seed,
            after_step=lambda step: masks.apply(model),
            curves_name="recovery",
        )
    masks.apply(model)
    model.eval()
    return masks
