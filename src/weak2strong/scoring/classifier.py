"""The built-in gold scorers, `sentiment` and `toxicity`: a frozen encoder plus a logistic
head trained once on a task's gold labels.

Sentiment (IMDB) gives log p(positive) − log p(negative), the reward of the seed's
controlled-sentiment experiments; toxicity gives p(toxic). Heads are cached in the
weak2strong cache under a key of task data, encoder weights and settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.data import TaskConfig, load_task
from weak2strong.data.base import cap_per_split
from weak2strong.data.prompts import reserved_for_prompts
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest, read_json, write_json, write_tensors
from weak2strong.models.features import FeatureConfig, extract_features, load_feature_backbone
from weak2strong.models.loading import model_fingerprint
from weak2strong.paths import cache_dir
from weak2strong.scoring.base import ScorerConfig, ScorerKind


@dataclass(frozen=True)
class ScorerSpec:
    task: str
    positive_label: str
    higher_is_better: bool
    output: Literal["logit", "probability"]


SCORERS: dict[str, ScorerSpec] = {
    "sentiment": ScorerSpec("imdb", "positive", higher_is_better=True, output="logit"),
    "toxicity": ScorerSpec("toxicity", "toxic", higher_is_better=False, output="probability"),
}


def scorer_spec(name: str) -> ScorerSpec:
    try:
        return SCORERS[name]
    except KeyError:
        raise W2SError(
            f"unknown scorer '{name}' (known: {', '.join(SCORERS)}, "
            "or hf:<model>, python:<module>:<function>, lexicon:vader|afinn)"
        ) from None


# The built-in gold scorers draw their training data with this seed, never the experiment's:
# one scorer per setting, the same for every seed of an experiment, trained once and cached.
SCORER_SEED = 0
SCORER_UNITS = {
    "sentiment": "log-odds that a MiniLM classifier trained on IMDB calls the text positive "
    "(log p(positive) − log p(negative); 0 is undecided)",
    "toxicity": "p(toxic) from a MiniLM classifier trained on the toxicity task",
}


class ClassifierScorer:
    def __init__(self, config: ScorerConfig, show_progress: bool = True) -> None:
        self.config = config
        self.name = config.name
        self.spec = scorer_spec(config.name)
        self.higher_is_better = self.spec.higher_is_better
        self.show_progress = show_progress
        self.features = FeatureConfig(max_length=config.max_length, batch_size=32)
        data = load_task(TaskConfig(name=self.spec.task), seed=SCORER_SEED)
        self.positive = data.label_names.index(self.spec.positive_label)
        reserved = reserved_for_prompts(data)
        train = cap_per_split(
            [e for e in data.split("train") if e.text not in reserved],
            config.max_train,
            SCORER_SEED,
        )
        test = cap_per_split(data.split("test"), config.heldout, SCORER_SEED)
        key = {
            "task": data.fingerprint(),
            "max_train": config.max_train,
            "heldout": config.heldout,
            "without_prompt_pool": bool(reserved),
            "encoder": model_fingerprint(config.encoder),
            "features": dataclasses.asdict(self.features),
            "positive": self.positive,
            "seed": SCORER_SEED,
            "reports": ["accuracy", "auroc"],  # heads cached before AUROC was kept: trained again
        }
        digest = key_digest(key)
        path = cache_dir() / "scorers" / f"{config.name}-{digest}.safetensors"
        self._encoder: tuple[Any, Any] | None = None
        head, _ = distributed.cached_value(
            path,
            lambda: self._train(
                [e.text for e in train],
                [e.label for e in train],
                [e.text for e in test],
                [e.label for e in test],
            ),
            _load_head,
            _save_head,
        )
        weights, info = head
        self.mean, self.scale = weights["mean"], weights["scale"]
        self.coef, self.intercept = weights["coef"], weights["intercept"]
        self.test_accuracy = float(info["test_accuracy"])
        self.quality = {
            "heldout_accuracy": self.test_accuracy,
            "heldout_auroc": float(info["test_auroc"]),
            "train_examples": int(info["train_size"]),
            "test_examples": int(info["test_size"]),
            "data": f"{self.spec.task}: train split for training"
            + (" (without the reviews prompts come from)" if reserved else "")
            + ", test split held out",
        }

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        if self._encoder is None:
            self._encoder = load_feature_backbone(self.config.encoder, self.features)
        encoder, tokenizer = self._encoder
        return extract_features(
            encoder,
            tokenizer,
            texts,
            self.features,
            description=f"scorer {self.config.name}",
            show_progress=self.show_progress,
        )

    def _train(
        self, texts: list[str], labels: list[int], test_texts: list[str], test_labels: list[int]
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from weak2strong.scoring.metrics import compute_metrics

        target = (np.asarray(labels) == self.positive).astype(int)
        tensors, probabilities = fit_head(self._encode(texts), target)
        test_target = (np.asarray(test_labels) == self.positive).astype(int)
        metrics = compute_metrics(
            test_target, probabilities(self._encode(test_texts)), ("accuracy", "auroc")
        )
        return tensors, {
            "test_accuracy": metrics["accuracy"],
            "test_auroc": metrics["auroc"],
            "train_size": len(texts),
            "test_size": len(test_texts),
        }

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """log p(positive) − log p(negative) per text."""
        features = (self._encode(texts) - self.mean) / self.scale
        return (features @ self.coef + self.intercept).numpy().astype(np.float64)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.logits(texts)
        return logits if self.spec.output == "logit" else 1.0 / (1.0 + np.exp(-logits))


Head = tuple[dict[str, torch.Tensor], dict[str, Any]]


def fit_head(
    features: torch.Tensor, target: np.ndarray
) -> tuple[dict[str, torch.Tensor], Callable[[torch.Tensor], np.ndarray]]:
    """The built-in scorers' head: standardised features, then a logistic regression.

    Returns its weights (what `ClassifierScorer` caches and scores with) and a function from
    features to class probabilities [texts, 2], for measuring it on held-out texts.
    """
    from sklearn.linear_model import LogisticRegression

    mean, scale = features.mean(0), features.std(0).clamp(min=1e-6)
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(
        ((features - mean) / scale).numpy(), target
    )
    tensors = {
        "mean": mean,
        "scale": scale,
        "coef": torch.as_tensor(regression.coef_[0], dtype=torch.float32),
        "intercept": torch.as_tensor(regression.intercept_, dtype=torch.float32),
    }

    def probabilities(held_out: torch.Tensor) -> np.ndarray:
        return np.asarray(regression.predict_proba(((held_out - mean) / scale).numpy()))

    return tensors, probabilities


def _load_head(path: Path) -> Head:
    from safetensors.torch import load_file

    return load_file(path), read_json(path.with_suffix(".json"))


def _save_head(path: Path, head: Head) -> None:
    tensors, info = head
    # The JSON first: the weights' existence is what marks the scorer as trained.
    write_json(path.with_suffix(".json"), info)
    write_tensors(path, tensors)


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "encoder": model_fingerprint(config.encoder),
        "data_seed": SCORER_SEED,  # before: the experiment's seed chose the scorer's data
        "data": "train split without the prompt pool",  # before: prompts' reviews included
    }


def _check(name: str) -> None:
    scorer_spec(name)


def _quality(config: ScorerConfig, show_progress: bool) -> dict[str, Any]:
    """Held-out accuracy and AUROC (the trained head is cached: this loads no encoder)."""
    return ClassifierScorer(config, show_progress=show_progress).quality


KIND = ScorerKind(
    prefix="",
    check=_check,
    load=lambda config, show_progress: ClassifierScorer(config, show_progress=show_progress),
    fingerprint=_fingerprint,
    higher_is_better=lambda config: scorer_spec(config.name).higher_is_better,
    units=lambda name: SCORER_UNITS[name],
    quality=_quality,
)
