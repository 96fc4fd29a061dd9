"""`w2s tune`: the tuned member of a small model pair, by DPO (TRL) or SFT, saved merged.

DPO prompts are IMDB review openings by default (the seed's controlled-sentiment setting).
Its pairs come from one of four sources:
- `reviews` (default): real continuations with human labels. Half the prompts open a
  target-class review (chosen: its own continuation, rejected: another class's review's),
  half open an other-class review (rejected: its own, chosen: a target-class review's), so
  fitting the prompt is no cue and only the label separates chosen from rejected.
- `sampled`: two sampled completions of the base model per prompt, ranked by a labeler
  (default VADER, not the gold reward, which would then score its own student).
- `file`: prompt, chosen, rejected from a file or dataset.
- `teacher`: a stronger model's answer to each prompt chosen over the base model's own.
On 256 prompts and one CPU epoch, `sampled`+VADER taught SmolLM2 nothing a search could
use (the tuned/untuned log-ratio of real reviews ranked their sentiment at AUROC 0.47);
so did SFT on positive reviews (0.47), which learns the genre rather than the sentiment.
SFT trains on the openings and the real continuations of the target class's reviews.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompts import IMDB_PROMPT_POOL, PROMPT_SETS, imdb_split, prompts_digest
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest, read_json
from weak2strong.models import load_causal_lm, resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run
from weak2strong.runs.results import SCHEMA, SampleFloor, absolute, metric_record
from weak2strong.runs.typed import from_json, to_json
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.scorers import scorer_fingerprint
from weak2strong.settings import check_settings
from weak2strong.tune.config import TuneConfig
from weak2strong.tune.dpo import train_dpo
from weak2strong.tune.pairs import (
    PAIR_SOURCES,
    held_out_pairs,
    review_filter_lexicon,
    sampled_prompts,
    sft_examples,
    split_preference_data,
    teacher_prompts,
)
from weak2strong.tune.results import TuneResults
from weak2strong.tune.saving import save_merged
from weak2strong.tune.sft import SFTConfig, completion_log_probs, train_sft
from weak2strong.tune.summary import TRAINING_KEYS, chance_warning


def _dpo(cfg: TuneConfig, run: Run, model_dir: Path) -> dict[str, Any]:
    pairs = run.cached_json(
        f"preference-pairs-{cfg.preferences}", lambda: PAIR_SOURCES[cfg.preferences](cfg)
    )
    return {"pairs": len(pairs["prompt"]), **train_dpo(cfg, pairs, model_dir)}


def _sft(cfg: TuneConfig, run: Run, model_dir: Path) -> dict[str, Any]:
    data = run.cached_json("sft-examples", lambda: sft_examples(cfg))
    model, tokenizer = load_causal_lm(cfg.base, training=True)
    training = cfg.training
    settings = SFTConfig(
        lora=cfg.lora,
        epochs=training.epochs,
        batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        max_length=training.max_length,
    )
    tuned = train_sft(
        model,
        tokenizer,
        data["prompt"],
        data["completion"],
        settings,
        cfg.seed,
        curves_name=f"{model_dir.parent.name}/sft",
    )
    save_merged(tuned, tokenizer, model_dir)
    return {"sft_examples": len(data["prompt"])}


# how the model is tuned, by `method`: the training summary for results.json
TRAINERS: dict[str, Callable[[TuneConfig, Run, Path], dict[str, Any]]] = {
    "dpo": _dpo,
    "sft": _sft,
}


def default_tuned_model(config: TuneConfig, runs_dir: str | Path) -> tuple[str, str | None]:
    """The tuned model a search or an ExPO uses when given none: `w2s tune`'s run for these
    settings (trained once, then cached), and the warning to repeat if it is at chance."""
    _, payload = Tune(config, runs_dir).run()
    results = from_json(TuneResults, payload)
    return results.model, chance_warning(results)


class Tune:
    def __init__(self, config: TuneConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)  # a config built in Python, as one loaded from YAML
        if config.train_prompts < 2:
            raise W2SError("train_prompts must be at least 2")
        if config.eval_pairs < 2:
            raise W2SError("eval_pairs must be at least 2")
        if config.review_filter:
            review_filter_lexicon(config)  # a bad name stops here, before any run folder
        processes = distributed.num_processes()
        if config.method == "dpo" and config.training.batch_size % processes:
            # TRL takes a per-device batch; the global batch must split evenly to stay the same
            raise W2SError(
                f"training.batch_size {config.training.batch_size} is the global batch and "
                f"must be divisible by the {processes} processes"
            )
        resolve(config.base)
        self.config = config
        self.runs_dir = runs_dir

    def inputs(self) -> dict[str, Any]:
        cfg = self.config
        data = imdb_split() if cfg.prompts == "imdb" else None
        inputs: dict[str, Any] = {
            "base": model_fingerprint(cfg.base),
            "reviews": data.fingerprint() if data is not None else cfg.prompts,
            "review_pool": f"{IMDB_PROMPT_POOL} train reviews reserved for prompts",
            "labeler": scorer_fingerprint(cfg.labeler) if cfg.preferences == "sampled" else None,
        }
        if cfg.preferences == "sampled" and cfg.prompts not in PROMPT_SETS:
            inputs["prompts"] = prompts_digest(sampled_prompts(cfg))  # a file's content
        if cfg.preferences == "teacher":
            inputs["teacher"] = model_fingerprint(cfg.teacher)
            if cfg.prompts not in PROMPT_SETS:
                inputs["prompts"] = prompts_digest([p for s in teacher_prompts(cfg) for p in s])
        if cfg.preferences == "file":
            train, held_out = split_preference_data(cfg)
            inputs["preference_pairs"] = key_digest(
                [[pair.prompt.key(), pair.chosen, pair.rejected] for pair in train + held_out]
            )
        return inputs

    def run(self) -> tuple[Run, dict[str, Any]]:
        with Run.open("tune", self.config, self.runs_dir, self.inputs()) as run:
            run.note_batch(self.config.method, self.config.training.batch_size)
            return run, self._run(run)

    def _run(self, run: Run) -> dict[str, Any]:
        model_dir = run.path / "model"
        results_file = run.path / "results.json"
        cached = distributed.main_decides(
            lambda: (
                read_json(results_file) if results_file.exists() and model_dir.is_dir() else None
            )
        )
        if cached is not None and cached.get("schema") == SCHEMA:
            run.log.info("tuned model: cached")
            return cached
        run.plan(["training" if cached is None else "model (cached)", "held-out evaluation"])
        run.phase("training" if cached is None else "model (cached)")
        if cached is not None:  # results.json of an older layout: the model stands
            run.log.info("tuned model: cached (results.json rewritten in the current layout)")
            summary = {key: value for key, value in cached.items() if key in TRAINING_KEYS}
        else:
            summary = TRAINERS[self.config.method](self.config, run, model_dir)
        run.phase("held-out evaluation")
        results = from_json(
            TuneResults,
            {
                "method": self.config.method,
                "base": absolute(self.config.base),
                "model": str(model_dir.resolve()),
                **summary,
                **self._evaluate(run, model_dir),
            },
        )
        records = [
            metric_record(
                "held-out preference accuracy", "tuned", to_json(results.heldout_accuracy)
            ),
            metric_record("held-out reward margin", "tuned", to_json(results.heldout_margin)),
        ]
        warning = chance_warning(results)
        payload = to_json(results)
        run.write_results(
            payload,
            records,
            floor=SampleFloor("held-out pairs", 20),
            warnings=[warning] if warning else [],
        )
        return payload

    def _evaluate(self, run: Run, model_dir: Path) -> dict[str, Any]:
        """Held-out preference accuracy of the implicit reward log π_tuned(y|x) − log π_base(y|x)."""
        cfg = self.config
        pairs = run.cached_json("eval-pairs", lambda: held_out_pairs(cfg))

        def margins() -> dict[str, list[float]]:
            rewards: dict[str, np.ndarray] = {}
            for side in ("chosen", "rejected"):
                rewards[side] = np.zeros(len(pairs["prompt"]))
            for name, sign in ((str(model_dir), 1.0), (cfg.base, -1.0)):
                model, tokenizer = load_causal_lm(name)
                for side in ("chosen", "rejected"):
                    rewards[side] += sign * completion_log_probs(
                        model,
                        tokenizer,
                        pairs["prompt"],
                        pairs[side],
                        max_length=cfg.training.max_length,
                        description=f"held-out {side} ({'tuned' if sign > 0 else 'base'})",
                    )
            return {"margin": (rewards["chosen"] - rewards["rejected"]).tolist()}

        margin = np.asarray(run.cached_json("eval-margins", margins)["margin"])
        table = paired_bootstrap_means(
            {"accuracy": (margin > 0).astype(np.float64), "margin": margin}, seed=cfg.seed
        )["models"]
        return {
            "heldout_pairs": len(margin),
            "heldout_accuracy": table["accuracy"],
            "heldout_margin": table["margin"],
        }
