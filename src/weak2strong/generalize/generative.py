"""Generative weak-to-strong: a weak LM's completions become a strong LM's SFT targets.

Only completion tokens are supervised: prompt and padding positions get label -100, found
from token counts and the attention mask, never from token ids (pad may equal EOS, and id 0
is a real token in some vocabularies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from weak2strong.data.prompts import load_prompts
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm, resolve
from weak2strong.models.adapters import LoraSettings, with_lora
from weak2strong.models.generation import SamplingConfig, sample_completions
from weak2strong.runs import Run
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.classifier import ClassifierScorer, ScorerConfig, scorer_spec

IGNORE_INDEX = -100


def build_sft_batch(
    tokenizer: Any, prompts: Sequence[str], completions: Sequence[str], max_length: int
) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask` and `labels` for prompt+completion pairs.

    The completion is followed by EOS so the student learns to stop; when a pair is too
    long the completion is cut first, then the prompt from the left.
    """
    if len(prompts) != len(completions):
        raise ValueError("prompts and completions differ in length")
    rows: list[tuple[list[int], int]] = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + eos
        room = max_length - len(prompt_ids)
        if room < 1:
            prompt_ids = prompt_ids[-(max_length - 1) :]
            room = 1
        completion_ids = completion_ids[:room]
        rows.append((prompt_ids + completion_ids, len(prompt_ids)))
    width = max(len(ids) for ids, _ in rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# ---------------------------------------------------------------- configuration

DEFAULT_INSTRUCTIONS = {
    "sentiment": "Here is a glowing, enthusiastic movie review.\n\n",
    "toxicity": "Here is a polite, respectful and kind piece of writing.\n\n",
}


@dataclass
class SFTConfig:
    lora: LoraSettings = field(default_factory=LoraSettings)
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    max_length: int = 96


@dataclass
class GenerativeConfig:
    """Generative weak-to-strong: weak completions as SFT targets for a strong LM.

    weak = the weak LM steered by `weak_instruction` (its attempt at the behaviour);
    w2s = the strong LM fine-tuned on the weak completions (without the instruction);
    ceiling = the strong LM fine-tuned on its own best-of-`ceiling_candidates` completions
    under the gold scorer; strong-base = the strong LM untouched. All generate on held-out
    prompts, scored by the gold scorer.
    """

    seed: int = 0
    prompts: str = "imdb"
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    weak: str = "smollm2-135m-instruct"
    strong: str = "qwen2.5-0.5b-instruct"
    weak_instruction: str | None = None  # default per scorer, see DEFAULT_INSTRUCTIONS
    train_prompts: int = 64
    test_prompts: int = 48
    prompt_words: int = 8
    ceiling_candidates: int = 4
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    bootstrap_samples: int = 1000
    show_progress: bool = field(default=True, metadata={"hash": False})


# ---------------------------------------------------------------- training


def train_sft(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    config: SFTConfig,
    seed: int,
) -> Any:
    """LoRA (or, with lora.rank=0, full) supervised fine-tuning on completion tokens only."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, TensorDataset

    model = with_lora(model, config.lora, task_type="CAUSAL_LM")
    accelerator = Accelerator()
    torch.manual_seed(seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate)
    loader: DataLoader[tuple[torch.Tensor, ...]] = DataLoader(
        TensorDataset(torch.arange(len(prompts))),
        batch_size=config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model, optimiser, loader = accelerator.prepare(model, optimiser, loader)
    model.train()
    for _ in range(config.epochs):
        for (indices,) in loader:
            rows = [int(i) for i in indices]
            batch = build_sft_batch(
                tokenizer,
                [prompts[i] for i in rows],
                [completions[i] for i in rows],
                config.max_length,
            )
            loss = model(**{key: value.to(accelerator.device) for key, value in batch.items()}).loss
            optimiser.zero_grad()
            accelerator.backward(loss)
            optimiser.step()
    model = accelerator.unwrap_model(model)
    model.eval()
    return model


# ---------------------------------------------------------------- the protocol


class GenerativeGeneralize:
    def __init__(self, config: GenerativeConfig, runs_dir: str = "runs") -> None:
        self.config = config
        self.higher_is_better = scorer_spec(config.scorer.name).higher_is_better
        if config.ceiling_candidates < 1:
            raise W2SError("ceiling_candidates must be at least 1")
        self.prompts = load_prompts(
            config.prompts,
            config.train_prompts,
            config.test_prompts,
            seed=config.seed,
            prompt_words=config.prompt_words,
        )
        resolve(config.weak)
        resolve(config.strong)
        self.instruction = (
            config.weak_instruction
            if config.weak_instruction is not None
            else DEFAULT_INSTRUCTIONS[config.scorer.name]
        )
        self.runs_dir = runs_dir
        self._scorer: ClassifierScorer | None = None
        self._pretrained: dict[str, tuple[Any, Any]] = {}

    @property
    def scorer(self) -> ClassifierScorer:
        if self._scorer is None:
            self._scorer = ClassifierScorer(
                self.config.scorer, seed=self.config.seed, show_progress=self.config.show_progress
            )
        return self._scorer

    def _sample(
        self,
        model_name: str,
        prompts: list[str],
        tag: str,
        model: Any = None,
        tokenizer: Any = None,
    ) -> list[str]:
        if model is None:
            # Models only sampled from are loaded once; fine-tuning loads its own fresh copy,
            # because peft injects adapters into the model it wraps.
            if model_name not in self._pretrained:
                self._pretrained[model_name] = load_causal_lm(model_name)
            model, tokenizer = self._pretrained[model_name]
        return sample_completions(
            model,
            tokenizer,
            prompts,
            self.config.sampling,
            seed=self.config.seed,
            description=tag,
            show_progress=self.config.show_progress,
        )

    def _fine_tuned_completions(self, targets: list[str], tag: str) -> list[str]:
        model, tokenizer = load_causal_lm(self.config.strong)
        tuned = train_sft(
            model, tokenizer, self.prompts.train, targets, self.config.sft, self.config.seed
        )
        return self._sample(self.config.strong, self.prompts.test, tag, tuned, tokenizer)

    def _best_of_candidates(self) -> list[str]:
        k = self.config.ceiling_candidates
        repeated = [prompt for prompt in self.prompts.train for _ in range(k)]
        candidates = self._sample(self.config.strong, repeated, "ceiling candidates")
        scores = self.scorer.score(candidates).reshape(len(self.prompts.train), k)
        best = scores.argmax(1) if self.scorer.higher_is_better else scores.argmin(1)
        return [candidates[row * k + int(column)] for row, column in enumerate(best)]

    def run(self) -> tuple[Run, dict[str, Any]]:
        run = Run.open("generalize-generative", self.config, self.runs_dir)
        try:
            return run, self._run(run)
        finally:
            run.close()

    def _run(self, run: Run) -> dict[str, Any]:
        cfg, prompts = self.config, self.prompts
        weak_train = run.cached_json(
            "weak-train-completions",
            lambda: self._sample(
                cfg.weak, [self.instruction + p for p in prompts.train], "weak (train prompts)"
            ),
        )
        outputs = {
            "weak": run.cached_json(
                "weak-test-completions",
                lambda: self._sample(
                    cfg.weak, [self.instruction + p for p in prompts.test], "weak (test prompts)"
                ),
            ),
            "strong-base": run.cached_json(
                "strong-base-test-completions",
                lambda: self._sample(cfg.strong, prompts.test, "strong base"),
            ),
            "w2s": run.cached_json(
                "w2s-test-completions",
                lambda: self._fine_tuned_completions(weak_train, "w2s (test prompts)"),
            ),
        }
        ceiling_train = run.cached_json("ceiling-train-completions", self._best_of_candidates)
        outputs["ceiling"] = run.cached_json(
            "ceiling-test-completions",
            lambda: self._fine_tuned_completions(ceiling_train, "ceiling (test prompts)"),
        )
        scores = run.cached_json(
            "gold-scores",
            lambda: {name: self.scorer.score(texts).tolist() for name, texts in outputs.items()},
        )
        higher = self.higher_is_better
        results = {
            "mode": "generative",
            "prompts": cfg.prompts,
            "scorer": cfg.scorer.name,
            "scorer_higher_is_better": higher,
            "weak": cfg.weak,
            "strong": cfg.strong,
            "weak_instruction": self.instruction,
            "sizes": {"train_prompts": len(prompts.train), "test_prompts": len(prompts.test)},
            "mean_score": paired_bootstrap_means(
                {name: np.asarray(values) for name, values in scores.items()},
                weak="weak",
                ceiling="ceiling",
                higher_is_better=higher,
                samples=cfg.bootstrap_samples,
                seed=cfg.seed,
            ),
            "examples": {
                name: [
                    {"prompt": p, "completion": c}
                    for p, c in zip(prompts.test[:3], texts[:3], strict=False)
                ]
                for name, texts in outputs.items()
            },
        }
        run.write_results(results)
        return results
