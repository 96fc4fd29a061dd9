"""Gold scorers (rewards): one interface, `score(texts) -> array`, three kinds behind it.

- `sentiment` / `toxicity`: a frozen encoder plus a logistic head trained once on a task's
  gold labels. Sentiment (IMDB) gives log p(positive) − log p(negative), the reward of the
  seed's controlled-sentiment experiments; toxicity gives p(toxic). Heads are cached in the
  weak2strong cache under a key of task data, encoder weights and settings.
- `hf:<model>`: any Hugging Face sequence-classification model (a local folder or hub id):
  its single logit, or log p(positive) − log p(negative) for two labels.
- `python:<module>:<function>`: a user function from a list of texts to a list of floats.
- `lexicon:vader` / `lexicon:afinn`: a sentiment lexicon's raw polarity (no training).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.data import TaskConfig, load_task
from weak2strong.data.base import cap_per_split
from weak2strong.data.prompts import reserved_for_prompts
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest, read_json, sha256_file, write_json, write_tensors
from weak2strong.models.features import FeatureConfig, extract_features, load_feature_backbone
from weak2strong.models.loading import model_fingerprint
from weak2strong.paths import cache_dir
from weak2strong.settings import setting


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


@dataclass
class ScorerConfig:
    name: str = setting(
        "sentiment",
        help="gold scorer: sentiment, toxicity, lexicon:vader|afinn, hf:<model>, "
        "python:<module>:<function>",
    )
    encoder: str = setting("minilm-l6", help="encoder of the sentiment/toxicity scorers")
    max_train: int = setting(4000, help="label-stratified cap on the scorer's training data")
    heldout: int = setting(
        1000,
        help="held-out labelled texts its accuracy and AUROC are measured on",
        hash="when-changed",
    )
    max_length: int = setting(256, help="tokens per scored text")
    higher_is_better: bool = setting(
        True, help="direction of hf: and python: scorers (the built-in ones know theirs)"
    )


class Scorer(Protocol):
    name: str
    higher_is_better: bool

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


PLUGIN_PREFIXES = ("hf:", "python:", "lexicon:")


# The built-in gold scorers draw their training data with this seed, never the experiment's:
# one scorer per setting, the same for every seed of an experiment, trained once and cached.
SCORER_SEED = 0
SCORER_UNITS = {
    "sentiment": "log-odds that a MiniLM classifier trained on IMDB calls the text positive "
    "(log p(positive) − log p(negative); 0 is undecided)",
    "toxicity": "p(toxic) from a MiniLM classifier trained on the toxicity task",
    "lexicon:vader": "VADER compound polarity in [−1, 1]",
    "lexicon:afinn": "AFINN polarity (sum of word scores)",
}


def check_scorer_name(name: str) -> None:
    """Fail fast, before any model loads, on a scorer name that names nothing."""
    if not name.startswith(PLUGIN_PREFIXES):
        scorer_spec(name)


def scorer_higher_is_better(config: ScorerConfig) -> bool:
    """Which way the named scorer points, known without loading it."""
    if config.name.startswith("lexicon:"):
        return True
    if config.name.startswith(PLUGIN_PREFIXES):
        return config.higher_is_better
    return scorer_spec(config.name).higher_is_better


def scorer_fingerprint(config: ScorerConfig) -> dict[str, Any]:
    """What identifies a scorer's behaviour besides its settings, for run inputs: the
    weights of a model scorer, the source of a python: function, a lexicon's version."""
    if config.name.startswith("hf:"):
        return {"name": config.name, "model": model_fingerprint(config.name.removeprefix("hf:"))}
    if config.name.startswith("python:"):
        import importlib.util

        module = config.name.removeprefix("python:").partition(":")[0]
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
        source = sha256_file(origin) if origin and Path(origin).is_file() else None
        return {"name": config.name, "source_sha256": source}
    if config.name.startswith("lexicon:"):
        from importlib.metadata import PackageNotFoundError, version

        package = "vaderSentiment" if config.name == "lexicon:vader" else "afinn"
        try:
            return {"name": config.name, "version": version(package)}
        except PackageNotFoundError:
            return {"name": config.name, "version": None}
    return {
        "name": config.name,
        "encoder": model_fingerprint(config.encoder),
        "data_seed": SCORER_SEED,  # before: the experiment's seed chose the scorer's data
        "data": "train split without the prompt pool",  # before: prompts' reviews included
    }


