"""What an extrapolation run wrote and, with an α sweep, how each α scored (results.json's
detail). Without a sweep only the first four fields are present."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weak2strong.runs.typed import OMIT_IF_NONE, Estimate
from weak2strong.scoring.winrate import WinRates


@dataclass(kw_only=True)
class SweepRow:
    alpha: float  # the inputs sit at −1 … 0 along the extrapolation direction
    kind: str  # candidate or input
    model: str
    reward: Estimate
    reward_minus_aligned: Estimate | None


@dataclass(kw_only=True)
class ExtrapolateResults:
    checkpoints: list[str]  # weakest → strongest
    alphas: list[float]
    select_by: str  # none or reward
    # none: each α's provenance report by label; reward: the kept checkpoint's report
    written: dict[str, Any]
    scorer: str | None = field(default=None, metadata=OMIT_IF_NONE)
    higher_is_better: bool | None = field(default=None, metadata=OMIT_IF_NONE)
    prompts: str | None = field(default=None, metadata=OMIT_IF_NONE)
    test_prompts: int | None = field(default=None, metadata=OMIT_IF_NONE)
    samples_per_prompt: int | None = field(default=None, metadata=OMIT_IF_NONE)
    new_tokens: int | None = field(default=None, metadata=OMIT_IF_NONE)
    dtype: str | None = field(default=None, metadata=OMIT_IF_NONE)
    rows: dict[str, SweepRow] | None = field(default=None, metadata=OMIT_IF_NONE)
    best: str | None = field(default=None, metadata=OMIT_IF_NONE)
    best_alpha: float | None = field(default=None, metadata=OMIT_IF_NONE)
    out: str | None = field(default=None, metadata=OMIT_IF_NONE)
    gold_scorer: dict[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    # with the judge:pairwise scorer: each model's AlpacaEval win rates against the reference
    win_rates: dict[str, WinRates] | None = field(default=None, metadata=OMIT_IF_NONE)
