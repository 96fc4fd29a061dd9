"""The typed config of `w2s generalize`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from weak2strong.data import TaskConfig
from weak2strong.models.adapters import LoraSettings
from weak2strong.models.features import FeatureConfig

STRATEGY_NAMES = ("naive", "confidence", "confident-subset", "bootstrap")


@dataclass
class ProbeConfig:
    """A head trained on frozen, cached backbone features (hidden=0: linear)."""

    hidden: int = 0
    # Short training, as Burns et al.: on imdb (VADER → Qwen-0.5B, B=400) 40 epochs made the
    # student agree with 96% of the weak labels, errors included, and fall below the weak model.
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2


@dataclass
class FinetuneConfig:
    """Fine-tuning the backbone with a head; lora.rank=0 trains every weight."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    epochs: int = 2
    batch_size: int = 8
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    max_length: int = 128
    pooling: Literal["mean", "last"] = "mean"


@dataclass
class StrategyConfig:
    # Burns et al.'s auxiliary confidence loss: weight of the self-hardened target, reached
    # linearly over the first `confidence_warmup` fraction of training steps.
    confidence_alpha: float = 0.75
    confidence_warmup: float = 0.2
    # confident-subset: train only on the most confident fraction of weak labels.
    subset_keep: float = 0.5
    # bootstrap: weak → intermediate → strong. The intermediate model learns from the weak
    # labels and relabels half B by 2-fold cross-fitting (never its own training examples).
    intermediate: str | None = None


@dataclass
class GeneralizeConfig:
    seed: int = 0
    task: TaskConfig = field(default_factory=lambda: TaskConfig(name="imdb", max_per_split=1000))
    weak: str = (
        "smollm2-135m-instruct"  # a model name/path/hub id, or lexicon:vader / lexicon:afinn
    )
    strong: str = "qwen2.5-0.5b-instruct"
    strategies: list[str] = field(default_factory=lambda: ["naive"])
    regime: Literal["probe", "finetune"] = "probe"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    bootstrap_samples: int = 1000
    model_revision: str | None = None
    trust_remote_code: bool = False
    show_progress: bool = field(default=True, metadata={"hash": False})
