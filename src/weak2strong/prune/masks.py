"""Pruning masks: which weights are prunable, which are pruned, and keeping them at zero.

A mask is a boolean tensor per prunable weight (True = kept). Masked training zeroes the
pruned weights once, zeroes their gradients in a hook, and zeroes them again after every
optimizer step, so no optimizer (momentum, weight decay, Adam's moments) can revive them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from weak2strong.errors import W2SError
from weak2strong.fileio import write_tensors

# the fraction of kept weights to remove: one for all, or one per prunable weight's name
Fractions = float | Mapping[str, float]


def prunable_weights(
    model: nn.Module, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> dict[str, torch.Tensor]:
    """The weights of the model's `nn.Linear` and `nn.Conv2d` layers, filtered by name.

    `include` / `exclude` are regular expressions searched in the parameter name
    (e.g. exclude `^head\\.` to leave a classifier head dense).
    """
    chosen: dict[str, torch.Tensor] = {}
    for module_name, module in model.named_modules():
        if not isinstance(module, nn.Linear | nn.Conv2d):
            continue
        name = f"{module_name}.weight" if module_name else "weight"
        if include and not any(re.search(pattern, name) for pattern in include):
            continue
        if any(re.search(pattern, name) for pattern in exclude):
            continue
        chosen[name] = module.weight
    if not chosen:
        raise W2SError("no prunable weights: no linear or conv layer matches include/exclude")
    return chosen


class Masks:
    """Boolean keep-masks by parameter name."""

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self.masks = {name: mask.bool() for name, mask in masks.items()}
        self._multipliers: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}

    def multiplier(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """The mask as 0/1 in `like`'s dtype and device, converted once, not every step."""
        key = (name, like.device, like.dtype)
        if key not in self._multipliers:
            self._multipliers[key] = self.masks[name].to(like.device, like.dtype)
        return self._multipliers[key]

    @classmethod
    def dense(cls, weights: Mapping[str, torch.Tensor]) -> Masks:
        return cls({name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()})

    @classmethod
    def load(cls, path: Path) -> Masks:
        from safetensors.torch import load_file

        return cls(load_file(path))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The masks as uint8 tensors, the form they are stored in (safetensors has no bool)."""
        return {name: mask.to(torch.uint8) for name, mask in self.masks.items()}

    def save(self, path: Path) -> None:
        write_tensors(path, self.tensors())

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.masks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.masks)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self.masks.items())

    def total(self) -> int:
        return sum(mask.numel() for mask in self.masks.values())

    def kept(self) -> int:
        return sum(int(mask.sum()) for mask in self.masks.values())

    def sparsity(self) -> float:
        """Fraction of prunable weights that are pruned."""
        return 1.0 - self.kept() / self.total()

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the pruned weights in place."""
        parameters = dict(model.named_parameters())
        for name in self.masks:
            parameter = parameters[name]
            parameter.mul_(self.multiplier(name, parameter))


@contextmanager
def masked_gradients(model: nn.Module, masks: Masks) -> Iterator[None]:
    """Within the block, gradients of pruned weights are zero (hooks removed afterwards)."""
    parameters = dict(model.named_parameters())
    handles = []
    for name in masks:
        parameter = parameters[name]
        keep = masks.multiplier(name, parameter)
        handles.append(parameter.register_hook(lambda grad, keep=keep: grad * keep))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def prune_lowest(
    scores: Mapping[str, torch.Tensor], masks: Masks, fraction: Fractions, scope: str = "global"
) -> Masks:
    """Remove `fraction` of the still-kept weights with the lowest scores.

    `global`: one ranking over every layer; `layer`: the same fraction of each layer, or
    each layer's own fraction when `fraction` maps weight names to fractions (Frankle &
    Carbin prune LeNet's hidden layers 20% per round, its output layer 10%). Exactly
    round(fraction × kept) weights go, so sparsity after n rounds is 1 − (1 − p)^n to
    within one weight per round.
    """
    if scope not in ("global", "layer"):
        raise W2SError(f"unknown pruning scope '{scope}' (global or layer)")
    if isinstance(fraction, Mapping) and scope != "layer":
        raise W2SError("per-layer pruning fractions need scope 'layer'")
    rates = (
        {name: float(fraction[name]) for name in masks}
        if isinstance(fraction, Mapping)
        else dict.fromkeys(masks, float(fraction))
    )
    for rate in rates.values():
        if not 0 <= rate < 1:
            raise W2SError(f"pruning fraction must be in [0, 1), got {rate}")
    new = {name: mask.clone() for name, mask in masks.items()}
    groups = [list(new)] if scope == "global" else [[name] for name in new]
    for names in groups:
        kept_scores = torch.cat(
            [scores[n].detach().flatten().double().cpu()[new[n].flatten()] for n in names]
        )
        rate = rates[names[0]]  # the group's one rate (global: every weight's)
        count = round(rate * kept_scores.numel())
        if count == 0:
            continue
        # exactly `count` lowest (ties broken deterministically); a partial selection, not a
        # full sort, as SynFlow calls this a hundred times per mask
        order = torch.topk(kept_scores, count, largest=False, sorted=False).indices
        remove = torch.zeros(kept_scores.numel(), dtype=torch.bool)
        remove[order] = True
        offset = 0
        for name in names:
            flat = new[name].flatten()
            kept_positions = flat.nonzero().squeeze(1)
            chunk = remove[offset : offset + kept_positions.numel()]
            flat[kept_positions[chunk]] = False
            new[name] = flat.reshape(new[name].shape)
            offset += kept_positions.numel()
    return Masks(new)
