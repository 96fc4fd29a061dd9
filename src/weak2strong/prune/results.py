"""What a lottery-ticket run measured: each method's test metric at each sparsity, over
seeds (results.json's detail)."""

from __future__ import annotations

from dataclasses import dataclass, field

from weak2strong.runs.typed import OMIT_IF_NONE, Estimate


@dataclass(kw_only=True)
class RoundPoint:
    round: int
    sparsity: float  # of the prunable weights, mean over seeds
    metric: Estimate  # mean over seeds with a t-interval
    per_seed: list[float]
    # weak-to-strong tickets: performance gap recovered (None where undefined, and always
    # None on gold labels)
    pgr: Estimate | None = None
    # what each training measured beside the metric, over seeds (image classifiers: the
    # early-stopping iteration and the test accuracy at the end of training)
    measures: dict[str, Estimate] | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(kw_only=True)
class PruneResults:
    task: str
    network: str | None = field(default=None, metadata=OMIT_IF_NONE)  # an image classifier
    test_examples: int
    task_fingerprint: str
    train_examples: int
    weak_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    weak_label_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    weak_targets: str | None = field(default=None, metadata=OMIT_IF_NONE)
    labels: str  # gold, or the weak supervisor
    metric: str
    seeds: list[int]
    fraction: float
    scope: str
    rewind_step: int
    ceiling: Estimate | None  # the dense student on gold labels (weak-to-strong tickets)
    curves: dict[str, list[RoundPoint]]  # by method: imp first, then the baselines
