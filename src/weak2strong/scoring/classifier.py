"""Gold scorers: a frozen encoder plus a logistic head trained once on a task's gold labels.

The sentiment scorer (IMDB) gives log p(positive) − log p(negative), the reward of the
seed's controlled-sentiment experiments; the toxicity scorer gives p(toxic). Heads are
cached in the weak2strong cache under a key of task data, encoder weights and settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from weak2strong.data import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest, read_json, write_json, write_tensors
from weak2strong.models import load_encoder
from weak2strong.models.features import FeatureConfig, extract_features
from weak2strong.models.loading import model_fingerprint
from weak2strong.paths import cache_dir


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
        raise W2SError(f"unknown scorer '{name}' (known: {', '.join(SCORERS)})") from None


@dataclass
class ScorerConfig:
    name: str = "sentiment"
    encoder: str = "minilm-l6"
    max_train: int = 4000  # label-stratified cap on the task's train split
    max_length: int = 256


class ClassifierScorer:
    def __init__(self, config: ScorerConfig, seed: int = 0, show_progress: bool = True) -> None:
        self.config = config
        self.spec = scorer_spec(config.name)
        self.higher_is_better = self.spec.higher_is_better
        self.show_progress = show_progress
        self.features = FeatureConfig(max_length=config.max_length, batch_size=32)
        data = load_task(TaskConfig(name=self.spec.task, max_per_split=config.max_train), seed=seed)
        self.positive = data.label_names.index(self.spec.positive_label)
        key = {
            "task": data.fingerprint(),
            "encoder": model_fingerprint(config.encoder),
            "features": dataclasses.asdict(self.features),
            "positive": self.positive,
        }
        digest = key_digest(key)
        path = cache_dir() / "scorers" / f"{config.name}-{digest}.safetensors"
        self._encoder: tuple[Any, Any] | None = None
        if not path.exists():
            self._train(
                data.texts("train"),
                data.labels("train"),
                data.texts("test"),
                data.labels("test"),
                path,
            )
        from safetensors.torch import load_file

        weights = load_file(path)
        self.mean, self.scale = weights["mean"], weights["scale"]
        self.coef, self.intercept = weights["coef"], weights["intercept"]
        self.test_accuracy = float(read_json(path.with_suffix(".json"))["test_accuracy"])

    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        if self._encoder is None:
            self._encoder = load_encoder(self.config.encoder)
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
        self,
        texts: list[str],
        labels: list[int],
        test_texts: list[str],
        test_labels: list[int],
        path: Path,
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        features = self._encode(texts)
        mean, scale = features.mean(0), features.std(0).clamp(min=1e-6)
        target = (np.asarray(labels) == self.positive).astype(int)
        regression = LogisticRegression(C=1.0, max_iter=2000).fit(
            ((features - mean) / scale).numpy(), target
        )
        tensors = {
            "mean": mean,
            "scale": scale,
            "coef": torch.as_tensor(regression.coef_[0], dtype=torch.float32),
            "intercept": torch.as_tensor(regression.intercept_, dtype=torch.float32),
        }
        test_features = ((self._encode(test_texts) - mean) / scale).numpy()
        accuracy = float(
            np.mean(regression.predict(test_features) == (np.asarray(test_labels) == self.positive))
        )
        # The JSON first: the weights' existence is what marks the scorer as trained.
        write_json(path.with_suffix(".json"), {"test_accuracy": accuracy, "train_size": len(texts)})
        write_tensors(path, tensors)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """log p(positive) − log p(negative) per text."""
        features = (self._encode(texts) - self.mean) / self.scale
        return (features @ self.coef + self.intercept).numpy().astype(np.float64)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.logits(texts)
        return logits if self.spec.output == "logit" else 1.0 / (1.0 + np.exp(-logits))
