"""What a generalize run measured (results.json's detail): the classification protocol's
test metrics with PGR, or the generative protocol's gold scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weak2strong.runs.typed import OMIT_IF_NONE, Estimate


@dataclass(kw_only=True)
class PairedTable:
    """One metric of every model, paired over the test items, with PGR of each student."""

    models: dict[str, Estimate]
    pgr: dict[str, Estimate] = field(default_factory=dict)
    # model − weak in the metric's direction (+: better); the ceiling's is the gap
    gain: dict[str, Estimate] = field(default_factory=dict)


@dataclass(kw_only=True)
class GeneralizeResults:
    task: str
    task_fingerprint: str
    label_names: list[str]
    weak: str
    strong: str
    strategies: list[str]
    regime: str
    sizes: dict[str, int]  # weak_train_a, student_train_b, test
    weak_label_accuracy_on_b: float
    bootstrap: dict[str, PairedTable]  # by metric
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(kw_only=True)
class GenerativeResults:
    mode: str = "generative"
    prompts: str
    scorer: str
    gold_scorer: dict[str, Any] | None = field(default=None, metadata=OMIT_IF_NONE)
    scorer_higher_is_better: bool
    weak: str
    strong: str
    weak_instruction: str
    sizes: dict[str, int]  # train_prompts, test_prompts
    samples_per_prompt: int = 1
    mean_score: PairedTable  # a prompt's samples averaged first
    # with several samples per prompt: the worst sample's score, and the rate of bad prompts
    worst_of_k: PairedTable | None = field(default=None, metadata=OMIT_IF_NONE)
    bad_threshold: float | None = field(default=None, metadata=OMIT_IF_NONE)
    bad_fraction: PairedTable | None = field(default=None, metadata=OMIT_IF_NONE)
