"""What `w2s prune-lm` measured (results.json's detail), its metric records and its table."""

from __future__ import annotations

from dataclasses import dataclass, field

from weak2strong.report import ResultTable, format_interval
from weak2strong.runs.results import MetricRecord, metric_record
from weak2strong.runs.typed import OMIT_IF_NONE, Estimate, to_json


@dataclass(kw_only=True)
class Variant:
    method: str
    sparsity: str  # "50%" or "2:4"
    owl: bool
    perplexity: Estimate  # 95% bootstrap over the evaluation windows
    # mean loss minus the magnitude-pruned model's at the same sparsity (log of the ratio
    # of perplexities; negative: better), paired over windows
    log_perplexity_minus_magnitude: Estimate | None = None
    baseline: str | None = field(default=None, metadata=OMIT_IF_NONE)
    sparsity_reached: float  # over every pruned layer's weights
    least_layer_sparsity: float
    most_layer_sparsity: float
    block_sparsities: list[float] | None = field(default=None, metadata=OMIT_IF_NONE)  # OWL


@dataclass(kw_only=True)
class LanguagePruneResults:
    model: str
    task: str
    calibration_sequences: int
    sequence_length: int
    eval_windows: int
    dense: Estimate
    variants: dict[str, Variant]  # by label: "wanda 50%", "sparsegpt 2:4", "wanda+owl 70%"


def language_records(results: LanguagePruneResults) -> list[MetricRecord]:
    records = [metric_record("perplexity", "dense", to_json(results.dense), higher_is_better=False)]
    for label, variant in results.variants.items():
        records.append(
            metric_record("perplexity", label, to_json(variant.perplexity), higher_is_better=False)
        )
        if variant.log_perplexity_minus_magnitude is not None and variant.baseline:
            records.append(
                metric_record(
                    "difference",
                    label,
                    to_json(variant.log_perplexity_minus_magnitude),
                    higher_is_better=False,
                    of="log-perplexity",
                    baseline=variant.baseline,
                )
            )
    return records


def language_tables(results: LanguagePruneResults) -> list[ResultTable]:
    rows = [["dense", "0%", "", format_interval(results.dense, 2), ""]]
    for label, variant in results.variants.items():
        spread = f"{variant.least_layer_sparsity:.1%}–{variant.most_layer_sparsity:.1%}"
        difference = variant.log_perplexity_minus_magnitude
        rows.append(
            [
                label,
                f"{variant.sparsity_reached:.1%}",
                spread,
                format_interval(variant.perplexity, 2),
                format_interval(difference, 3, signed=True) if difference else "",
            ]
        )
    title = (
        f"{results.model} on {results.task}: perplexity of {results.eval_windows} held-out "
        f"windows of {results.sequence_length} tokens (95% bootstrap CI); "
        f"{results.calibration_sequences} calibration sequences"
    )
    notes = [
        "log-ppl − magnitude: the mean token loss minus the magnitude-pruned model's at the same "
        "sparsity, paired over windows (negative: better; exp of it is the perplexity ratio)",
        "sparsity reached: of the pruned layers' weights; per layer: the least and most pruned",
    ]
    columns = ["model", "sparsity reached", "per layer", "perplexity", "log-ppl − magnitude"]
    return [ResultTable(title, columns, rows, notes)]


def language_headline(results: LanguagePruneResults) -> dict[str, float]:
    numbers = {"dense perplexity": results.dense.value}
    numbers |= {label: v.perplexity.value for label, v in results.variants.items()}
    return {key: value for key, value in numbers.items() if value is not None}
