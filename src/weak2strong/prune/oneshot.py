"""One-shot pruning of a causal language model's linear layers: magnitude, Wanda, SparseGPT.

Any Hugging Face causal LM works without per-architecture code: the transformer blocks are
the model's largest `nn.ModuleList`; the calibration batch's inputs to the first block are
caught by a forward pre-hook (positional and keyword arguments alike: attention masks,
rotary embeddings), and the blocks are then pruned in order, each seeing the outputs of the
already pruned blocks before it, as the reference implementations do (Frantar & Alistarh
2023, SparseGPT; Sun et al. 2024, Wanda). Within a block, every `nn.Linear` is pruned from
statistics of its own inputs:

- magnitude: |W|, the lowest of each layer;
- Wanda: |W_ij| · ‖X_j‖₂ (the input feature's norm over the calibration tokens), the lowest
  of each output row;
- SparseGPT: the layer-wise reconstruction with the inverse Hessian H = 2XXᵀ/n (dampened by
  1% of its mean diagonal), masks chosen 128 columns at a time by w²/[H⁻¹]²_jj, the
  surviving weights updated to absorb each pruned one's error.

Sparsity is unstructured (a fraction per layer) or N:M (N of every M consecutive inputs
pruned: 2:4 runs on sparse tensor cores). OWL (Yin et al. 2024) sets each block's sparsity
from its share of outlier activations (Wanda scores above M times their block's mean): more
outliers, less pruning, the average kept at the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from weak2strong.errors import W2SError

OneShotMethod = Literal["magnitude", "wanda", "sparsegpt"]


@dataclass(frozen=True)
class Sparsity:
    """Unstructured (`fraction` of each layer) or N:M (`n` of every `m` inputs pruned)."""

    fraction: float = 0.5
    n: int = 0
    m: int = 0

    @classmethod
    def parse(cls, text: str) -> Sparsity:
        """`0.5` (or `50%`), or `2:4`."""
        text = text.strip()
        if ":" in text:
            n, m = (int(part) for part in text.split(":", 1))
            if not 0 < n < m:
                raise W2SError(f"N:M sparsity needs 0 < N < M, got {text}")
            return cls(n / m, n, m)
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        if not 0 <= value < 1:
            raise W2SError(f"sparsity must be in [0, 1), got {text}")
        return cls(value)

    @property
    def structured(self) -> bool:
        return self.m > 0

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.structured else f"{self.fraction:.0%}"


def n_m_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask pruning the `n` lowest scores of every `m` consecutive columns."""
    rows, columns = scores.shape
    if columns % m:
        raise W2SError(f"N:M sparsity needs inputs divisible by {m}, got {columns}")
    groups = scores.reshape(rows, columns // m, m)
    lowest = torch.topk(groups, n, dim=-1, largest=False).indices
    keep = torch.ones_like(groups, dtype=torch.bool).scatter_(-1, lowest, False)
    return keep.reshape(rows, columns)


def magnitude_mask(weight: torch.Tensor, sparsity: Sparsity) -> torch.Tensor:
    scores = weight.abs().float()
    if sparsity.structured:
        return n_m_mask(scores, sparsity.n, sparsity.m)
    count = int(scores.numel() * sparsity.fraction)
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[torch.topk(scores.flatten(), count, largest=False).indices] = False
    return keep.reshape(scores.shape)


def wanda_scores(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """|W_ij| · ‖X_j‖ (input_sq_norms: Σ over calibration tokens of x_j², per input j)."""
    return weight.abs().float() * input_sq_norms.sqrt().reshape(1, -1)


def wanda_mask(
    weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: Sparsity
) -> torch.Tensor:
    scores = wanda_scores(weight, input_sq_norms)
    if sparsity.structured:
        return n_m_mask(scores, sparsity.n, sparsity.m)
    count = int(scores.shape[1] * sparsity.fraction)  # per output row
    lowest = torch.sort(scores, dim=-1, stable=True).indices[:, :count]
    return torch.ones_like(scores, dtype=torch.bool).scatter_(1, lowest, False)


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: Sparsity,
    *,
    block_size: int = 128,
    damping: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT's reconstruction: (pruned and updated weight, keep-mask), in float32.

    `hessian` is 2XXᵀ/n over the calibration tokens (inputs × inputs)."""
    matrix = weight.detach().clone().float()
    rows, columns = matrix.shape
    hessian = hessian.detach().clone().float()
    dead = torch.diag(hessian) == 0  # inputs never active: their weights carry nothing
    hessian[dead, dead] = 1
    matrix[:, dead] = 0
    hessian.diagonal().add_(damping * torch.mean(torch.diag(hessian)))
    inverse = torch.linalg.cholesky(
        torch.cholesky_inverse(torch.linalg.cholesky(hessian)), upper=True
    )
    keep = torch.ones(rows, columns, dtype=torch.bool, device=matrix.device)
    for start in range(0, columns, block_size):
        end = min(start + block_size, columns)
        block = matrix[:, start:end].clone()
        block_inverse = inverse[start:end, start:end]
        errors = torch.zeros_like(block)
        diagonal = torch.diag(block_inverse).reshape(1, -1)
        pruned = torch.zeros_like(block, dtype=torch.bool)
        if not sparsity.structured and sparsity.fraction > 0:
            saliency = block**2 / diagonal**2
            # the reference's threshold: the value at index ⌊numel·fraction⌋ of the sorted
            # saliencies, itself pruned (so one weight more than the fraction per block)
            index = min(int(saliency.numel() * sparsity.fraction), saliency.numel() - 1)
            pruned = saliency <= torch.sort(saliency.flatten()).values[index]
        for column in range(end - start):
            if sparsity.structured and column % sparsity.m == 0:
                group = slice(column, column + sparsity.m)
                saliency = block[:, group] ** 2 / diagonal[:, group] ** 2
                lowest = torch.topk(saliency, sparsity.n, dim=1, largest=False).indices
                pruned[:, group] = pruned[:, group].scatter(1, lowest, True)
            values = block[:, column]
            kept = torch.where(pruned[:, column], torch.zeros_like(values), values)
            error = (values - kept) / block_inverse[column, column]
            block[:, column:] -= error.unsqueeze(1) @ block_inverse[column, column:].unsqueeze(0)
            block[:, column] = kept
            errors[:, column] = error
        matrix[:, start:end] = block
        keep[:, start:end] = ~pruned
        matrix[:, end:] -= errors @ inverse[start:end, end:]
    return matrix, keep


# ---- the model, block by block


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's largest `nn.ModuleList` by parameters: its stack of transformer blocks."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise W2SError("the model has no list of blocks (nn.ModuleList) to prune in order")
    return max(lists, key=lambda blocks: sum(p.numel() for p in blocks.parameters()))


def block_linears(block: nn.Module) -> dict[str, nn.Linear]:
    return {name: m for name, m in block.named_modules() if isinstance(m, nn.Linear)}


class _Caught(Exception):
    """Stops the forward pass once the first block's inputs are caught."""


@torch.no_grad()
def first_block_inputs(
    model: nn.Module, blocks: nn.ModuleList, batches: list[torch.Tensor]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Each calibration batch's (args, kwargs) at the first block."""
    caught: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def catch(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        caught.append((args, dict(kwargs)))
        raise _Caught

    device = next(model.parameters()).device
    handle = blocks[0].register_forward_pre_hook(catch, with_kwargs=True)
    try:
        for batch in batches:
            with suppress(_Caught):
                model(input_ids=batch.to(device), use_cache=False)
    finally:
        handle.remove()
    return caught


def _empty_statistics(layer: nn.Linear, hessians: bool) -> dict[str, torch.Tensor]:
    """Zeroed sums for one layer's inputs, on its weight's device."""
    features, device = layer.in_features, layer.weight.device
    stats = {
        "sq_norms": torch.zeros(features, dtype=torch.float64, device=device),
        "tokens": torch.zeros((), dtype=torch.float64, device=device),
    }
    if hessians:
        stats["xxt"] = torch.zeros(features, features, device=device)
    return stats


@contextmanager
def input_statistics(
    linears: dict[str, nn.Linear], hessians: bool
) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """While open, each linear layer's calibration inputs are summed: squared norms per
    input feature (Wanda, OWL), and XXᵀ when `hessians` (SparseGPT); `tokens` counts them."""
    stats = {name: _empty_statistics(layer, hessians) for name, layer in linears.items()}

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def record(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            rows = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).float()
            entry = stats[name]
            entry["sq_norms"] += (rows.double() ** 2).sum(0)
            entry["tokens"] += rows.shape[0]
            if "xxt" in entry:
                entry["xxt"] += rows.T @ rows

        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in linears.items()]
    try:
        yield stats
    finally:
        for handle in handles:
            handle.remove()


def owl_sparsities(outlier_ratios: list[float], target: float, spread: float = 0.08) -> list[float]:
    """OWL's per-block sparsities: outlier ratios scaled to a range of 2·`spread` around the
    target, more outliers → less pruning; the mean stays at `target`."""
    ratios = np.asarray(outlier_ratios, dtype=np.float64)
    span = ratios.max() - ratios.min()
    scaled = (ratios - ratios.min()) / span * 2 * spread if span > 0 else np.zeros_like(ratios)
    density = scaled - scaled.mean() + (1 - target)
    return [float(1 - d) for d in density]


def outlier_ratio(scores: list[torch.Tensor], multiple: float = 5.0) -> float:
    """The fraction of a block's Wanda scores above `multiple` times their mean."""
    flat = torch.cat([s.flatten() for s in scores])
    return float((flat > multiple * flat.mean()).float().mean())


@dataclass(frozen=True)
class PrunedLayer:
    block: int
    name: str  # within its block
    weights: int
    pruned: int

    @property
    def sparsity(self) -> float:
        return self.pruned / self.weights


def _block_output(output: Any) -> torch.Tensor:
    hidden: torch.Tensor = output[0] if isinstance(output, tuple | list) else output
    return hidden


def _run_block(
    block: nn.Module, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The block's outputs, as the next block's inputs (the same keyword arguments)."""
    return [((_block_output(block(*args, **kwargs)), *args[1:]), kwargs) for args, kwargs in inputs]


def _prune_layer(
    layer: nn.Linear, stats: dict[str, torch.Tensor], method: OneShotMethod, sparsity: Sparsity
) -> torch.Tensor:
    """Prune one layer in place; its keep-mask."""
    weight = layer.weight
    if method == "magnitude":
        keep = magnitude_mask(weight, sparsity)
        new = weight.detach().float() * keep
    elif method == "wanda":
        keep = wanda_mask(weight, stats["sq_norms"].float(), sparsity)
        new = weight.detach().float() * keep
    else:
        hessian = 2 * stats["xxt"] / stats["tokens"].clamp(min=1).float()
        new, keep = sparsegpt_prune(weight, hessian, sparsity)
    weight.data.copy_(new.to(weight.dtype))
    return keep


@torch.no_grad()
def owl_block_sparsities(
    model: nn.Module,
    batches: list[torch.Tensor],
    target: float,
    *,
    multiple: float = 5.0,
    spread: float = 0.08,
) -> list[float]:
    """OWL's sparsity for each block, from the dense model's Wanda scores."""
    blocks = transformer_blocks(model)
    inputs = first_block_inputs(model, blocks, batches)
    ratios = []
    for block in blocks:
        linears = block_linears(block)
        with input_statistics(linears, hessians=False) as stats:
            outputs = _run_block(block, inputs)
        scores = [
            wanda_scores(layer.weight, stats[name]["sq_norms"].float())
            for name, layer in linears.items()
        ]
        ratios.append(outlier_ratio(scores, multiple))
        inputs = outputs
    return owl_sparsities(ratios, target, spread)


@torch.no_grad()
def prune_language_model(
    model: nn.Module,
    batches: list[torch.Tensor],
    method: OneShotMethod,
    sparsity: Sparsity,
    *,
    block_sparsities: list[float] | None = None,
    on_block: Callable[[int, int], None] | None = None,
) -> list[PrunedLayer]:
    """Prune every linear layer of the model's blocks in place, block after block, each
    block's statistics taken on the outputs of the pruned blocks before it.

    `block_sparsities` (OWL) overrides the unstructured fraction per block."""
    blocks = transformer_blocks(model)
    if block_sparsities is not None and len(block_sparsities) != len(blocks):
        raise W2SError(f"{len(block_sparsities)} block sparsities for {len(blocks)} blocks")
    inputs = first_block_inputs(model, blocks, batches) if method != "magnitude" else []
    pruned: list[PrunedLayer] = []
    for index, block in enumerate(blocks):
        linears = block_linears(block)
        here = sparsity if block_sparsities is None else Sparsity(block_sparsities[index])
        stats: dict[str, dict[str, torch.Tensor]] = {}
        if inputs:
            with input_statistics(linears, hessians=method == "sparsegpt") as stats:
                for args, kwargs in inputs:
                    block(*args, **kwargs)
        for name, layer in linears.items():
            keep = _prune_layer(layer, stats.get(name, {}), method, here)
            pruned.append(PrunedLayer(index, name, keep.numel(), int((~keep).sum())))
        if inputs:
            inputs = _run_block(block, inputs)  # through the pruned block
        if on_block is not None:
            on_block(index + 1, len(blocks))
    return pruned
