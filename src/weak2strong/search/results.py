"""What a search run finds, as its tables and plots read it (results.json's detail)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weak2strong.runs.typed import OMIT_IF_NONE, Estimate
from weak2strong.scoring.winrate import WinRates


@dataclass(kw_only=True)
class MethodOutcome:
    label: str  # the method with its settings, e.g. cbs(4,4,5)
    reward: Estimate  # mean gold reward over the prompts
    reward_minus_sample: Estimate | None  # paired difference from plain sampling
    tokens_per_prompt: float
    seconds: float | None  # decoding alone, models loaded
    # large-model tokens sampled for every prompt together, and the responses that ended
    # with EOS (None: a results.json from before they were recorded)
    sampled_tokens: float | None = None
    finished_fraction: float | None = None


@dataclass(kw_only=True)
class CurvePoint:
    """Best-of-N or CBS(W, N/W, L) at one N = W·K of the reward-against-compute curve."""

    method: str  # bon or cbs
    n: int
    label: str
    reward: Estimate
    reward_minus_sample: Estimate | None
    tokens_per_prompt: float
    seconds: float | None  # None: picked from the bon run's candidates, not decoded


@dataclass(kw_only=True)
class SearchResults:
    large: str
    tuned: str
    untuned: str
    prompts: str
    test_prompts: int
    new_tokens: int
    backend: str = "transformers"
    scorer: str
    gold_scorer: dict[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    methods: dict[str, MethodOutcome]
    skipped: dict[str, str] = field(default_factory=dict)  # method → why it could not run
    # of the invocation that decoded (a rerun from the cache loads nothing): model loads and
    # engine start-up, in seconds
    startup_seconds: dict[str, float] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)  # what each model computed in
    curve: list[CurvePoint] | None = field(default=None, metadata=OMIT_IF_NONE)
    # with the judge:pairwise scorer: each method's AlpacaEval win rates against the reference
    win_rates: dict[str, WinRates] | None = field(default=None, metadata=OMIT_IF_NONE)
