"""`w2s search`: decode held-out prompts with each method and score them with a gold reward."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompts import load_prompts
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest
from weak2strong.models import load_causal_lm, load_tokenizer, resolve
from weak2strong.models.generation import SamplingConfig
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run
from weak2strong.runs.results import PROMPTS, absolute
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.classifier import (
    ScorerConfig,
    check_scorer_name,
    load_scorer,
    scorer_description,
    scorer_fingerprint,
)
from weak2strong.search.api import ApiSampler, ApiSettings
from weak2strong.search.decoders import (
    CBSSettings,
    Decoded,
    best_of_first,
    best_of_n,
    check_tokenizers_share_vocabulary,
    chunk_beam_search,
    curve_cbs_settings,
    emulated_fine_tuning,
    sample,
)
from weak2strong.search.lm import LanguageModel, check_template
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.samplers import (
    BACKENDS,
    Sampler,
    TransformersSampler,
    VLLMSampler,
    VLLMSettings,
)
from weak2strong.search.summary import metric_records
from weak2strong.settings import setting
from weak2strong.tune import Tune, TuneConfig, chance_warning

METHODS = ("sample", "bon", "cbs", "eft")


@dataclass
class PairConfig:
    tuned: str = setting(
        "",
        help="the tuned small model; empty: w2s tune's default model (DPO towards positive "
        "reviews), trained on first use in its own run",
    )
    untuned: str = setting("smollm2-135m-instruct", help="the untuned small model")
    tuned_template: str = setting(
        "{prompt}", help="the tuned model's prompt: text with {prompt}, or chat"
    )
    untuned_template: str = setting(
        "{prompt}", help="the untuned model's prompt: text with {prompt}, or chat"
    )


@dataclass
class SearchConfig:
    # 2: every sampled sequence has its own seed from (prompt, step, beam, child); before,
    # one generator per prompt batch (texts depended on batching, vLLM repeated samples)
    RESULTS_VERSION: ClassVar[int] = 2

    seed: int = setting(0, help="seed of the prompts and of every sampled sequence")
    large: str = setting(
        "qwen2.5-coder-0.5b-instruct",
        help="the large model to steer: name/folder/hub id; with backend=api, the served name",
    )
    large_template: str = setting(
        "{prompt}", help="the large model's prompt: text with {prompt}, or chat"
    )
    pair: PairConfig = setting(help="the small tuned/untuned pair", factory=PairConfig)
    tune: TuneConfig = setting(
        help="how the tuned model is made when pair.tuned is empty (its seed is the search's)",
        factory=TuneConfig,
        hash="when-changed",
    )
    methods: list[str] = setting(
        help="sample, bon, cbs, eft, or all", factory=lambda: ["sample", "bon", "cbs"]
    )
    prompts: str = setting("imdb", help="held-out prompt set: imdb or rtp")
    test_prompts: int = setting(50, help="prompts decoded by every method")
    prompt_words: int = setting(8, help="words of each review that make an imdb prompt")
    sampling: SamplingConfig = setting(
        help="the large model's sampling; batch_size: prompts decoded together",
        factory=lambda: SamplingConfig(new_tokens=50, batch_size=2),
    )
    bon_n: int = setting(16, help="N of best-of-N")
    curve: list[int] = setting(
        help="N = W·K of a reward-against-compute curve: best-of-N (from the bon run's "
        "candidates) and CBS(W, N/W, L) at each N, e.g. [1,2,4,8,16]",
        factory=list,
        hash="when-changed",
    )
    cbs: CBSSettings = setting(help="chunk-level beam search", factory=CBSSettings)
    eft_beta: float = setting(1.0, help="EFT: base logits + β·(tuned − untuned)")
    backend: str = setting(
        "transformers", help="the large model's backend: transformers, vllm, or api (a server)"
    )
    vllm: VLLMSettings = setting(help="the vllm backend's engine", factory=VLLMSettings)
    api: ApiSettings = setting(help="the api backend's server", factory=ApiSettings)
    scorer: ScorerConfig = setting(help="the gold reward", factory=ScorerConfig)
    bootstrap_samples: int = setting(1000, help="resamples of the prompts for the intervals")
    show_progress: bool = setting(True, help="progress bars", hash=False)


def cbs_label(settings: CBSSettings) -> str:
    return f"cbs({settings.width},{settings.successors},{settings.chunk_length or '∞'})"


def method_label(method: str, config: SearchConfig) -> str:
    if method == "bon":
        return f"bon-{config.bon_n}"
    if method == "cbs":
        return cbs_label(config.cbs)
    if method == "eft":
        return f"eft(β={config.eft_beta:g})"
    return method


class Search:
    def __init__(self, config: SearchConfig, runs_dir: str | Path = "runs") -> None:
        methods = list(METHODS) if "all" in config.methods else list(config.methods)
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise W2SError(
                f"unknown search method '{unknown[0] if unknown else ''}' "
                f"(known: {', '.join(METHODS)}, all)"
            )
        if config.backend not in BACKENDS:
            raise W2SError(f"unknown backend '{config.backend}' (known: {', '.join(BACKENDS)})")
        self.skipped: dict[str, str] = {}
        if config.backend != "transformers" and "eft" in methods:
            reason = (
                f"EFT mixes the large model's logits at every token; the {config.backend} "
                "backend only samples text: use --backend transformers"
            )
            if "all" not in config.methods:
                raise W2SError(reason)
            methods.remove("eft")
            self.skipped["eft"] = reason
        config.cbs.validate()
        config.sampling.validate()
        check_scorer_name(config.scorer.name)
        if config.bon_n < 1:
            raise W2SError("best-of-N needs N ≥ 1")
        if config.curve:
            if min(config.curve) < 1 or max(config.curve) > config.bon_n:
                raise W2SError(
                    f"curve points must lie in 1..bon_n ({config.bon_n}): best-of-N's points "
                    f"are the best of the bon run's first N candidates (got {config.curve})"
                )
            if not {"bon", "cbs"} <= set(methods):
                raise W2SError("a compute curve needs the bon and cbs methods (--method all)")
        for who, template in (
            ("large", config.large_template),
            ("pair.tuned", config.pair.tuned_template),
            ("pair.untuned", config.pair.untuned_template),
        ):
            check_template(template, who)
        config.vllm.validate()
        if config.backend == "api":
            # a black box: nothing to resolve locally, but the server must answer now
            self._models: dict[str, Any] = {
                "api": ApiSampler(config.large, config.large_template, config.sampling, config.api)
            }
        else:
            resolve(config.large)
            self._models = {}
        resolve(config.pair.untuned)
        if config.pair.tuned:
            resolve(config.pair.tuned)
        # tokenizers only: a wrong pairing fails before any model loads or folder exists
        mismatch = self._eft_impossible(config) if "eft" in methods else None
        if mismatch is not None:
            if "all" not in config.methods:
                raise W2SError(mismatch)
            methods.remove("eft")
            self.skipped["eft"] = mismatch
        self.methods = methods
        self.config = config
        self.runs_dir = runs_dir
        self.prompts = load_prompts(
            config.prompts,
            1,
            config.test_prompts,
            seed=config.seed,
            prompt_words=config.prompt_words,
        ).test
        self.startup: dict[str, float] = {}  # seconds to load each model / start each engine
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
            _, results = Tune(tune_config, self.runs_dir).run()
            self._tuned_path = str(results["model"])
            self.tune_warning = chance_warning(results)
        return self._tuned_path

    def _lm(self, role: str) -> LanguageModel:
        if role not in self._models:
            cfg = self.config
            name, template = {
                "large": (cfg.large, cfg.large_template),
                "tuned": (self.tuned_path(), cfg.pair.tuned_template),
                "untuned": (cfg.pair.untuned, cfg.pair.untuned_template),
            }[role]
            started = time.perf_counter()
            model, tokenizer = load_causal_lm(name)
            self._models[role] = LanguageModel(name, model, tokenizer, template)
            self.startup[role] = time.perf_counter() - started
        lm: LanguageModel = self._models[role]
        return lm

    def pair(self) -> ModelPair:
        return ModelPair(self._lm("tuned"), self._lm("untuned"))

    def sampler(self) -> Sampler:
        """The large model's sampler; an engine or a client is made once and reused."""
        cfg = self.config
        if cfg.backend == "transformers":
            return TransformersSampler(self._lm("large"), cfg.sampling)
        if cfg.backend not in self._models:  # vllm; the api client exists from the start
            started = time.perf_counter()
            self._models["vllm"] = VLLMSampler(
                cfg.large, cfg.large_template, cfg.sampling, cfg.vllm
            )
            self.startup["large (vllm engine)"] = time.perf_counter() - started
        engine: Sampler = self._models[cfg.backend]
        return engine

    def dtypes(self) -> dict[str, str]:
        """What each loaded model computes in (vLLM on CPU: bfloat16; transformers: float32)."""
        found = {
            role: str(lm.model.dtype).removeprefix("torch.")
            for role, lm in self._models.items()
            if isinstance(lm, LanguageModel)
        }
        if self.config.backend in self._models:  # vllm engine or api client
            found["large"] = self._models[self.config.backend].dtype
        return found

    # ---- decoding

    def decode(
        self,
        method: str,
        prompts: list[str],
        prompt_ids: Sequence[int] | None = None,
        cbs: CBSSettings | None = None,
    ) -> Decoded:
        """One batch of prompts; `prompt_ids` (their indices in the run) pick their seeds;
        `cbs` replaces the configured CBS settings (a curve point)."""
        cfg = self.config
        new_tokens, seed = cfg.sampling.new_tokens, cfg.seed
        if method == "sample":
            return sample(self.sampler(), prompts, new_tokens, seed, prompt_ids)
        if method == "bon":
            scorer = PairScorer(self.pair())
            return best_of_n(
                self.sampler(), scorer, prompts, cfg.bon_n, new_tokens, seed, prompt_ids
            )
        if method == "cbs":
            scorer = PairScorer(self.pair())
            return chunk_beam_search(
                self.sampler(), scorer, prompts, cbs or cfg.cbs, new_tokens, seed, prompt_ids
            )
        return emulated_fine_tuning(
            self._lm("large"),
            self.pair(),
            prompts,
            cfg.eft_beta,
            cfg.sampling,
            new_tokens,
            seed,
            prompt_ids,
        )

    def _decode_all(self, method: str, cbs: CBSSettings | None = None) -> dict[str, Any]:
        """Every prompt decoded, batches shared between processes. Models load (and an
        engine starts) before the clock starts: `seconds` is decoding alone."""
        self.sampler()
        if method != "sample":
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
            {"served": cfg.large, "base_url": cfg.api.base_url}
            if cfg.backend == "api"
            else model_fingerprint(cfg.large)
        )
        return {
            "prompts": key_digest(self.prompts),
            "large": large,
            "tuned": model_fingerprint(self.tuned_path()),
            "untuned": model_fingerprint(cfg.pair.untuned),
            "scorer": scorer_fingerprint(cfg.scorer),
        }

    def run(self) -> tuple[Run, dict[str, Any]]:
        with Run.open("search", self.config, self.runs_dir, self.inputs()) as run:
            return run, self._run(run)

    @staticmethod
    def _eft_impossible(config: SearchConfig) -> str | None:
        """Why EFT cannot mix these models' logits (None: it can)."""
        tuned = config.pair.tuned or config.tune.base  # w2s tune keeps its base's tokenizer
        names = {"large": config.large, "tuned": tuned, "untuned": config.pair.untuned}
        try:
            check_tokenizers_share_vocabulary(
                {name: load_tokenizer(name) for name in names.values()}, config.large
            )
        except W2SError as error:
            return str(error)
        return None

    def _run(self, run: Run) -> dict[str, Any]:
        cfg = self.config
        outputs: dict[str, dict[str, Any]] = {}
        skipped = dict(self.skipped)
        labels = [f"decode: {method_label(method, cfg)}" for method in self.methods]
        curve_cbs = self.curve_cbs()
        curve_labels = [f"curve: decode {cbs_label(settings)}" for settings in curve_cbs]
        run.plan([*labels, *curve_labels, f"gold reward {cfg.scorer.name}"])
        for method, label in zip(self.methods, labels, strict=True):
            run.phase(label)
            outputs[method] = run.cached_json(
                f"decoded-{method}", functools.partial(self._decode_all, method)
            )
        if not outputs:
            raise W2SError("no method could run: " + "; ".join(skipped.values()))
        curve_outputs: dict[str, dict[str, Any]] = {}
        for settings, label in zip(curve_cbs, curve_labels, strict=True):
            run.phase(label)
            step = f"decoded-cbs-{settings.width}x{settings.successors}x{settings.chunk_length}"
            curve_outputs[cbs_label(settings)] = run.cached_json(
                step, functools.partial(self._decode_all, "cbs", settings)
            )
        curve_outputs.update(self.curve_best_of_n(outputs.get("bon")))
        scorer_key = f"gold-{cfg.scorer.name.replace(':', '_').replace('/', '_')}"
        run.phase(f"gold reward {cfg.scorer.name}")
        rewards = run.cached_json(
            f"{scorer_key}-rewards",
            lambda: self._gold_rewards(outputs),
        )
        curve_rewards = (
            run.cached_json(
                f"{scorer_key}-curve-rewards", lambda: self._gold_rewards(curve_outputs)
            )
            if curve_outputs
            else {}
        )
        baseline = "sample" if "sample" in rewards else None
        table = paired_bootstrap_means(
            {m: np.asarray(v) for m, v in {**rewards, **curve_rewards}.items()},
            baseline=baseline,
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        results: dict[str, Any] = {
            "large": absolute(cfg.large),
            "tuned": absolute(self.tuned_path()),
            "untuned": absolute(cfg.pair.untuned),
            "prompts": cfg.prompts,
            "test_prompts": len(self.prompts),
            "new_tokens": cfg.sampling.new_tokens,
            "backend": cfg.backend,
            "scorer": cfg.scorer.name,
            "gold_scorer": scorer_description(cfg.scorer),
            "methods": {},
            "skipped": skipped,
            # of this invocation (cached steps loaded nothing): model loads, engine start
            "startup_seconds": {role: round(value, 3) for role, value in self.startup.items()},
            "dtypes": self.dtypes(),
        }
        for method, output in outputs.items():
            results["methods"][method] = {
                "label": method_label(method, cfg),
                "reward": table["models"][method],
                "reward_minus_sample": table.get("difference", {}).get(method),
                "sampled_tokens": output["sampled_tokens"],
                "tokens_per_prompt": output["sampled_tokens"] / len(self.prompts),
                "seconds": output["seconds"],
                "finished_fraction": float(np.mean(output["finished"])),
            }
        if cfg.curve:
            results["curve"] = self.curve_points(outputs, curve_outputs, table)
        examples = (
            {
                "method": method,
                "prompt": prompt,
                "response": output["responses"][row],
                "pair_score": output["pair_scores"][row],
                "reward": rewards[method][row],
                "finished": output["finished"][row],
            }
            for method, output in outputs.items()
            for row, prompt in enumerate(self.prompts)
        )
        run.write_results(
            results,
            metric_records(results),
            examples,
            floor=PROMPTS,
            warnings=[f"search steers by it: {self.tune_warning}"] if self.tune_warning else [],
        )
        return results

    # ---- the reward-against-compute curve

    def curve_cbs(self) -> list[CBSSettings]:
        """CBS settings of the curve's points, except those the cbs method itself runs."""
        chunk = self.config.cbs.chunk_length
        points = [curve_cbs_settings(n, chunk) for n in sorted(set(self.config.curve))]
        return [settings for settings in points if settings != self.config.cbs]

    def curve_best_of_n(self, bon: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """Best-of-n for each curve n below bon_n, picked from the bon run's candidates.

        Its tokens are n × the mean candidate length of that run (the candidates are the same).
        """
        if bon is None:
            return {}
        per_candidate = bon["sampled_tokens"] / (len(self.prompts) * self.config.bon_n)
        points = {}
        for n in sorted({n for n in self.config.curve if n != self.config.bon_n}):
            chosen = best_of_first(bon["candidate_scores"], n)
            points[f"bon-{n}"] = {
                "responses": [c[i] for c, i in zip(bon["candidates"], chosen, strict=True)],
                "finished": [f[i] for f, i in zip(bon["candidate_finished"], chosen, strict=True)],
                "sampled_tokens": per_candidate * n * len(self.prompts),
                "seconds": None,
            }
        return points

    def curve_points(
        self,
        outputs: dict[str, dict[str, Any]],
        curve_outputs: dict[str, dict[str, Any]],
        table: dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One entry per (decoder, N): mean reward, reward − sample, tokens, seconds."""
        cfg = self.config
        points = []
        for n in sorted(set(cfg.curve)):
            cbs = curve_cbs_settings(n, cfg.cbs.chunk_length)
            # a point the bon or cbs method ran itself is found under that method's name
            for decoder, label, key in (
                ("bon", f"bon-{n}", "bon" if n == cfg.bon_n else f"bon-{n}"),
                ("cbs", cbs_label(cbs), "cbs" if cbs == cfg.cbs else cbs_label(cbs)),
            ):
                output = outputs[key] if key in outputs else curve_outputs[key]
                points.append(
                    {
                        "method": decoder,
                        "n": n,
                        "label": label,
                        "reward": table["models"][key],
                        "reward_minus_sample": table.get("difference", {}).get(key),
                        "tokens_per_prompt": output["sampled_tokens"] / len(self.prompts),
                        "seconds": output["seconds"],
                    }
                )
        return points

    def _gold_rewards(self, outputs: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
        scorer = load_scorer(self.config.scorer, show_progress=self.config.show_progress)
        if not scorer.higher_is_better:
            raise W2SError(f"scorer '{scorer.name}' is lower-is-better; search maximises a reward")
        return {
            method: scorer.score(
                [p + r for p, r in zip(self.prompts, output["responses"], strict=True)]
            ).tolist()
            for method, output in outputs.items()
        }
