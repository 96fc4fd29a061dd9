"""Replicates: finished runs of one config that differ only in their seed, aggregated
(`w2s <command> --seeds 0,1,2`) into one run of their own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weak2strong import distributed
from weak2strong.fileio import read_json
from weak2strong.report import ResultTable, format_interval
from weak2strong.runs import Run
from weak2strong.runs.results import MetricRecord, metric_record, record_name
from weak2strong.runs.typed import to_json
from weak2strong.settings import setting


@dataclass
class ReplicatesConfig:
    command: str = setting("", help="the command replicated")
    runs: list[str] = setting(help="run folders of the replicates, one per seed", factory=list)
    seeds: list[int] = setting(help="their seeds", factory=list)


@dataclass(kw_only=True)
class ReplicatesResults:
    replicated: str  # the command
    seeds: list[int]
    runs: list[str]  # one run folder per seed
    per_seed: dict[str, dict[str, float | None]]  # seed → metric name → value
    # the aggregate over seeds (written as results.json's `metrics`; read back from it)
    metrics: list[MetricRecord] = field(default_factory=list)


class Replicates:
    """Aggregates finished runs of one config that differ only in their seed."""

    def __init__(self, config: ReplicatesConfig, runs_dir: str) -> None:
        self.config = config
        self.runs_dir = runs_dir

    def _per_seed(self) -> dict[str, list[dict[str, Any]]]:
        return {
            str(seed): read_json(Path(self.runs_dir) / name / "results.json")["metrics"]
            for seed, name in zip(self.config.seeds, self.config.runs, strict=True)
        }

    def run(self) -> tuple[Run, dict[str, Any]]:
        from weak2strong.scoring import seed_interval

        # the main process wrote the replicates' results: it reads them and hands them on
        # (another process may run ahead of those writes, or on a machine without the disk)
        per_seed = {
            seed: [MetricRecord.from_json(record) for record in records]
            for seed, records in distributed.main_decides(self._per_seed).items()
        }
        grouped: dict[str, list[MetricRecord]] = {}
        for records in per_seed.values():
            for record in records:
                grouped.setdefault(record_name(record), []).append(record)
        aggregate = []
        for records in grouped.values():
            values = [r.value for r in records if r.value is not None]
            if not values:
                continue
            first = records[0]
            aggregate.append(
                metric_record(
                    first.metric,
                    first.model,
                    seed_interval(values),
                    kind="seeds",
                    higher_is_better=first.higher_is_better,
                    of=first.of,
                    baseline=first.baseline,
                    at=first.at,
                )
            )
        with Run.open("replicates", self.config, self.runs_dir) as run:
            results = ReplicatesResults(
                replicated=self.config.command,
                seeds=self.config.seeds,
                runs=self.config.runs,
                per_seed={
                    seed: {record_name(r): r.value for r in records}
                    for seed, records in per_seed.items()
                },
                metrics=aggregate,
            )
            payload = to_json(results)
            run.write_results(payload, aggregate)
            return run, payload


def replicates_tables(results: ReplicatesResults) -> list[ResultTable]:
    seeds = results.seeds
    columns = ["", "mean [95% t-interval]", *[f"seed {seed}" for seed in seeds]]
    rows = []
    for record in results.metrics:
        key = record_name(record)
        values = [results.per_seed[str(seed)].get(key) for seed in seeds]
        rows.append(
            [
                key,
                format_interval(record.to_json(), 3),
                *["" if value is None else f"{value:.3f}" for value in values],
            ]
        )
    title = f"{results.replicated} over {len(seeds)} seeds"
    notes = [f"runs: {', '.join(results.runs)}"]
    return [ResultTable(title, columns, rows, notes)]


def replicates_headline(results: ReplicatesResults) -> dict[str, float]:
    return {
        record_name(record): record.value for record in results.metrics if record.value is not None
    }
