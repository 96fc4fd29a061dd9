"""What a tune run made and how well it ranks held-out pairs (results.json's detail)."""

from __future__ import annotations

from dataclasses import dataclass, field

from weak2strong.runs.typed import OMIT_IF_NONE, Estimate


@dataclass(kw_only=True)
class DPOStep:
    step: int
    loss: float
    reward_accuracy: float | None  # the batch's chosen-over-rejected rate
    reward_margin: float | None  # the batch's β-scaled log-ratio margin


@dataclass(kw_only=True)
class TuneResults:
    method: str  # dpo or sft
    base: str
    model: str  # the tuned model's folder, LoRA merged
    pairs: int | None = field(default=None, metadata=OMIT_IF_NONE)  # dpo
    sft_examples: int | None = field(default=None, metadata=OMIT_IF_NONE)  # sft
    final_loss: float | None = field(default=None, metadata=OMIT_IF_NONE)
    final_reward_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    final_reward_margin: float | None = field(default=None, metadata=OMIT_IF_NONE)
    steps: int | None = field(default=None, metadata=OMIT_IF_NONE)
    curve: list[DPOStep] | None = field(default=None, metadata=OMIT_IF_NONE)
    heldout_pairs: int
    # how often log π_tuned − log π_base prefers the held-out chosen response, and by how much
    heldout_accuracy: Estimate
    heldout_margin: Estimate
