"""The typed config of `w2s generalize`."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from weak2strong.data import TaskConfig
from weak2strong.models.adapters import LoraSettings
from weak2strong.models.features import FeatureConfig
from weak2strong.settings import setting
from weak2strong.training.settings import AdamWSettings

StrategyName = Literal["naive", "confidence", "confident-subset", "bootstrap"]
STRATEGY_NAMES: tuple[StrategyName, ...] = typing.get_args(StrategyName)


@dataclass
class ProbeConfig(AdamWSettings):
    """A head trained on frozen, cached backbone features."""

    hidden: int = setting(0, help="hidden units of an MLP head; 0: a linear head")
    # Short training, as Burns et al.: on imdb (VADER → Qwen-0.5B, B=400) 40 epochs made the
    # student agree with 96% of the weak labels, errors included, and fall below the weak model.
    epochs: int = setting(5, help="epochs over the student's training half")
    batch_size: int = setting(64, help="examples per optimiser step, across all processes")
    learning_rate: float = setting(1e-3, help="AdamW learning rate")
    weight_decay: float = setting(1e-2, help="AdamW weight decay")


@dataclass
class FinetuneConfig(AdamWSettings):
    """Fine-tuning the backbone with a head."""

    lora: LoraSettings = setting(
        help="LoRA adapters; lora.rank=0 trains every weight", factory=LoraSettings
    )
    epochs: int = setting(2, help="epochs over the student's training half")
    batch_size: int = setting(8, help="examples per optimiser step, across all processes")
    learning_rate: float = setting(2e-4, help="AdamW learning rate")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    max_length: int = setting(128, help="tokens per text")
    pooling: Literal["mean", "last"] = setting(
        "mean", help="mean over real tokens, or the last real token"
    )


@dataclass
class StrategyConfig:
    confidence_alpha: float = setting(
        0.75,
        help="confidence loss (Burns et al.): final weight of the student's own hardened "
        "predictions against the weak labels",
    )
    confidence_warmup: float = setting(
        0.2, help="confidence loss: fraction of steps over which its weight rises from 0"
    )
    subset_keep: float = setting(
        0.5, help="confident-subset: fraction of weak labels kept, most confident first"
    )
    intermediate: str | None = setting(
        None,
        help="bootstrap: the intermediate model (weak → intermediate → strong); it relabels "
        "half B by 2-fold cross-fitting, never its own training examples",
    )


@dataclass
class GeneralizeConfig:
    seed: int = setting(0, help="seed of the split, the training and the bootstrap")
    task: TaskConfig = setting(
        help="the labelled data", factory=lambda: TaskConfig(name="imdb", max_per_split=1000)
    )
    weak: str = setting(
        "smollm2-135m-instruct",
        help="weak supervisor: a model name/folder/hub id, or lexicon:vader / lexicon:afinn",
    )
    strong: str = setting("qwen2.5-coder-0.5b-instruct", help="strong student: a model")
    strategies: list[Literal["naive", "confidence", "confident-subset", "bootstrap", "all"]] = (
        setting(
            help="naive, confidence, confident-subset, bootstrap (needs strategy.intermediate), or all",
            factory=lambda: ["naive"],
        )
    )
    regime: Literal["probe", "finetune"] = setting(
        "probe", help="probe: a head on frozen features (the CPU default); finetune: the backbone"
    )
    features: FeatureConfig = setting(help="probe features", factory=FeatureConfig)
    probe: ProbeConfig = setting(help="the probe regime's training", factory=ProbeConfig)
    finetune: FinetuneConfig = setting(
        help="the finetune regime's training", factory=FinetuneConfig
    )
    strategy: StrategyConfig = setting(help="strategy settings", factory=StrategyConfig)
    bootstrap_samples: int = setting(1000, help="resamples of the test set for the intervals")
    model_revision: str | None = setting(None, help="revision of hub models")
    trust_remote_code: bool = setting(False, help="run code shipped with hub models (unsafe)")
    show_progress: bool = setting(True, help="progress bars", hash=False)
