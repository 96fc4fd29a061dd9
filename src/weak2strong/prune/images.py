"""The classic lottery-ticket problem: an image classifier trained from scratch.

As in Frankle & Carbin (2019): 5,000 training images are held out; every `eval_every`
optimiser steps the network's validation loss and test accuracy are measured, the
early-stopping iteration is the one of least validation loss, and a round's metric is the
test accuracy there. The measures beside it: that iteration, and the test accuracy at the
end of training. Pixels are scaled to [0, 1] and standardised per channel by the training
images' mean and deviation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from weak2strong.data.images import ImageData
from weak2strong.errors import W2SError
from weak2strong.models.vision import build_network
from weak2strong.prune.config import ImageSettings, NetworkSettings
from weak2strong.prune.lottery import TicketProblem
from weak2strong.prune.strategies import ScoringInputs
from weak2strong.training import StepInfo, fit, one_hot, predict_proba

EVAL_BATCH = 1000


def image_splits(
    data: ImageData, settings: ImageSettings
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor, np.ndarray, torch.Tensor, np.ndarray]:
    """(train, validation, test) images as standardised float tensors, with their labels;
    the validation images are a fixed random draw from the training set (the same for
    every seed, as the test set is)."""
    held_out = settings.validation_examples
    if not 0 < held_out < len(data.train_labels):
        raise W2SError(f"images.validation_examples must be in [1, {len(data.train_labels) - 1}]")
    order = np.random.default_rng(0).permutation(len(data.train_labels))
    train_rows, validation_rows = order[held_out:], order[:held_out]
    if settings.train_limit:
        train_rows = train_rows[: settings.train_limit]
    train = data.train_images[train_rows].astype(np.float32) / 255
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    deviation = train.std(axis=(0, 2, 3), keepdims=True)

    def standardised(scaled: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((scaled - mean) / deviation)

    return (
        standardised(train),
        data.train_labels[train_rows],
        standardised(data.train_images[validation_rows].astype(np.float32) / 255),
        data.train_labels[validation_rows],
        standardised(data.test_images.astype(np.float32) / 255),
        data.test_labels,
    )


def crop_and_flip(
    images: torch.Tensor, rows: list[int], step: int, seed: int, examples: int, padding: int = 4
) -> torch.Tensor:
    """open_lth's CIFAR-10 augmentation: each image shifted by up to `padding` pixels (a
    random crop of the zero-padded image) and flipped left-right with probability 1/2.
    A step draws for all `examples` training images at once, and each row takes its own
    draw: any split of a batch between processes augments as one process does."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    flips = torch.rand(examples, generator=generator) < 0.5
    shifts = torch.randint(0, 2 * padding + 1, (examples, 2), generator=generator)
    padded = nn.functional.pad(images, (padding, padding, padding, padding))
    height, width = images.shape[-2:]
    out = torch.empty_like(images)
    for position, row in enumerate(rows):
        top, left = (int(value) for value in shifts[row])
        crop = padded[position, :, top : top + height, left : left + width]
        out[position] = crop.flip(-1) if flips[row] else crop
    return out


class ImageProblem:
    """An image classifier's ticket problem; its last training's trajectory gives the
    metric (test accuracy at early stopping) and the measures."""

    def __init__(self, settings: NetworkSettings, data: ImageData, images: ImageSettings):
        if settings.eval_every < 1:
            raise W2SError("network.eval_every must be at least 1")
        self.settings = settings
        self.augment = images.augment
        self.shape = data.shape
        self.classes = len(data.classes)
        splits = image_splits(data, images)
        self.train_images, self.train_labels = splits[0], splits[1]
        self.validation_images, self.validation_labels = splits[2], splits[3]
        self.test_images, self.test_labels = splits[4], splits[5]
        self.trajectory: list[dict[str, float]] = []

    def build(self, seed: int) -> nn.Module:
        return build_network(self.settings.architecture, self.shape, self.classes, seed)

    def _checkpoint(self, model: nn.Module, step: int) -> None:
        validation = predict_proba(model, self.validation_images, EVAL_BATCH)
        test = predict_proba(model, self.test_images, EVAL_BATCH)
        model.train()  # predict_proba leaves it in eval mode (batch norm must train)
        picked = validation[np.arange(len(self.validation_labels)), self.validation_labels]
        self.trajectory.append(
            {
                "step": float(step),
                "validation_loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
                "test_accuracy": float((test.argmax(1) == self.test_labels).mean()),
            }
        )

    def train(self, model: nn.Module, after_step: Any, seed: int) -> None:
        self.trajectory = []
        every = self.settings.eval_every

        def step_done(step: int) -> None:
            after_step(step)  # the lottery's masks first: a checkpoint sees the pruned net
            if step % every == 0:
                self._checkpoint(model, step)

        def augment(batch: torch.Tensor, rows: list[int], info: StepInfo) -> torch.Tensor:
            return crop_and_flip(batch, rows, info.step, seed, len(self.train_labels))

        fit(
            model,
            self.train_images,
            one_hot(self.train_labels.tolist(), self.classes),
            self.settings,
            seed=seed,
            after_step=step_done,
            augment=augment if self.augment else None,
            curves_name=f"prune/{self.settings.architecture}/seed{seed}",
        )
        steps = self.settings.epochs * -(-len(self.train_labels) // self.settings.batch_size)
        if not self.trajectory or self.trajectory[-1]["step"] != steps:
            self._checkpoint(model, steps)

    def _early_stop(self) -> dict[str, float]:
        if not self.trajectory:
            raise W2SError("the network has not been trained: no early-stopping iteration")
        return min(self.trajectory, key=lambda point: point["validation_loss"])

    def evaluate(self, model: nn.Module) -> float:
        """Test accuracy at the last training's early-stopping iteration."""
        return self._early_stop()["test_accuracy"]

    def measures(self) -> dict[str, float]:
        return {
            "early-stop iteration": self._early_stop()["step"],
            "final accuracy": self.trajectory[-1]["test_accuracy"],
        }

    def scoring(self, seed: int) -> ScoringInputs:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(len(self.train_labels), generator=generator)[:256]
        batch, targets = self.train_images[rows], torch.as_tensor(self.train_labels[rows.numpy()])

        def batch_logits(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            return model(batch), targets

        def ones_output(model: nn.Module) -> torch.Tensor:
            dtype = next(model.parameters()).dtype
            output: torch.Tensor = model(torch.ones(1, *self.shape, dtype=dtype))
            return output

        return ScoringInputs(batch_logits=batch_logits, ones_output=ones_output, seed=seed)

    def problem(self) -> TicketProblem:
        return TicketProblem(
            build=self.build,
            train=self.train,
            evaluate=self.evaluate,
            scoring=self.scoring,
            measures=self.measures,
        )
