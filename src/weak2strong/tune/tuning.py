"""`w2s tune`: the tuned member of a small model pair, by DPO (TRL) or SFT, saved merged.

DPO prompts are IMDB review openings (the seed's controlled-sentiment setting). Its pairs
come from one of two sources:
- `reviews` (default): real continuations with human labels. Half the prompts open a
  target-class review (chosen: its own continuation, rejected: another class's review's),
  half open an other-class review (rejected: its own, chosen: a target-class review's), so
  fitting the prompt is no cue and only the label separates chosen from rejected.
- `sampled`: two sampled completions of the base model per prompt, ranked by a labeler
  (default VADER, not the gold reward, which would then score its own student).
On 256 prompts and one CPU epoch, `sampled`+VADER taught SmolLM2 nothing a search could
use (the tuned/untuned log-ratio of real reviews ranked their sentiment at AUROC 0.47);
so did SFT on positive reviews (0.47), which learns the genre rather than the sentiment.
SFT trains on the openings and the real continuations of the target class's reviews.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.data.prompts import (
    IMDB_PROMPT_POOL,
    imdb_prompt_pool,
    imdb_split,
    load_prompts,
)
from weak2strong.data.tasks import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.fileio import read_json
from weak2strong.models import load_causal_lm, resolve
from weak2strong.models.adapters import LoraSettings, lora_config
from weak2strong.models.generation import SamplingConfig, sample_completions
from weak2strong.models.loading import model_fingerprint
from weak2strong.report import ResultTable, format_interval, lines_with_intervals
from weak2strong.runs import Run
from weak2strong.runs.results import SCHEMA, SampleFloor, absolute, metric_record
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.classifier import ScorerConfig, load_scorer, scorer_fingerprint
from weak2strong.settings import setting
from weak2strong.tracking import training_curves
from weak2strong.tune.sft import SFTConfig, completion_log_probs, train_sft

METHODS = ("dpo", "sft")
PREFERENCE_SOURCES = ("reviews", "sampled")

# what training reports in results.json (the rest is the run's common layout)
TRAINING_KEYS = (
    "pairs",
    "sft_examples",
    "final_loss",
    "final_reward_accuracy",
    "final_reward_margin",
    "steps",
)


@dataclass
class TrainingSettings:
    epochs: int = setting(1, help="epochs over the pairs (examples)")
    batch_size: int = setting(
        8, help="pairs per optimiser step, across all processes (DPO: must divide by them)"
    )
    learning_rate: float = setting(5e-4, help="learning rate")
    max_length: int = setting(96, help="tokens per prompt + completion")
    beta: float = setting(0.1, help="dpo: strength of the KL anchor to the base model")


@dataclass
class TuneConfig:
    seed: int = setting(0, help="seed of the data and the training")
    method: str = setting("dpo", help="dpo (TRL) or sft")
    base: str = setting("smollm2-135m-instruct", help="the model to tune")
    prompts: str = setting("imdb", help="prompt set: imdb (review openings) or rtp")
    train_prompts: int = setting(256, help="training pairs (dpo) or examples (sft)")
    prompt_words: int = setting(8, help="words of a review that make its prompt")
    preferences: str = setting(
        "reviews",
        help="dpo pairs: reviews (human labels: a positive continuation over a negative one) "
        "or sampled (two samples ranked by the labeler)",
    )
    labeler: ScorerConfig = setting(
        help="dpo with sampled pairs: ranks the two completions of each prompt",
        factory=lambda: ScorerConfig(name="lexicon:vader"),
    )
    target_label: str = setting("positive", help="the label whose reviews are preferred")
    completion_words: int = setting(24, help="words of a review's continuation")
    eval_pairs: int = setting(
        64,
        help="held-out review pairs on which log π_tuned − log π_base (the score a search "
        "pair steers by) must prefer the target label's continuation",
    )
    sampling: SamplingConfig = setting(
        help="sampling for sampled pairs", factory=lambda: SamplingConfig(new_tokens=48)
    )
    lora: LoraSettings = setting(help="LoRA adapters (rank 0: every weight)", factory=LoraSettings)
    training: TrainingSettings = setting(help="the optimisation", factory=TrainingSettings)
    show_progress: bool = setting(True, help="progress bars", hash=False)


class Tune:
    def __init__(self, config: TuneConfig, runs_dir: str | Path = "runs") -> None:
        if config.method not in METHODS:
            raise W2SError(f"unknown tune method '{config.method}' (known: {', '.join(METHODS)})")
        if config.preferences not in PREFERENCE_SOURCES:
            raise W2SError(
                f"unknown preference source '{config.preferences}' "
                f"(known: {', '.join(PREFERENCE_SOURCES)})"
            )
        if config.train_prompts < 2:
            raise W2SError("train_prompts must be at least 2")
        if config.eval_pairs < 2:
            raise W2SError("eval_pairs must be at least 2")
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
        return {
            "base": model_fingerprint(cfg.base),
            "reviews": data.fingerprint() if data is not None else cfg.prompts,
            "review_pool": f"{IMDB_PROMPT_POOL} train reviews reserved for prompts",
            "labeler": scorer_fingerprint(cfg.labeler) if cfg.preferences == "sampled" else None,
        }

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
        elif self.config.method == "dpo":
            build = (
                self._review_pairs
                if self.config.preferences == "reviews"
                else self._preference_pairs
            )
            pairs = run.cached_json(f"preference-pairs-{self.config.preferences}", build)
            training = self._train_dpo(pairs, model_dir)
            summary = {"pairs": len(pairs["prompt"]), **training}
        else:
            data = run.cached_json("sft-examples", self._sft_examples)
            summary = {"sft_examples": len(data["prompt"]), **self._train_sft(data, model_dir)}
        results = {
            "method": self.config.method,
            "base": absolute(self.config.base),
            "model": str(model_dir.resolve()),
        }
        results.update(summary)
        run.phase("held-out evaluation")
        evaluation = self._evaluate(run, model_dir)
        results.update(evaluation)
        records = [
            metric_record("held-out preference accuracy", "tuned", evaluation["heldout_accuracy"]),
            metric_record("held-out reward margin", "tuned", evaluation["heldout_margin"]),
        ]
        warning = chance_warning(results)
        run.write_results(
            results,
            records,
            floor=SampleFloor("held-out pairs", 20),
            warnings=[warning] if warning else [],
        )
        return results

    def _evaluate(self, run: Run, model_dir: Path) -> dict[str, Any]:
        """Held-out preference accuracy of the implicit reward log π_tuned(y|x) − log π_base(y|x)."""
        cfg = self.config
        pairs = run.cached_json("eval-pairs", self._held_out_pairs)

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

    # ---- data

    def _preference_pairs(self) -> dict[str, list[str]]:
        cfg = self.config
        prompts = load_prompts(
            cfg.prompts, cfg.train_prompts, 1, seed=cfg.seed, prompt_words=cfg.prompt_words
        ).train
        model, tokenizer = load_causal_lm(cfg.base)
        doubled = [prompt for prompt in prompts for _ in range(2)]
        completions = sample_completions(
            model,
            tokenizer,
            doubled,
            cfg.sampling,
            seed=cfg.seed,
            description="preference candidates",
            show_progress=cfg.show_progress,
        )
        labeler = load_scorer(cfg.labeler, show_progress=cfg.show_progress)
        scores = labeler.score([p + c for p, c in zip(doubled, completions, strict=True)])
        scores = scores.reshape(len(prompts), 2)
        if not labeler.higher_is_better:
            scores = -scores
        pairs: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
        for row, prompt in enumerate(prompts):
            first, second = completions[2 * row], completions[2 * row + 1]
            if np.isclose(scores[row, 0], scores[row, 1]):
                continue  # a tie says nothing about the preference
            chosen, rejected = (
                (first, second) if scores[row, 0] > scores[row, 1] else (second, first)
            )
            pairs["prompt"].append(prompt)
            pairs["chosen"].append(chosen)
            pairs["rejected"].append(rejected)
        if len(pairs["prompt"]) < 2:
            raise W2SError("the labeler tied on almost every pair: no preferences to train on")
        return pairs

    def _reviews_by_class(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(opening, continuation) of shuffled target-class and other-class train reviews."""
        cfg = self.config
        data = imdb_split() if cfg.prompts == "imdb" else load_task(TaskConfig(name=cfg.prompts))
        if cfg.target_label not in data.label_names:
            raise W2SError(
                f"target_label '{cfg.target_label}' is not a label of {cfg.prompts} "
                f"({', '.join(data.label_names)})"
            )
        target = data.label_names.index(cfg.target_label)
        rng = np.random.default_rng(cfg.seed)
        end = cfg.prompt_words + cfg.completion_words
        split: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
        # IMDB: only the reviews reserved for prompts, never the gold scorer's training data
        pool = imdb_prompt_pool(data) if cfg.prompts == "imdb" else data.split("train")
        texts, labels = [e.text for e in pool], [e.label for e in pool]
        for index in rng.permutation(len(texts)):
            words = texts[int(index)].split()
            if len(words) < end:
                continue
            opening = " ".join(words[: cfg.prompt_words])
            continuation = " " + " ".join(words[cfg.prompt_words : end])
            split[0 if labels[int(index)] == target else 1].append((opening, continuation))
        return split

    def _sft_examples(self) -> dict[str, list[str]]:
        target, _ = self._reviews_by_class()
        chosen = target[: self.config.train_prompts]
        return {"prompt": [p for p, _ in chosen], "completion": [c for _, c in chosen]}

    def _review_pairs(self) -> dict[str, list[str]]:
        return self._pairs_from_reviews(self.config.train_prompts, start=0)

    def _held_out_pairs(self) -> dict[str, list[str]]:
        """Pairs from reviews that no training pair used (both methods train on fewer)."""
        return self._pairs_from_reviews(self.config.eval_pairs, start=self.config.train_prompts)

    def _pairs_from_reviews(self, count: int, start: int) -> dict[str, list[str]]:
        """`count` pairs from the shuffled reviews of each class, from position `start` on."""
        target, other = self._reviews_by_class()
        half = count // 2
        if min(len(target), len(other)) < start + 2 * half:
            raise W2SError(f"not enough reviews for {count} preference pairs")
        pairs: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
        for i in range(start, start + half):
            (opening, own), (_, foreign) = target[i], other[half + i]
            pairs["prompt"].append(opening)
            pairs["chosen"].append(own)
            pairs["rejected"].append(foreign)
            (opening, own), (_, foreign) = other[i], target[half + i]
            pairs["prompt"].append(opening)
            pairs["chosen"].append(foreign)
            pairs["rejected"].append(own)
        return pairs

    # ---- training

    def _train_dpo(self, pairs: dict[str, list[str]], model_dir: Path) -> dict[str, Any]:
        from datasets import Dataset
        from transformers.trainer_callback import PrinterCallback, ProgressCallback
        from trl import DPOConfig, DPOTrainer

        class ProgressWithoutLogs(ProgressCallback):
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
            ) -> None:
                return None

        cfg = self.config
        model, tokenizer = load_causal_lm(cfg.base)
        settings = cfg.training
        scratch = model_dir.with_name("trainer-scratch")
        arguments = DPOConfig(
            output_dir=str(scratch),
            beta=settings.beta,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size // distributed.num_processes(),
            learning_rate=settings.learning_rate,
            max_length=settings.max_length,
            seed=cfg.seed,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=not cfg.show_progress,
            use_cpu=not torch.cuda.is_available(),
            gradient_checkpointing=False,  # small models: recomputation costs more than it saves
            # every weight of a causal LM (or its LoRA adapters) reaches the loss
            ddp_find_unused_parameters=False,
        )
        peft_config = lora_config(cfg.lora, "CAUSAL_LM") if cfg.lora.rank > 0 else None
        trainer = DPOTrainer(
            model=model,
            args=arguments,
            train_dataset=Dataset.from_dict(pairs),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        # the loss curve goes to the trackers and results.json, not as raw dicts between bars
        trainer.remove_callback(PrinterCallback)
        if trainer.pop_callback(ProgressCallback) is not None:
            trainer.add_callback(ProgressWithoutLogs)
        trainer.train()
        logs = [entry for entry in trainer.state.log_history if "loss" in entry]
        curves = {"beta": settings.beta, "learning_rate": settings.learning_rate}
        with training_curves(f"{model_dir.parent.name}/dpo", curves) as log_values:
            for entry in logs:
                if log_values is None:
                    break
                numbers = {
                    f"train/{key}": value
                    for key, value in entry.items()
                    if isinstance(value, int | float) and key != "step"
                }
                log_values(numbers, int(entry["step"]))
        self._save_merged(trainer.model, tokenizer, model_dir)
        if distributed.is_main():
            shutil.rmtree(scratch, ignore_errors=True)
        return {
            "final_loss": logs[-1]["loss"] if logs else None,
            "final_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
            "final_reward_margin": logs[-1].get("rewards/margins") if logs else None,
            "steps": int(trainer.state.global_step),
            "curve": [
                {
                    "step": int(entry["step"]),
                    "loss": float(entry["loss"]),
                    "reward_accuracy": entry.get("rewards/accuracies"),
                    "reward_margin": entry.get("rewards/margins"),
                }
                for entry in logs
            ],
        }

    def _train_sft(self, data: dict[str, list[str]], model_dir: Path) -> dict[str, Any]:
        cfg = self.config
        model, tokenizer = load_causal_lm(cfg.base)
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
        self._save_merged(tuned, tokenizer, model_dir)
        return {}

    @staticmethod
    def _save_merged(model: Any, tokenizer: Any, model_dir: Path) -> None:
        """LoRA merged into the weights, saved as a plain checkpoint via a temp folder + rename.

        The main process saves; every process returns once the model is on disk, so the
        next step (a search, an extrapolation) can load it anywhere.
        """
        if distributed.is_main():
            if hasattr(model, "merge_and_unload"):
                model = model.merge_and_unload()
            model.eval()
            staging = model_dir.with_name(model_dir.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            shutil.rmtree(model_dir, ignore_errors=True)
            staging.rename(model_dir)
        distributed.barrier()


def chance_warning(results: dict[str, Any]) -> str | None:
    """Said when the tuned model ranks held-out pairs no better than chance: a search or ExPO
    steered by it steers by noise."""
    estimate = results.get("heldout_accuracy") or {}
    accuracy, low, high = estimate.get("value"), estimate.get("low"), estimate.get("high")
    if accuracy is None:
        return None
    if accuracy <= 0.5:
        return (
            f"the tuned model {results['model']} prefers the held-out chosen response in only "
            f"{accuracy:.0%} of pairs (chance: 50%): it has not learned the preference"
        )
    if low is not None and high is not None and low <= 0.5:
        return (
            f"the tuned model {results['model']} prefers the held-out chosen response in "
            f"{accuracy:.0%} of pairs [{low:.0%}, {high:.0%}]: not distinguishable from chance"
        )
    return None


def plot_tune(results: dict[str, Any], path: Path) -> Path | None:
    """The training curve: DPO loss and the batch's reward margin per optimiser step."""
    curve = results.get("curve") or []
    if not curve:
        return None
    steps = [point["step"] for point in curve]
    series = {
        "DPO loss": (steps, [p["loss"] for p in curve], [None] * len(curve), [None] * len(curve))
    }
    if all(point["reward_margin"] is not None for point in curve):
        margins = [float(p["reward_margin"]) for p in curve]
        series["reward margin (chosen − rejected, β-scaled log-ratio)"] = (
            steps,
            margins,
            [None] * len(curve),
            [None] * len(curve),
        )
    return lines_with_intervals(
        path,
        series,
        title=f"tuning {results['base']} by {results['method']}: training curve",
        xlabel="optimiser step",
        ylabel="per-batch value",
        reference_lines={"loss at the start, log 2": float(np.log(2))},
    )


def tune_tables(results: dict[str, Any]) -> list[ResultTable]:
    """What was tuned, how training ended, the held-out evaluation, and where the model is."""
    rows = [
        [key, f"{value:.4g}" if isinstance(value, float) else str(value)]
        for key, value in results.items()
        if key in (*TRAINING_KEYS, "heldout_pairs") and value is not None
    ]
    rows += [[record["metric"], format_interval(record)] for record in results["metrics"]]
    return [
        ResultTable(
            f"tuned {results['base']} by {results['method']}",
            ["result", "value"],
            rows,
            [f"model: {results['model']}"],
        )
    ]
