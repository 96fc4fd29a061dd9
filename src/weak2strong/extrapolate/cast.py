"""How much of the update survives the cast to the output dtype, estimated on a sample of
every block as the merge streams."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

# The cast statistics sample this many elements per block, in runs of SAMPLE_RUN: small
# enough that their dozen small tensor ops run on one thread (torch splits work across
# threads from 32k elements), which on a busy machine would wait for a descheduled peer.
SAMPLE_ELEMENTS = 1 << 14
SAMPLE_RUN = 1 << 9


def _sample(flat: torch.Tensor) -> torch.Tensor:
    """About SAMPLE_ELEMENTS elements of a 1-d tensor, in evenly spaced contiguous runs.

    Runs rather than a strided sample: a stride under a cache line's width would still
    read every byte of the block.
    """
    total = flat.numel()
    if total <= SAMPLE_ELEMENTS:
        return flat
    runs = SAMPLE_ELEMENTS // SAMPLE_RUN
    spacing = total // runs
    return flat[: runs * spacing].view(runs, spacing)[:, :SAMPLE_RUN]


@dataclass
class CastLoss:
    """How much of the fp32 update a group of tensors kept after the cast to its dtype.

    Measured on an evenly spread sample of each block (16k elements, summed over every
    block of the group), which estimates fractions and norm ratios well at a small fraction
    of a full pass's cost.
    """

    tensors: int = 0
    elements: int = 0
    updated: float = 0.0  # elements with a nonzero fp32 update (estimated from the sample)
    survived: float = 0.0  # of those, elements whose stored value differs from the aligned one
    intended_sq: float = 0.0
    realised_sq: float = 0.0
    error_sq: float = 0.0

    def add(self, aligned: torch.Tensor, result: torch.Tensor, stored: torch.Tensor) -> None:
        total = aligned.numel()
        aligned = _sample(aligned.reshape(-1))
        intended = _sample(result.reshape(-1)) - aligned
        # Against the aligned weights stored in the same dtype, so a change of dtype alone
        # (float32 → bfloat16) does not count as a lost or gained update.
        baseline = aligned.to(stored.dtype).to(torch.float32)
        realised = _sample(stored.reshape(-1)).to(torch.float32) - baseline
        # each sampled element stands for total / sampled elements, so sums over blocks and
        # tensors of different sizes stay unbiased
        weight = total / intended.numel()
        moved = intended != 0
        self.elements += total
        self.updated += weight * int(moved.sum())
        self.survived += weight * int((moved & (realised != 0)).sum())
        self.intended_sq += weight * float(torch.sum(intended * intended))
        self.realised_sq += weight * float(torch.sum(realised * realised))
        error = realised - intended
        self.error_sq += weight * float(torch.sum(error * error))

    def merge(self, other: CastLoss) -> None:
        self.tensors += other.tensors
        self.elements += other.elements
        self.updated += other.updated
        self.survived += other.survived
        self.intended_sq += other.intended_sq
        self.realised_sq += other.realised_sq
        self.error_sq += other.error_sq

    def summary(self) -> dict[str, Any]:
        return {
            "tensors": self.tensors,
            "elements": self.elements,
            "updated_fraction": self.updated / self.elements if self.elements else None,
            "survived_fraction": self.survived / self.updated if self.updated else None,
            # ‖stored update‖ / ‖fp32 update‖ and ‖stored − fp32 update‖ / ‖fp32 update‖
            "update_norm_ratio": math.sqrt(self.realised_sq / self.intended_sq)
            if self.intended_sq
            else None,
            "relative_error": math.sqrt(self.error_sq / self.intended_sq)
            if self.intended_sq
            else None,
        }
