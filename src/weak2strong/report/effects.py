"""Effects in words: one sentence per difference a run measured against its baseline.

Every command states its effect the same way, read from the metric records of its
results.json that carry a `baseline` (a student's gain over its weak supervisor, a search
method's reward minus plain sampling's, an α's reward minus the aligned model's, IMP's
accuracy minus a baseline's): `cbs(2,4,8) beats sample by +2.77 [+1.34, +4.41] reward
(sentiment) (95% paired bootstrap over 50 items)`, or `... does not clearly beat ...` with
the reason when the interval reaches 0 (a sign a researcher would not bet on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from weak2strong.report.tables import format_interval
from weak2strong.runs.results import MetricRecord


def clearly_better(record: MetricRecord) -> bool:
    """Whether the whole 95% interval of a difference lies on the better side of 0."""
    if record.low is None or record.high is None:
        return False
    return record.high < 0 if record.higher_is_better is False else record.low > 0


def _how(record: MetricRecord) -> str:
    if record.interval == "seeds":
        return f"mean of {record.n} seeds, 95% t-interval"
    if record.interval == "bootstrap":
        return f"95% paired bootstrap over {record.n} items"
    return "no interval"


def _where(at: Mapping[str, Any] | None) -> str:
    """A sparsity in words; the other places (an α, a compute budget) are in the model's
    own label already (`α=4`, `bon-4`)."""
    if not at or "remaining" not in at:
        return ""
    return f" at {float(at['remaining']):.1%} of weights remaining"


def effect_sentence(record: MetricRecord, digits: int = 3) -> str:
    """`model beats baseline by +d [low, high] quantity (how)`, or `does not clearly beat`
    with the reason when the interval reaches 0 (or there is none)."""
    interval = format_interval(record.to_json(), digits, signed=True)
    quantity = f"{record.of or record.metric}{_where(record.at)}"
    if clearly_better(record):
        return f"{record.model} beats {record.baseline} by {interval} {quantity} ({_how(record)})"
    reason = "" if record.low is None else "; the interval reaches 0"
    return (
        f"{record.model} does not clearly beat {record.baseline}: {interval} {quantity} "
        f"({_how(record)}{reason})"
    )


def effect_sentences(records: Iterable[MetricRecord | Mapping[str, Any]]) -> list[str]:
    """A sentence per record with a baseline, each difference once (a curve point that
    repeats a method's own difference is the same sentence)."""
    sentences: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    for raw in records:
        record = raw if isinstance(raw, MetricRecord) else MetricRecord.from_json(raw)
        if record.baseline is None or record.value is None:
            continue
        key = (record.model, record.baseline, record.of, record.value, record.low, record.high)
        if key not in seen:
            seen.add(key)
            sentences.append(effect_sentence(record))
    return sentences
