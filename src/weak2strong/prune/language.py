"""`w2s prune-lm`: one-shot pruning of a causal language model, the field's setting since
2023 (SparseGPT, Wanda, OWL): magnitude, Wanda and SparseGPT at unstructured sparsities and
N:M patterns (optionally with OWL's per-block sparsities), each measured as the papers
measure it: perplexity on held-out text and accuracy on a task answered zero-shot, against
the dense model, with the sparsity every layer actually reached; optionally again after a
recovery fine-tuning with the mask held fixed.

Calibration sequences (and recovery windows, after them) come from the task's train split,
drawn by `seed`; the perplexity windows from its test split (the same for every seed); all
are token windows of `sequence_length` (see `weak2strong.scoring.perplexity`). Every
variant is a cached step of the run, so an interrupted run resumes at the next one. No
speed-up is claimed: pruned weights are zeros in dense tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weak2strong.data import load_task
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm, load_tokenizer, resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.prune.language_config import LanguagePruneConfig
from weak2strong.prune.language_summary import language_records, summarise, variant_label
from weak2strong.prune.oneshot import (
    OneShotMethod,
    Sparsity,
    owl_block_sparsities,
    prune_language_model,
)
from weak2strong.prune.recovery import recover
from weak2strong.runs import Run
from weak2strong.runs.typed import to_json
from weak2strong.scoring.perplexity import token_windows, window_losses
from weak2strong.scoring.zero_shot import label_log_likelihoods
from weak2strong.settings import check_settings

Variant = tuple[OneShotMethod, Sparsity, bool]  # method, sparsity, with OWL


@dataclass(frozen=True)
class Texts:
    """What every variant is calibrated, measured and recovered on."""

    calibration: list[torch.Tensor]  # batches of token windows
    evaluation: torch.Tensor  # [windows, length]
    recovery: torch.Tensor  # [windows, length], possibly empty
    questions: list[str]  # zero-shot texts, possibly none
    answers: list[int]  # their gold labels
    label_names: tuple[str, ...]
    fingerprints: dict[str, str]
    tokenizer: Any  # the model's, loaded once


class LanguagePrune:
    def __init__(self, config: LanguagePruneConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)
        if not config.methods or not config.sparsities:
            raise W2SError("give at least one method and one sparsity")
        self.sparsities = [Sparsity.parse(text) for text in config.sparsities]
        self.config = config
        self.runs_dir = runs_dir

    def variants(self) -> list[Variant]:
        found = [(m, s, False) for s in self.sparsities for m in self.config.methods]
        if self.config.owl:
            unstructured = [s for s in self.sparsities if not s.structured]
            found += [(m, s, True) for s in unstructured for m in self.config.methods]
        return found

    def texts(self) -> Texts:
        cfg = self.config
        data = load_task(cfg.task, seed=0)
        train = data.texts("train")
        order = np.random.default_rng(cfg.seed).permutation(len(train))
        tokenizer = load_tokenizer(cfg.model)
        drawn = token_windows(
            tokenizer,
            [train[i] for i in order],
            cfg.sequence_length,
            cfg.calibration_sequences + cfg.recovery.windows,
        )
        calibration, recovery = drawn.split([cfg.calibration_sequences, cfg.recovery.windows])
        evaluation = token_windows(
            tokenizer, data.texts("test"), cfg.sequence_length, cfg.eval_windows
        )
        fingerprints = {"task": data.fingerprint()}
        questions: list[str] = []
        answers: list[int] = []
        label_names: tuple[str, ...] = ()
        if cfg.zero_shot.examples:
            asked = load_task(cfg.zero_shot.task, seed=0)
            texts, labels = asked.texts("test"), asked.labels("test")
            if len(texts) < cfg.zero_shot.examples:
                raise W2SError(
                    f"zero_shot.examples is {cfg.zero_shot.examples} but the test split of "
                    f"{cfg.zero_shot.task.name} has {len(texts)} examples"
                )
            # a fixed draw, the same for every seed: test splits are often sorted by label
            chosen = np.random.default_rng(0).permutation(len(texts))[: cfg.zero_shot.examples]
            questions = [texts[i] for i in chosen]
            answers = [labels[i] for i in chosen]
            label_names = asked.label_names
            fingerprints["zero_shot_task"] = asked.fingerprint()
        return Texts(
            list(calibration.split(cfg.batch_size)),
            evaluation,
            recovery,
            questions,
            answers,
            label_names,
            fingerprints,
            tokenizer,
        )

    def _model(self) -> Any:
        model, _ = load_causal_lm(self.config.model, dtype=self.config.dtype)
        return model

    def _measure(self, model: Any, texts: Texts, label: str) -> dict[str, Any]:
        """Perplexity window losses, and the zero-shot label log-likelihoods if asked for."""
        cfg = self.config
        losses = window_losses(
            model,
            texts.evaluation,
            cfg.batch_size,
            description=f"perplexity {label}",
            show_progress=cfg.show_progress,
        )
        measured: dict[str, Any] = {"losses": [float(value) for value in losses]}
        if texts.questions:
            measured["answers"] = label_log_likelihoods(
                model,
                texts.tokenizer,
                texts.questions,
                texts.label_names,
                max_text_tokens=cfg.zero_shot.max_text_tokens,
                batch_size=cfg.batch_size,
                description=f"zero-shot {label}",
                show_progress=cfg.show_progress,
            ).tolist()
        return measured

    def _variant(
        self, variant: Variant, owl: Callable[[], list[float]] | None, texts: Texts
    ) -> dict[str, Any]:
        """One variant pruned and measured (and recovered and measured again, if asked);
        `owl` gives its block sparsities, if any."""
        method, sparsity, _ = variant
        label = variant_label(*variant)
        blocks = owl() if owl is not None else None
        model = self._model()
        layers = prune_language_model(
            model, texts.calibration, method, sparsity, block_sparsities=blocks
        )
        outcome = self._measure(model, texts, label)
        outcome["layers"] = [
            {"block": x.block, "layer": x.name, "weights": x.weights, "pruned": x.pruned}
            for x in layers
        ]
        outcome["block_sparsities"] = blocks
        if len(texts.recovery):
            masks = recover(model, texts.recovery, self.config.recovery, seed=self.config.seed)
            outcome["recovered"] = self._measure(model, texts, f"{label} recovered")
            outcome["recovered"]["sparsity_reached"] = masks.sparsity()
        return outcome

    def _owl(self, run: Run, sparsity: Sparsity, texts: Texts) -> list[float]:
        """OWL's block sparsities for a target, from the dense model: one cached step shared
        by every method at that target."""

        def compute() -> dict[str, list[float]]:
            sparsities = owl_block_sparsities(
                self._model(),
                texts.calibration,
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
        texts = self.texts()
        inputs = {"model": model_fingerprint(cfg.model), **texts.fingerprints}
        with Run.open("prune-lm", cfg, self.runs_dir, inputs) as run:
            variants = self.variants()
            run.plan(["dense", *(variant_label(*v) for v in variants)])
            run.phase("dense")
            dense = run.cached_json("dense", lambda: self._measure(self._model(), texts, "dense"))
            outcomes = {}
            for variant in variants:
                label = variant_label(*variant)
                run.phase(label)
                key = label.replace(" ", "-").replace(":", "of").replace("%", "pct")
                owl = functools.partial(self._owl, run, variant[1], texts) if variant[2] else None
                outcomes[label] = run.cached_json(
                    key, functools.partial(self._variant, variant, owl, texts)
                )
            results = summarise(cfg, dense, outcomes, texts.answers)
            payload = to_json(results)
            run.write_results(payload, language_records(results))
            return run, payload