def scorer_description(config: ScorerConfig, show_progress: bool = False) -> dict[str, Any]:
    """What a result says about its gold scorer: its units and, for a trained one, how well
    it does on held-out labelled data (the trained head is cached: this loads no encoder)."""
    name = config.name
    units = SCORER_UNITS.get(name) or (
        "the model's logit (log-odds of its positive label)"
        if name.startswith("hf:")
        else "the function's value"
    )
    description: dict[str, Any] = {"name": name, "units": units}
    if name in SCORERS:
        description.update(ClassifierScorer(config, show_progress=show_progress).quality)
    return description


def load_scorer(config: ScorerConfig, show_progress: bool = True) -> Scorer:
    """The scorer a config names; every command that scores text goes through here."""
    if config.name.startswith("hf:"):
        return SequenceClassifierScorer(config, show_progress=show_progress)
    if config.name.startswith("python:"):
        return FunctionScorer(config)
    if config.name.startswith("lexicon:"):
        from weak2strong.scoring.lexicon import LexiconScorer

        return LexiconScorer(config.name)
    return ClassifierScorer(config, show_progress=show_progress)


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


class SequenceClassifierScorer:
    """A Hugging Face sequence-classification model as a reward."""

    def __init__(self, config: ScorerConfig, show_progress: bool = True) -> None:
        from weak2strong.models.loading import load_sequence_classifier

        self.name = config.name
        self.higher_is_better = config.higher_is_better
        self.max_length = config.max_length
        self.show_progress = show_progress
        self.model, self.tokenizer = load_sequence_classifier(config.name.removeprefix("hf:"))
        labels = len(self.model.config.id2label or {}) or 1
        if labels not in (1, 2):
            raise W2SError(f"scorer '{config.name}' has {labels} labels; a reward needs 1 or 2")
        names = {i: str(n).lower() for i, n in (self.model.config.id2label or {}).items()}
        positive = [i for i, n in names.items() if n.startswith("pos")]
        self.positive = int(positive[0]) if positive else labels - 1

    @torch.no_grad()
    def score(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        device = next(self.model.parameters()).device

        def reward(indices: list[int]) -> torch.Tensor:
            batch = self.tokenizer(
                [texts[i] for i in indices],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(device)
            logits = self.model(**batch).logits.float()
            if logits.shape[-1] == 1:
                return logits[:, 0]
            log_probs = logits.log_softmax(-1)
            return log_probs[:, self.positive] - log_probs[:, 1 - self.positive]

        return (
            distributed.map_rows(
                reward,
                len(texts),
                batch_size,
                description=f"scorer {self.name}",
                show_progress=self.show_progress,
            )
            .numpy()
            .astype(np.float64)
        )


# texts per call of a user's scoring function (calls are shared between processes)
FUNCTION_BATCH = 256


class FunctionScorer:
    """`python:<module>:<function>`: the user's own code, imported because the user named it."""

    def __init__(self, config: ScorerConfig) -> None:
        import importlib

        self.name = config.name
        self.higher_is_better = config.higher_is_better
        target = config.name.removeprefix("python:")
        module_name, _, function_name = target.partition(":")
        if not module_name or not function_name:
            raise W2SError(f"scorer '{config.name}' must look like python:<module>:<function>")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise W2SError(
                f"scorer '{config.name}': cannot import {module_name} ({error})"
            ) from None
        function = getattr(module, function_name, None)
        if not callable(function):
            raise W2SError(f"scorer '{config.name}': {module_name} has no function {function_name}")
        self.function = function

    def score(self, texts: Sequence[str]) -> np.ndarray:
        def call(indices: list[int]) -> list[float]:
            batch = [texts[i] for i in indices]
            values = list(self.function(batch))
            if len(values) != len(batch):
                raise W2SError(
                    f"scorer '{self.name}' returned {len(values)} scores for {len(batch)} texts"
                )
            return [float(value) for value in values]

        return np.asarray(
            distributed.map_items(call, len(texts), FUNCTION_BATCH, description=self.name),
            dtype=np.float64,
        )
