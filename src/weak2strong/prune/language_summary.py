"""What `w2s prune-lm` measured (results.json's detail), its metric records and its tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong.prune.language_config import LanguagePruneConfig
from weak2strong.report import ResultTable, bar_chart_with_intervals, format_interval
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import OMIT_IF_NONE, Estimate, estimate, to_json
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.perplexity import perplexity_of
from weak2strong.scoring.zero_shot import correct_answers

OPTIONAL = OMIT_IF_NONE


def variant_label(method: str, sparsity: Any, owl: bool) -> str:
    return f"{method}{'+owl' if owl else ''} {sparsity}"


@dataclass(kw_only=True)
class Recovered:
    """The pruned model after fine-tuning with its mask held fixed."""

    perplexity: Estimate
    # mean loss minus the same pruned model's before recovery, paired over windows
    log_perplexity_minus_pruned: Estimate
    accuracy: Estimate | None = field(default=None, metadata=OPTIONAL)
    sparsity_reached: float


@dataclass(kw_only=True)
class Variant:
    method: str
    sparsity: str  # "50%" or "2:4"
    owl: bool
    perplexity: Estimate  # 95% bootstrap over the evaluation windows
    # mean loss minus the magnitude-pruned model's at the same sparsity (log of the ratio
    # of perplexities; negative: better), paired over windows
    log_perplexity_minus_magnitude: Estimate | None = None
    baseline: str | None = field(default=None, metadata=OPTIONAL)
    sparsity_reached: float  # over every pruned layer's weights
    least_layer_sparsity: float
    most_layer_sparsity: float
    block_sparsities: list[float] | None = field(default=None, metadata=OPTIONAL)  # OWL
    accuracy: Estimate | None = field(default=None, metadata=OPTIONAL)  # zero-shot
    # zero-shot accuracy minus the magnitude-pruned model's, paired over questions
    accuracy_minus_magnitude: Estimate | None = field(default=None, metadata=OPTIONAL)
    recovered: Recovered | None = field(default=None, metadata=OPTIONAL)


@dataclass(kw_only=True)
class LanguagePruneResults:
    model: str
    task: str
    calibration_sequences: int
    sequence_length: int
    eval_windows: int
    dense: Estimate
    variants: dict[str, Variant]  # by label: "wanda 50%", "sparsegpt 2:4", "wanda+owl 70%"
    zero_shot_task: str | None = field(default=None, metadata=OPTIONAL)
    zero_shot_examples: int = 0
    dense_accuracy: Estimate | None = field(default=None, metadata=OPTIONAL)
    recovery_windows: int = 0


class _Paired:
    """Bootstrap intervals of per-item means, every model resampled with the same items."""

    def __init__(self, scores: Mapping[str, np.ndarray], samples: int, seed: int) -> None:
        self.scores, self.samples, self.seed = scores, samples, seed

    def mean(self, name: str) -> dict[str, Any]:
        found = paired_bootstrap_means(
            {name: self.scores[name]}, samples=self.samples, seed=self.seed
        )
        return found["models"][name]

    def difference(self, name: str, baseline: str) -> Estimate:
        pair = {name: self.scores[name], baseline: self.scores[baseline]}
        found = paired_bootstrap_means(
            pair, baseline=baseline, samples=self.samples, seed=self.seed
        )
        return estimate(found["difference"][name])


def _measured(
    dense: Mapping[str, Any],
    outcomes: Mapping[str, Mapping[str, Any]],
    key: str,
    gold: Sequence[int],
) -> dict[str, np.ndarray]:
    """Per-item scores of every model (recovered ones as "<label> recovered"): window losses
    for `key` "losses", correct answers for "answers"."""

    def scores(measured: Mapping[str, Any]) -> np.ndarray:
        values = np.asarray(measured[key], dtype=np.float64)
        return values if key == "losses" else correct_answers(values, gold)

    found = {"dense": scores(dense)}
    for label, outcome in outcomes.items():
        found[label] = scores(outcome)
        if "recovered" in outcome:
            found[f"{label} recovered"] = scores(outcome["recovered"])
    return found


def _variant(
    label: str,
    outcome: Mapping[str, Any],
    losses: _Paired,
    accuracy: _Paired | None,
) -> Variant:
    method, sparsity = label.split(" ")
    owl = method.endswith("+owl")
    baseline = variant_label("magnitude", sparsity, owl)
    compared = not method.startswith("magnitude") and baseline in losses.scores
    layers = outcome["layers"]
    recovered = None
    if "recovered" in outcome:
        name = f"{label} recovered"
        recovered = Recovered(
            perplexity=estimate(perplexity_of(losses.mean(name))),
            log_perplexity_minus_pruned=losses.difference(name, label),
            accuracy=estimate(accuracy.mean(name)) if accuracy else None,
            sparsity_reached=float(outcome["recovered"]["sparsity_reached"]),
        )
    return Variant(
        method=method.removesuffix("+owl"),
        sparsity=sparsity,
        owl=owl,
        perplexity=estimate(perplexity_of(losses.mean(label))),
        log_perplexity_minus_magnitude=losses.difference(label, baseline) if compared else None,
        baseline=baseline if compared else None,
        sparsity_reached=sum(x["pruned"] for x in layers) / sum(x["weights"] for x in layers),
        least_layer_sparsity=min(x["pruned"] / x["weights"] for x in layers),
        most_layer_sparsity=max(x["pruned"] / x["weights"] for x in layers),
        block_sparsities=outcome["block_sparsities"],
        accuracy=estimate(accuracy.mean(label)) if accuracy else None,
        accuracy_minus_magnitude=accuracy.difference(label, baseline)
        if accuracy and compared
        else None,
        recovered=recovered,
    )


def summarise(
    config: LanguagePruneConfig,
    dense: Mapping[str, Any],
    outcomes: Mapping[str, Mapping[str, Any]],
    gold: Sequence[int],
) -> LanguagePruneResults:
    """The results of a run from its cached steps: the dense model's and each variant's."""
    samples, seed = config.bootstrap_samples, config.seed
    losses = _Paired(_measured(dense, outcomes, "losses", gold), samples, seed)
    accuracy = None
    if "answers" in dense:
        accuracy = _Paired(_measured(dense, outcomes, "answers", gold), samples, seed)
    return LanguagePruneResults(
        model=config.model,
        task=config.task.name,
        calibration_sequences=config.calibration_sequences,
        sequence_length=config.sequence_length,
        eval_windows=len(dense["losses"]),
        dense=estimate(perplexity_of(losses.mean("dense"))),
        variants={
            label: _variant(label, outcome, losses, accuracy) for label, outcome in outcomes.items()
        },
        zero_shot_task=config.zero_shot.task.name if accuracy else None,
        zero_shot_examples=len(gold) if accuracy else 0,
        dense_accuracy=estimate(accuracy.mean("dense")) if accuracy else None,
        recovery_windows=config.recovery.windows,
    )


def language_records(results: LanguagePruneResults) -> list[MetricRecord]:
    def add(metric: str, model: str, value: Estimate, higher: bool, **extra: Any) -> None:
        records.append(
            metric_record(metric, model, to_json(value), higher_is_better=higher, **extra)
        )

    records: list[MetricRecord] = []
    add("perplexity", "dense", results.dense, False)
    if results.dense_accuracy is not None:
        add("zero-shot accuracy", "dense", results.dense_accuracy, True)
    for label, variant in results.variants.items():
        add("perplexity", label, variant.perplexity, False)
        against_magnitude = [
            ("log-perplexity", variant.log_perplexity_minus_magnitude, False),
            ("zero-shot accuracy", variant.accuracy_minus_magnitude, True),
        ]
        for of, difference, higher in against_magnitude:
            if difference is not None and variant.baseline:
                add("difference", label, difference, higher, of=of, baseline=variant.baseline)
        if variant.accuracy is not None:
            add("zero-shot accuracy", label, variant.accuracy, True)
        if variant.recovered is not None:
            name = f"{label} recovered"
            add("perplexity", name, variant.recovered.perplexity, False)
            difference = variant.recovered.log_perplexity_minus_pruned
            add("difference", name, difference, False, of="log-perplexity", baseline=label)
            if variant.recovered.accuracy is not None:
                add("zero-shot accuracy", name, variant.recovered.accuracy, True)
    return records


def _accuracy(value: Estimate | None) -> str:
    return format_interval(value, 3) if value is not None else ""


def language_tables(results: LanguagePruneResults) -> list[ResultTable]:
    asked = results.zero_shot_task is not None
    rows = [["dense", "0%", "", format_interval(results.dense, 2), ""]]
    rows[0] += [_accuracy(results.dense_accuracy), ""] if asked else []
    for label, variant in results.variants.items():
        difference = variant.log_perplexity_minus_magnitude
        row = [
            label,
            f"{variant.sparsity_reached:.1%}",
            f"{variant.least_layer_sparsity:.1%}–{variant.most_layer_sparsity:.1%}",
            format_interval(variant.perplexity, 2),
            format_interval(difference, 3, signed=True) if difference else "",
        ]
        if asked:
            gain = variant.accuracy_minus_magnitude
            row += [
                _accuracy(variant.accuracy),
                format_interval(gain, 3, signed=True) if gain else "",
            ]
        rows.append(row)
    title = (
        f"{results.model} on {results.task}: perplexity of {results.eval_windows} held-out "
        f"windows of {results.sequence_length} tokens (95% bootstrap CI); "
        f"{results.calibration_sequences} calibration sequences"
    )
    if asked:
        title += f"; zero-shot accuracy on {results.zero_shot_examples} {results.zero_shot_task} questions"
    notes = [
        "log-ppl − magnitude: the mean token loss minus the magnitude-pruned model's at the same "
        "sparsity, paired over windows (negative: better; exp of it is the perplexity ratio)",
        "sparsity reached: of the pruned layers' weights; per layer: the least and most pruned",
    ]
    columns = ["model", "sparsity reached", "per layer", "perplexity", "log-ppl − magnitude"]
    if asked:
        columns += ["zero-shot accuracy", "accuracy − magnitude"]
        notes.append(
            "zero-shot accuracy: the label whose name the model finds likeliest as the answer "
            "(weak2strong.scoring.zero_shot); − magnitude: paired over questions"
        )
    return [ResultTable(title, columns, rows, notes), *_recovery_tables(results)]


def _recovery_tables(results: LanguagePruneResults) -> list[ResultTable]:
    rows = []
    for label, variant in results.variants.items():
        after = variant.recovered
        if after is None:
            continue
        rows.append(
            [
                label,
                format_interval(variant.perplexity, 2),
                format_interval(after.perplexity, 2),
                format_interval(after.log_perplexity_minus_pruned, 3, signed=True),
                _accuracy(variant.accuracy),
                _accuracy(after.accuracy),
                f"{after.sparsity_reached:.1%}",
            ]
        )
    if not rows:
        return []
    title = (
        f"Recovery: each pruned model fine-tuned on {results.recovery_windows} train windows "
        "with its mask held fixed"
    )
    columns = [
        "model",
        "perplexity pruned",
        "perplexity recovered",
        "log-ppl recovered − pruned",
        "accuracy pruned",
        "accuracy recovered",
        "sparsity after",
    ]
    notes = ["sparsity after: of the pruned layers' weights once recovered (the mask is kept)"]
    return [ResultTable(title, columns, rows, notes)]


def language_headline(results: LanguagePruneResults) -> dict[str, float]:
    numbers = {"dense perplexity": results.dense.value}
    numbers |= {label: v.perplexity.value for label, v in results.variants.items()}
    return {key: value for key, value in numbers.items() if value is not None}


def plot_language(results: LanguagePruneResults, path: Path) -> Path | None:
    """Each model's perplexity (on a log scale, as a mean token loss), pruned and recovered."""
    named: list[tuple[str, Estimate]] = [("dense", results.dense)]
    for label, variant in results.variants.items():
        named.append((label, variant.perplexity))
        if variant.recovered is not None:
            named.append((f"{label} recovered", variant.recovered.perplexity))
    measured = [(name, value) for name, value in named if value.value is not None]
    if not measured:
        return None

    def log(number: float | None) -> float | None:
        return None if number is None else math.log(number)

    return bar_chart_with_intervals(
        path,
        [name for name, _ in measured],
        [math.log(value.value or 1.0) for _, value in measured],
        [log(value.low) for _, value in measured],
        [log(value.high) for _, value in measured],
        title=f"{results.model}: perplexity on {results.task} after one-shot pruning",
        ylabel="log perplexity (mean token loss, nats)",
        annotations=[f"{value.value:.1f}" for _, value in measured],
    )
