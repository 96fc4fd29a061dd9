"""The one results layout every command writes (results.json and examples.jsonl).

results.json, in the spirit of lm-evaluation-harness, holds for every command:

- `schema` ("weak2strong-results/1"), `command`, `results_version`;
- `run`: the run folder's absolute path, its name and tags;
- `config` (the resolved settings), `seed`, `versions`, `git_commit`, `distributed` (the
  processes and machines that computed it) and `inputs` (fingerprints of data and weights);
- `metrics`: a flat list, one record per number a researcher compares: `metric`, `model`
  (what was scored), `value`, `low`, `high` (the 95% interval, null when there is none), `n`
  (test items for a bootstrap interval, seeds for a seed interval), `interval` (how it was
  computed), `higher_is_better`; derived numbers name what they derive from (`of`: PGR of
  accuracy; `baseline`: a difference against sampling) and where they were measured (`at`:
  an α, a sparsity). An undefined value is null with its reason in `undefined`;
- `examples`: the per-example records file (`examples.jsonl`, run-relative) and its rows;
- `warnings`: what the numbers cannot carry, e.g. intervals resting on too few items.

Everything else in results.json is the command's own detail (also with `{value, low, high,
n}` objects for every interval), documented with the command. `RESULTS_SCHEMA` is the JSON
Schema of the common part; the tests validate every command's output against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SCHEMA = "weak2strong-results/1"
EXAMPLES_FILE = "examples.jsonl"

_NUMBER = {"type": ["number", "null"]}

METRIC_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "model", "value", "low", "high", "n", "interval", "higher_is_better"],
    "properties": {
        "metric": {"type": "string", "minLength": 1},
        "model": {"type": ["string", "null"]},
        "value": _NUMBER,
        "low": _NUMBER,
        "high": _NUMBER,
        "n": {"type": "integer", "minimum": 0},
        "interval": {"enum": ["bootstrap", "seeds", "none"]},
        "higher_is_better": {"type": ["boolean", "null"]},
        "of": {"type": "string"},
        "baseline": {"type": "string"},
        "at": {"type": "object"},
        "undefined": {"type": "string"},
    },
    "additionalProperties": False,
}

RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "weak2strong results.json",
    "type": "object",
    "required": [
        "schema",
        "command",
        "results_version",
        "run",
        "config",
        "seed",
        "versions",
        "git_commit",
        "distributed",
        "metrics",
        "examples",
        "warnings",
    ],
    "properties": {
        "schema": {"const": SCHEMA},
        "command": {"type": "string"},
        "results_version": {"type": "integer", "minimum": 1},
        "run": {
            "type": "object",
            "required": ["folder", "name", "tags"],
            "properties": {
                "folder": {"type": "string", "pattern": "^/"},
                "name": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "config": {"type": "object"},
        "seed": {"type": ["integer", "null"]},
        "versions": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "git_commit": {"type": ["string", "null"]},
        "distributed": {
            "type": "object",
            "required": ["processes", "machines"],
            "properties": {
                "processes": {"type": "integer", "minimum": 1},
                "machines": {"type": "integer", "minimum": 1},
            },
        },
        "inputs": {"type": "object"},
        "metrics": {"type": "array", "items": METRIC_RECORD_SCHEMA},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "examples": {
            "type": ["object", "null"],
            "required": ["file", "rows"],
            "properties": {
                "file": {"type": "string", "pattern": "^[^/]"},
                "rows": {"type": "integer", "minimum": 0},
            },
        },
    },
}


@dataclass(frozen=True)
class SampleFloor:
    """The fewest items a bootstrap interval should rest on before it is read as evidence."""

    unit: str
    minimum: int


TEST_EXAMPLES = SampleFloor("test examples", 100)
PROMPTS = SampleFloor("prompts", 20)


def small_sample_warnings(metrics: Sequence[MetricRecord], floor: SampleFloor) -> list[str]:
    """A warning when the bootstrap intervals rest on fewer items than `floor` asks."""
    counts = [r.n for r in metrics if r.interval == "bootstrap" and r.n]
    if not counts or min(counts) >= floor.minimum:
        return []
    return [
        f"the intervals rest on {min(counts)} {floor.unit} (fewer than {floor.minimum}): "
        "too few to read a difference as real"
    ]


def absolute(name: str) -> str:
    """A local path as an absolute path; a hub id or an embedded model's name unchanged."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


IntervalKind = Literal["bootstrap", "seeds", "none"]


@dataclass(frozen=True)
class MetricRecord:
    """One entry of results.json's `metrics` list: a number a researcher compares."""

    metric: str
    model: str | None  # what was scored
    value: float | None  # None: undefined (`undefined` says why)
    low: float | None  # the 95% interval; None when there is none
    high: float | None
    n: int  # test items for a bootstrap interval, seeds for a seed interval
    interval: IntervalKind
    higher_is_better: bool | None
    of: str | None = None  # the metric a PGR or a difference derives from
    baseline: str | None = None  # what a difference is taken against
    at: Mapping[str, Any] | None = None  # where it was measured: an α, a sparsity
    undefined: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as results.json holds it (absent qualifiers left out)."""
        record = dataclasses.asdict(self)
        for key in ("of", "baseline", "at", "undefined"):
            if record[key] is None:
                del record[key]
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> MetricRecord:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


def metric_record(
    metric: str,
    model: str | None,
    estimate: Mapping[str, Any] | None,
    *,
    kind: IntervalKind = "bootstrap",
    higher_is_better: bool | None = True,
    of: str | None = None,
    baseline: str | None = None,
    at: Mapping[str, Any] | None = None,
) -> MetricRecord:
    """The record of an interval object `{value, low, high, n}` (None: undefined)."""
    estimate = estimate or {}
    return MetricRecord(
        metric=metric,
        model=model,
        value=estimate.get("value"),
        low=estimate.get("low"),
        high=estimate.get("high"),
        n=int(estimate.get("n") or 0),
        interval=kind if estimate.get("low") is not None else "none",
        higher_is_better=higher_is_better,
        of=of,
        baseline=baseline,
        at=at,
        undefined=estimate.get("undefined"),
    )


def record_name(record: MetricRecord) -> str:
    """A metric record as one readable name: `w2s:naive accuracy`, `w2s:naive pgr(accuracy)`,
    `imp accuracy [remaining=0.8, round=1]`."""
    metric = record.metric
    if record.of is not None:
        metric = f"{metric}({record.of})"
    if record.baseline is not None:
        metric = f"{metric} vs {record.baseline}"
    where = ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in (record.at or {}).items()
    )
    return " ".join(part for part in (record.model, metric, where and f"[{where}]") if part)


def metric_records_of(results: Mapping[str, Any]) -> list[MetricRecord]:
    """The metric records of a results.json (as read, or as `write_results` left it)."""
    return [MetricRecord.from_json(record) for record in results["metrics"]]


def values_by_model(results: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """`{model: {metric: value}}` of the plain metric records (no PGR, difference or `at`):
    the quick way to read a results.json in code."""
    table: dict[str, dict[str, float | None]] = {}
    for record in metric_records_of(results):
        if record.of is not None or record.baseline is not None or record.at is not None:
            continue
        table.setdefault(record.model or "", {})[record.metric] = record.value
    return table
