"""`w2s search`: decode held-out prompts with each method and score them with a gold reward."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompts import Prompt, held_out_prompts, prompts_digest
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm, load_tokenizer, resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run
from weak2strong.runs.exports import export_generations
from weak2strong.runs.results import PROMPTS, absolute
from weak2strong.runs.typed import estimate, optional_estimate, to_json
from weak2strong.scoring.held_out import HeldOutRewards
from weak2strong.scoring.scorers import check_scorer_name, scorer_description, scorer_fingerprint
from weak2strong.search import backends, methods
from weak2strong.search.config import METHODS, MethodName, SearchConfig
from weak2strong.search.curve import curve_best_of_n, curve_cbs, curve_points
from weak2strong.search.decoders import CBSSettings, Decoded, check_tokenizers_share_vocabulary
from weak2strong.search.lm import LanguageModel
from weak2strong.search.methods import Batch, cbs_label, method_label
from weak2strong.search.pair import ModelPair
from weak2strong.search.results import MethodOutcome, SearchResults
from weak2strong.search.samplers import Sampler
from weak2strong.search.summary import metric_records
from weak2strong.settings import check_settings
from weak2strong.tune import default_tuned_model


def _check_settings(config: SearchConfig, chosen: list[MethodName]) -> None:
    """What the config loader cannot see: settings valid alone but not together."""
    config.cbs.validate()
    config.sampling.validate()
    config.vllm.validate()
    check_scorer_name(config.scorer.name)
    if config.bon_n < 1:
        raise W2SError("best-of-N needs N ≥ 1")
    if config.curve:
        if min(config.curve) < 1 or max(config.curve) > config.bon_n:
            raise W2SError(
                f"curve points must lie in 1..bon_n ({config.bon_n}): best-of-N's points "
                f"are the best of the bon run's first N candidates (got {config.curve})"
            )
        if not {"bon", "cbs"} <= set(chosen):
            raise W2SError("a compute curve needs the bon and cbs methods (--method all)")
    for who, prompt_format in (
        ("large", config.large_format()),
        ("pair.tuned", config.pair.tuned_format()),
        ("pair.untuned", config.pair.untuned_format()),
    ):
        prompt_format.check(who)


def _eft_impossible(config: SearchConfig) -> str | None:
    """Why EFT cannot mix these models' logits (None: it can)."""
    if not backends.REGISTRY[config.backend].logits:
        return (
            f"EFT mixes the large model's logits at every token; the {config.backend} "
            "backend only samples text: use --backend transformers"
        )
    tuned = config.pair.tuned or config.tune.base  # w2s tune keeps its base's tokenizer
    names = {"large": config.large, "tuned": tuned, "untuned": config.pair.untuned}
    try:
        check_tokenizers_share_vocabulary(
            {name: load_tokenizer(name) for name in names.values()}, config.large
        )
    except W2SError as error:
        return str(error)
    return None


