"""`w2s prune-lm`: one-shot pruning of a causal language model, the field's setting since
2023 (SparseGPT, Wanda, OWL): magnitude, Wanda and SparseGPT at unstructured sparsities and
N:M patterns (optionally with OWL's per-block sparsities), each measured by perplexity on
held-out text against the dense model, with the sparsity every layer actually reached.

Calibration sequences come from the task's train split (drawn by `seed`), the evaluation
windows from its test split (the same for every seed); both are token windows of
`sequence_length` (see `weak2strong.scoring.perplexity`). Every variant is a cached step
of the run, so an interrupted run resumes at the next one. No speed-up is claimed: pruned
weights are zeros in dense tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from weak2strong.data import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm, load_tokenizer, resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.prune.language_summary import (
    LanguagePruneResults,
    Variant,
    language_records,
)
from weak2strong.prune.oneshot import (
    OneShotMethod,
    Sparsity,
    owl_block_sparsities,
    prune_language_model,
)
from weak2strong.runs import Run
from weak2strong.runs.typed import estimate, to_json
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.perplexity import perplexity_of, token_windows, window_losses
from weak2strong.settings import check_settings, setting


@dataclass
class LanguagePruneConfig:
    seed: int = setting(0, help="the draw of calibration sequences")
    model: str = setting(
        "smollm2-135m-instruct", help="the causal LM: an embedded name, a local folder or a hub id"
    )
    methods: list[OneShotMethod] = setting(
        help="magnitude, wanda, sparsegpt", factory=lambda: ["magnitude", "wanda", "sparsegpt"]
    )
    sparsities: list[str] = setting(
        help="unstructured fractions (0.5) and N:M patterns (2:4)", factory=lambda: ["0.5", "2:4"]
    )
    owl: bool = setting(
        False, help="also every method at every unstructured sparsity with OWL's block sparsities"
    )
    owl_multiple: float = setting(5.0, help="OWL: an outlier is above this many times the mean")
    owl_spread: float = setting(0.08, help="OWL: block sparsities within ± this of the target")
    task: TaskConfig = setting(
        help="the text: calibration from its train split, evaluation from its test split",
        factory=lambda: TaskConfig(name="imdb"),
    )
    calibration_sequences: int = setting(32, help="calibration sequences (the papers: 128)")
    eval_windows: int = setting(64, help="held-out windows perplexity is measured on")
    sequence_length: int = setting(256, help="tokens per calibration sequence and window")
    batch_size: int = setting(4, help="sequences per forward pass")
    dtype: Literal["float32", "bfloat16"] = setting("float32", help="the model's dtype")
    bootstrap_samples: int = setting(1000, help="bootstrap resamples of the windows")
    show_progress: bool = setting(True, help="progress bars", hash=False)


def variant_label(method: str, sparsity: Sparsity, owl: bool) -> str:
    return f"{method}{'+owl' if owl else ''} {sparsity}"


class LanguagePrune:
    def __init__(self, config: LanguagePruneConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)
        if not config.methods or not config.sparsities:
            raise W2SError("give at least one method and one sparsity")
        self.sparsities = [Sparsity.parse(text) for text in config.sparsities]
        self.config = config
        self.runs_dir = runs_dir

    def variants(self) -> list[tuple[OneShotMethod, Sparsity, bool]]:
        found = [(m, s, False) for s in self.sparsities for m in self.config.methods]
        if self.config.owl:
            unstructured = [s for s in self.sparsities if not s.structured]
            found += [(m, s, True) for s in unstructured for m in self.config.methods]
        return found

    def _windows(self) -> tuple[list[torch.Tensor], torch.Tensor, str]:
        cfg = self.config
        data = load_task(cfg.task, seed=0)
        train = data.texts("train")
        order = np.random.default_rng(cfg.seed).permutation(len(train))
        tokenizer = load_tokenizer(cfg.model)
        calibration = token_windows(
            tokenizer, [train[i] for i in order], cfg.sequence_length, cfg.calibration_sequences
        )
        evaluation = token_windows(
            tokenizer, data.texts("test"), cfg.sequence_length, cfg.eval_windows
        )
        return list(calibration.split(cfg.batch_size)), evaluation, data.fingerprint()

    def _model(self) -> Any:
        model, _ = load_causal_lm(self.config.model, dtype=self.config.dtype, device="cpu")
        return model

    def _losses(self, model: Any, evaluation: torch.Tensor, label: str) -> list[float]:
        losses = window_losses(
            model,
            evaluation,
            self.config.batch_size,
            description=f"perplexity {label}",
            show_progress=self.config.show_progress,
        )
        return [float(value) for value in losses]

    def _variant(
        self,
        method: OneShotMethod,
        sparsity: Sparsity,
        owl: Callable[[], list[float]] | None,
        calibration: list[torch.Tensor],
        evaluation: torch.Tensor,
    ) -> dict[str, Any]:
        """One variant pruned and measured; `owl` gives its block sparsities, if any."""
        blocks = owl() if owl is not None else None
        model = self._model()
        layers = prune_language_model(model, calibration, method, sparsity, block_sparsities=blocks)
        return {
            "losses": self._losses(model, evaluation, variant_label(method, sparsity, bool(owl))),
            "layers": [
                {
                    "block": layer.block,
                    "layer": layer.name,
                    "weights": layer.weights,
                    "pruned": layer.pruned,
                }
                for layer in layers
            ],
            "block_sparsities": blocks,
        }

    def _owl(self, run: Run, sparsity: Sparsity, calibration: list[torch.Tensor]) -> list[float]:
        """OWL's block sparsities for a target, from the dense model: one cached step shared
        by every method at that target."""

        def compute() -> dict[str, list[float]]:
            sparsities = owl_block_sparsities(
                self._model(),
                calibration,
                sparsity.fraction,
                multiple=self.config.owl_multiple,
                spread=self.config.owl_spread,
            )
            return {"block_sparsities": sparsities}

        key = f"owl-{sparsity}".replace("%", "pct")
        stored: list[float] = run.cached_json(key, compute)["block_sparsities"]
        return stored

    def run(self) -> tuple[Run, dict[str, Any]]:
        cfg = self.config
        resolve(cfg.model)  # a model that is not there fails before the run folder
        calibration, evaluation, fingerprint = self._windows()
        inputs = {"model": model_fingerprint(cfg.model), "task": fingerprint}
        with Run.open("prune-lm", cfg, self.runs_dir, inputs) as run:
            variants = self.variants()
            run.plan(["dense", *(variant_label(*v) for v in variants)])
            run.phase("dense")
            dense = run.cached_json(
                "dense", lambda: {"losses": self._losses(self._model(), evaluation, "dense")}
            )
            outcomes = {}
            for method, sparsity, owl in variants:
                label = variant_label(method, sparsity, owl)
                run.phase(label)
                key = label.replace(" ", "-").replace(":", "of").replace("%", "pct")
                blocks = functools.partial(self._owl, run, sparsity, calibration) if owl else None
                outcomes[label] = run.cached_json(
                    key,
                    functools.partial(
                        self._variant, method, sparsity, blocks, calibration, evaluation
                    ),
                )
            results = self._summarise(dense["losses"], outcomes, calibration, variants)
            payload = to_json(results)
            run.write_results(payload, language_records(results))
            return run, payload

    def _summarise(
        self,
        dense: list[float],
        outcomes: dict[str, dict[str, Any]],
        calibration: list[torch.Tensor],
        variants: list[tuple[OneShotMethod, Sparsity, bool]],
    ) -> LanguagePruneResults:
        cfg = self.config
        losses = {"dense": np.asarray(dense)} | {
            label: np.asarray(outcome["losses"]) for label, outcome in outcomes.items()
        }
        boot = paired_bootstrap_means(
            losses, baseline="dense", samples=cfg.bootstrap_samples, seed=cfg.seed
        )
        table: dict[str, Variant] = {}
        for method, sparsity, owl in variants:
            label = variant_label(method, sparsity, owl)
            layers = outcomes[label]["layers"]
            baseline = variant_label("magnitude", sparsity, owl)
            difference = None
            if method != "magnitude" and baseline in losses:
                pair = paired_bootstrap_means(
                    {label: losses[label], baseline: losses[baseline]},
                    baseline=baseline,
                    samples=cfg.bootstrap_samples,
                    seed=cfg.seed,
                )
                difference = estimate(pair["difference"][label])
            table[label] = Variant(
                method=method,
                sparsity=str(sparsity),
                owl=owl,
                perplexity=estimate(perplexity_of(boot["models"][label])),
                log_perplexity_minus_magnitude=difference,
                baseline=baseline if difference is not None else None,
                sparsity_reached=sum(x["pruned"] for x in layers)
                / sum(x["weights"] for x in layers),
                least_layer_sparsity=min(x["pruned"] / x["weights"] for x in layers),
                most_layer_sparsity=max(x["pruned"] / x["weights"] for x in layers),
                block_sparsities=outcomes[label]["block_sparsities"],
            )
        return LanguagePruneResults(
            model=cfg.model,
            task=cfg.task.name,
            calibration_sequences=sum(len(batch) for batch in calibration),
            sequence_length=cfg.sequence_length,
            eval_windows=len(dense),
            dense=estimate(perplexity_of(boot["models"]["dense"])),
            variants=table,
        )
