"""The results table and plot of a generalize run."""

from __future__ import annotations

from pathlib import Path

from weak2strong.generalize.results import GeneralizeResults, GenerativeResults, PairedTable
from weak2strong.report import ResultTable, bar_chart_with_intervals, format_interval, scorer_note
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import to_json
from weak2strong.scoring import METRICS

TABLE_METRICS = ("accuracy", "balanced_accuracy", "f1", "auroc")
BOOTSTRAP_METRICS = (*TABLE_METRICS, "log_loss")


def _records(metric: str, table: PairedTable, higher: bool) -> list[MetricRecord]:
    return [
        metric_record(metric, name, to_json(entry), higher_is_better=higher)
        for name, entry in table.models.items()
    ]


def _pgr_records(metric: str, table: PairedTable) -> list[MetricRecord]:
    return [
        metric_record("pgr", name, to_json(entry), of=metric) for name, entry in table.pgr.items()
    ]


def _gain_records(metric: str, table: PairedTable) -> list[MetricRecord]:
    return [
        metric_record("gain", name, to_json(entry), of=metric, baseline="weak")
        for name, entry in table.gain.items()
    ]


def metric_records(results: GeneralizeResults | GenerativeResults) -> list[MetricRecord]:
    """results.json's `metrics`: every model's test metrics, then PGR of each in its direction."""
    if isinstance(results, GenerativeResults):
        found = []
        for metric, table, direction in generative_metrics(results):
            found += _records(metric, table, direction) + _pgr_records(metric, table)
        return found
    records = []
    for metric, table in results.bootstrap.items():
        records += _records(metric, table, METRICS[metric].higher_is_better)
    for metric, table in results.bootstrap.items():
        records += _pgr_records(metric, table)
    return records + _gain_records("accuracy", results.bootstrap["accuracy"])


def model_order(results: GeneralizeResults) -> list[str]:
    return ["weak", *[f"w2s:{name}" for name in results.strategies], "ceiling"]


def generalize_tables(results: GeneralizeResults | GenerativeResults) -> list[ResultTable]:
    """The results table of a classification or a generative run."""
    if isinstance(results, GenerativeResults):
        return [generative_table(results)]
    return [classification_table(results)]


def classification_table(results: GeneralizeResults) -> ResultTable:
    boot = results.bootstrap
    rows = []
    for name in model_order(results):
        row = [name, *[format_interval(boot[metric].models[name]) for metric in TABLE_METRICS]]
        pgr = boot["accuracy"].pgr.get(name)
        row.append(format_interval(pgr) if pgr is not None else "")
        rows.append(row)
    sizes = results.sizes
    title = (
        f"{results.task}: weak {results.weak} → strong {results.strong} "
        f"(A={sizes['weak_train_a']}, B={sizes['student_train_b']}, test={sizes['test']}; 95% bootstrap CI)"
    )
    return ResultTable(title, ["model", *TABLE_METRICS, "PGR (accuracy)"], rows)


def plot_summary(results: GeneralizeResults, path: Path) -> Path:
    accuracy = results.bootstrap["accuracy"].models
    pgrs = results.bootstrap["accuracy"].pgr
    names = model_order(results)
    notes = []
    for name in names:
        pgr = pgrs.get(name)
        notes.append(f"PGR {format_interval(pgr, 2)}" if pgr is not None else None)
    colors = [
        "#9e9e9e" if n == "weak" else "#2e7d32" if n == "ceiling" else "#1565c0" for n in names
    ]
    return bar_chart_with_intervals(
        path,
        names,
        [accuracy[n].value for n in names],  # type: ignore[misc]
        [accuracy[n].low for n in names],
        [accuracy[n].high for n in names],
        title=f"{results.task}: {results.weak} → {results.strong}",
        ylabel="test accuracy",
        annotations=notes,
        colors=colors,
        chance=1.0 / len(results.label_names),
    )


def generative_metrics(results: GenerativeResults) -> list[tuple[str, PairedTable, bool]]:
    """(metric name, its table, higher is better) of a generative run: the mean gold score,
    and with k samples per prompt the worst sample's score and the rate of bad prompts."""
    higher = results.scorer_higher_is_better
    scorer = results.scorer
    k = results.samples_per_prompt
    # the mean keeps its name of before (runs of one sample per prompt compare across versions)
    found = [(f"gold score ({scorer})", results.mean_score, higher)]
    if results.worst_of_k is not None:
        worst = "expected maximum" if not higher else "expected minimum"
        found.append((f"{worst} score over {k} ({scorer})", results.worst_of_k, higher))
    if results.bad_fraction is not None:
        side = "≥" if not higher else "<"
        name = f"fraction of prompts with a sample {side} {results.bad_threshold:g} ({scorer})"
        found.append((name, results.bad_fraction, False))
    return found


def generative_table(results: GenerativeResults) -> ResultTable:
    found = generative_metrics(results)
    direction = "higher" if results.scorer_higher_is_better else "lower"
    rows = []
    for name in ("weak", "strong-base", "w2s", "ceiling"):
        row = [name]
        for _, table, _ in found:
            pgr = table.pgr.get(name)
            row += [format_interval(table.models[name]), format_interval(pgr) if pgr else ""]
        rows.append(row)
    sizes = results.sizes
    k = results.samples_per_prompt
    title = (
        f"generative {results.prompts}: weak {results.weak} → strong {results.strong}, "
        f"{results.scorer} score ({direction} is better; {sizes['train_prompts']} train / "
        f"{sizes['test_prompts']} test prompts, {k} sample{'s' if k > 1 else ''} each; "
        "95% bootstrap CI)"
    )
    columns = ["model", "mean gold score", "PGR"]
    if results.worst_of_k is not None:
        columns += [f"{'max' if direction == 'lower' else 'min'} of {k}", "PGR"]
    notes = [scorer_note(results.gold_scorer)] if results.gold_scorer else []
    if results.bad_fraction is not None:
        columns += ["bad prompts", "PGR"]
        side = "≥" if direction == "lower" else "<"
        notes.append(
            f"bad prompts: the fraction with at least one of {k} samples {side} "
            f"{results.bad_threshold:g} (toxicity probability); lower is better"
        )
    return ResultTable(title, columns, rows, notes)


def headline(results: GeneralizeResults | GenerativeResults) -> dict[str, float]:
    """Test accuracy of each model and PGR of each strategy (generative: mean scores)."""
    numbers: dict[str, float] = {}
    if isinstance(results, GenerativeResults):
        table = results.mean_score
        for name, entry in table.models.items():
            if entry.value is not None:
                numbers[f"{name} score"] = entry.value
        for name, entry in table.pgr.items():
            if entry.value is not None:
                numbers[f"PGR {name}"] = entry.value
        return numbers
    accuracy = results.bootstrap["accuracy"]
    for name in model_order(results):
        numbers[f"{name} accuracy"] = accuracy.models[name].value  # type: ignore[assignment]
        pgr = accuracy.pgr.get(name)
        if pgr is not None and pgr.value is not None:
            numbers[f"PGR {name}"] = pgr.value
    return numbers