def _responses(outputs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    return {name: output["responses"] for name, output in outputs.items()}


def _chosen_methods(config: SearchConfig) -> list[MethodName]:
    chosen = list(METHODS) if "all" in config.methods else [m for m in config.methods if m != "all"]
    if not chosen:
        raise W2SError(f"no search method given (known: {', '.join(METHODS)}, all)")
    return chosen


class Search:
    def __init__(self, config: SearchConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)  # a config built in Python, as one loaded from YAML
        chosen = _chosen_methods(config)
        _check_settings(config, chosen)
        backend = backends.REGISTRY[config.backend]
        self.config = config
        self.runs_dir = runs_dir
        self._models: dict[str, Any] = {}
        self._sampler: Sampler | None = None
        self.startup: dict[str, float] = {}  # seconds to load each model / start each engine
        if backend.at_setup:  # a black box: nothing to resolve here, but it must answer now
            self._sampler = backend.make(config, self.large)
        if backend.local:
            resolve(config.large)
        resolve(config.pair.untuned)
        if config.pair.tuned:
            resolve(config.pair.tuned)
        self.skipped: dict[str, str] = {}
        # tokenizers only: a wrong pairing fails before any model loads or folder exists
        reason = _eft_impossible(config) if "eft" in chosen else None
        if reason is not None:
            if "all" not in config.methods:
                raise W2SError(reason)
            chosen.remove("eft")
            self.skipped["eft"] = reason
        self.methods = chosen
        self.prompts = held_out_prompts(
            config.prompts,
            config.test_prompts,
            seed=config.seed,
            prompt_words=config.prompt_words,
            options=config.prompt_options,
        )
        self.evaluation = HeldOutRewards(
            config.scorer, self.prompts, show_progress=config.show_progress, maximised_by="search"
        )
        self._tuned_path: str | None = None
        self.tune_warning: str | None = None  # the default tuned model is at chance

    # ---- models, loaded once and only when a step needs them

    def tuned_path(self) -> str:
        """The tuned model: given, or `w2s tune`'s default (trained once, in its own run)."""
        if self.config.pair.tuned:
            return self.config.pair.tuned
        if self._tuned_path is None:
            tune_config = dataclasses.replace(
                self.config.tune, seed=self.config.seed, show_progress=self.config.show_progress
            )
            self._tuned_path, self.tune_warning = default_tuned_model(tune_config, self.runs_dir)
        return self._tuned_path

    def _lm(self, role: str) -> LanguageModel:
        if role not in self._models:
            cfg = self.config
            name, prompt_format = {
                "large": (cfg.large, cfg.large_format()),
                "tuned": (self.tuned_path(), cfg.pair.tuned_format()),
                "untuned": (cfg.pair.untuned, cfg.pair.untuned_format()),
            }[role]
            started = time.perf_counter()
            model, tokenizer = load_causal_lm(name)
            self._models[role] = LanguageModel(name, model, tokenizer, prompt_format)
            self.startup[role] = time.perf_counter() - started
        lm: LanguageModel = self._models[role]
        return lm

    def large(self) -> LanguageModel:
        return self._lm("large")

    def pair(self) -> ModelPair:
        return ModelPair(self._lm("tuned"), self._lm("untuned"))

    def sampler(self) -> Sampler:
        """The large model's sampler; an engine or a client is made once and reused."""
        backend = backends.REGISTRY[self.config.backend]
        if not backend.reused:
            return backend.make(self.config, self.large)
        if self._sampler is None:
            started = time.perf_counter()
            self._sampler = backend.make(self.config, self.large)
            self.startup[f"large ({self.config.backend} engine)"] = time.perf_counter() - started
        return self._sampler

    def dtypes(self) -> dict[str, str]:
        """What each loaded model computes in (vLLM on CPU: bfloat16; transformers: float32)."""
        found = {
            role: str(lm.model.dtype).removeprefix("torch.") for role, lm in self._models.items()
        }
        if self._sampler is not None:  # vllm engine or api client
            found["large"] = self._sampler.dtype
        return found

    # ---- decoding

    def decode(
        self,
        method: MethodName,
        prompts: list[Prompt],
        prompt_ids: list[int] | None = None,
        cbs: CBSSettings | None = None,
    ) -> Decoded:
        """One batch of prompts; `prompt_ids` (their indices in the run) pick their seeds;
        `cbs` replaces the configured CBS settings (a curve point)."""
        return methods.REGISTRY[method].decode(self, Batch(prompts, prompt_ids, cbs))

    def _decode_all(self, method: MethodName, cbs: CBSSettings | None = None) -> dict[str, Any]:
        """Every prompt decoded, batches shared between processes. Models load (and an
        engine starts) before the clock starts: `seconds` is decoding alone."""
        self.sampler()
        if methods.REGISTRY[method].steered:
            self.pair()
        started = time.perf_counter()
        decoded = distributed.map_batches(
            lambda batch: self.decode(method, [self.prompts[i] for i in batch], batch, cbs),
            distributed.batches_of(len(self.prompts), self.config.sampling.batch_size),
            description=cbs_label(cbs) if cbs else method_label(method, self.config),
            show_progress=self.config.show_progress,
        )
        output: dict[str, Any] = {
            "responses": [text for part in decoded for text in part.texts],
            "finished": [done for part in decoded for done in part.finished],
            "pair_scores": [score for part in decoded for score in part.pair_scores],
            "sampled_tokens": sum(part.sampled_tokens for part in decoded),
            "seconds": time.perf_counter() - started,
        }
        if method == "bon":  # every candidate: the compute curve's best-of-n for n < N
            for field in ("candidates", "candidate_scores", "candidate_finished"):
                output[field] = [row for part in decoded for row in getattr(part, field) or []]
        return output

    def inputs(self) -> dict[str, Any]:
        """The prompts and every model's weights (the tuned one made first if needed)."""
        cfg = self.config
        large: dict[str, Any] = (
            model_fingerprint(cfg.large)
            if backends.REGISTRY[cfg.backend].local
            else {"served": cfg.large, "base_url": cfg.api.base_url}
        )
        return {
            "prompts": prompts_digest(self.prompts),
            "large": large,
            "tuned": model_fingerprint(self.tuned_path()),
            "untuned": model_fingerprint(cfg.pair.untuned),
            "scorer": scorer_fingerprint(cfg.scorer),
        }

    def run(self) -> tuple[Run, dict[str, Any]]:
        with Run.open("search", self.config, self.runs_dir, self.inputs()) as run:
            return run, self._run(run)

    def _decoded(self, run: Run) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Every method's outputs, and the compute curve's, each a cached step."""
        cfg = self.config
        labels = [f"decode: {method_label(method, cfg)}" for method in self.methods]
        points = curve_cbs(cfg)
        curve_labels = [f"curve: decode {cbs_label(settings)}" for settings in points]
        run.plan([*labels, *curve_labels, f"gold reward {cfg.scorer.name}"])
        outputs: dict[str, dict[str, Any]] = {}
        for method, label in zip(self.methods, labels, strict=True):
            run.phase(label)
            outputs[method] = run.cached_json(
                f"decoded-{method}", functools.partial(self._decode_all, method)
            )
        if not outputs:
            raise W2SError("no method could run: " + "; ".join(self.skipped.values()))
        for name, output in outputs.items():
            export_generations(run.path, name, self.prompts, output["responses"])
        curve_outputs: dict[str, dict[str, Any]] = {}
        for settings, label in zip(points, curve_labels, strict=True):
            run.phase(label)
            step = f"decoded-cbs-{settings.width}x{settings.successors}x{settings.chunk_length}"
            curve_outputs[cbs_label(settings)] = run.cached_json(
                step, functools.partial(self._decode_all, "cbs", settings)
            )
        curve_outputs.update(curve_best_of_n(cfg, outputs.get("bon"), len(self.prompts)))
        return outputs, curve_outputs

    def _run(self, run: Run) -> dict[str, Any]:
        cfg = self.config
        outputs, curve_outputs = self._decoded(run)
        run.phase(f"gold reward {cfg.scorer.name}")
        scorer_key = f"gold-{cfg.scorer.name.replace(':', '_').replace('/', '_')}"
        rewards = run.cached_json(
            f"{scorer_key}-rewards", lambda: self.evaluation.scores_of(_responses(outputs))
        )
        curve_rewards = (
            run.cached_json(
                f"{scorer_key}-curve-rewards",
                lambda: self.evaluation.scores_of(_responses(curve_outputs)),
            )
            if curve_outputs
            else {}
        )
        table = self.evaluation.table(
            {**rewards, **curve_rewards},
            baseline="sample" if "sample" in rewards else None,
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        results = self._results(outputs, table)
        results.win_rates = self.evaluation.report_win_rates(
            run,
            f"{scorer_key}-win-rates",
            _responses(outputs),
            rewards,
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        if cfg.curve:
            results.curve = curve_points(cfg, outputs, curve_outputs, table, len(self.prompts))
        payload = to_json(results)
        run.write_results(
            payload,
            metric_records(results),
            self._examples(outputs, rewards),
            floor=PROMPTS,
            warnings=[f"search steers by it: {self.tune_warning}"] if self.tune_warning else [],
        )
        return payload

    def _results(self, outputs: dict[str, dict[str, Any]], table: dict[str, Any]) -> SearchResults:
        cfg = self.config
        prompts = len(self.prompts)
        return SearchResults(
            large=absolute(cfg.large),
            tuned=absolute(self.tuned_path()),
            untuned=absolute(cfg.pair.untuned),
            prompts=cfg.prompts,
            test_prompts=prompts,
            new_tokens=cfg.sampling.new_tokens,
            backend=cfg.backend,
            scorer=cfg.scorer.name,
            gold_scorer=scorer_description(cfg.scorer),
            methods={
                method: MethodOutcome(
                    label=method_label(method, cfg),  # type: ignore[arg-type]
                    reward=estimate(table["models"][method]),
                    reward_minus_sample=optional_estimate(table.get("difference", {}).get(method)),
                    sampled_tokens=output["sampled_tokens"],
                    tokens_per_prompt=output["sampled_tokens"] / prompts,
                    seconds=output["seconds"],
                    finished_fraction=float(np.mean(output["finished"])),
                )
                for method, output in outputs.items()
            },
            skipped=dict(self.skipped),
            startup_seconds={role: round(value, 3) for role, value in self.startup.items()},
            dtypes=self.dtypes(),
        )

    def _examples(
        self, outputs: dict[str, dict[str, Any]], rewards: dict[str, list[float]]
    ) -> Iterator[dict[str, Any]]:
        return (
            {
                "method": method,
                "prompt": prompt.text,
                "response": output["responses"][row],
                "pair_score": output["pair_scores"][row],
                "reward": rewards[method][row],
                "finished": output["finished"][row],
            }
            for method, output in outputs.items()
            for row, prompt in enumerate(self.prompts)
        )
