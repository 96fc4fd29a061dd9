"""The one training loop, data-parallel through accelerate, and sharded predictions.

`batch_size` is the global batch: the examples of one optimiser step, whatever the number
of processes. Every process draws the same shuffled global batches (one seeded
DataLoader) and trains on its contiguous share of each; the loss is normalised by the
global count of examples (or tokens) before DDP averages the gradients, so a step's
gradient is the mean over the global batch exactly as with one process. A run's results
therefore do not depend on how many processes computed them, which is what lets the run
folder's hash ignore the process count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from weak2strong import distributed
from weak2strong.tracking import training_curves
from weak2strong.training.classifier import Inputs, take
from weak2strong.training.settings import AdamWSettings, OptimiserSettings

Schedule = AdamWSettings  # what a training run needs from a config section


@dataclass(frozen=True)
class StepInfo:
    """Where training stands, for losses that change over training or look at the batch."""

    step: int  # optimiser steps already taken
    total_steps: int
    # this process's rows of a batch-level tensor → the rows of the whole global batch, in
    # batch order (identity with one process); for losses that need batch statistics
    gather: Callable[[torch.Tensor], torch.Tensor]


# logits [rows, classes], soft targets [rows, classes] → per-example losses [rows]
Loss = Callable[[torch.Tensor, torch.Tensor, StepInfo], torch.Tensor]

# (inputs of a batch, their example indices, step) → the inputs the model trains on
Augment = Callable[[Any, list[int], StepInfo], Any]

# (model, this process's example indices, step) → (summed loss, count it sums over); the
# indices may be empty when a global batch has fewer examples than there are processes
BatchLoss = Callable[[nn.Module, list[int], StepInfo], tuple[torch.Tensor, torch.Tensor]]


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, info: StepInfo | None = None
) -> torch.Tensor:
    """Cross-entropy against soft targets, per example."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1)


def _settings(schedule: Schedule) -> dict[str, Any]:
    return {
        key: value
        for key, value in dataclasses.asdict(schedule).items()
        if isinstance(value, int | float | str | bool)
    }


def _optimiser(
    parameters: list[nn.Parameter], schedule: Schedule
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser a schedule asks for, and its per-epoch learning-rate decay if any."""
    options = schedule if isinstance(schedule, OptimiserSettings) else OptimiserSettings()
    optimiser: torch.optim.Optimizer
    if options.optimiser == "sgd":
        optimiser = torch.optim.SGD(
            parameters,
            lr=schedule.learning_rate,
            momentum=options.momentum,
            weight_decay=schedule.weight_decay,
        )
    else:
        optimiser = torch.optim.AdamW(
            parameters, lr=schedule.learning_rate, weight_decay=schedule.weight_decay
        )
    if not options.milestones:
        return optimiser, None
    return optimiser, torch.optim.lr_scheduler.MultiStepLR(
        optimiser, options.milestones, options.gamma
    )


def _accelerator() -> Any:
    from accelerate import Accelerator
    from accelerate.utils import AutocastKwargs, DistributedDataParallelKwargs

    distributed.state()  # the process group first: Accelerator() alone misses CPU groups
    # Backbones often hold parameters the loss never reaches (BERT's pooler): a static
    # graph lets DDP learn them in the first step instead of waiting for their gradients.
    # accelerate's state is one per process, and TRL's DPO leaves it in bf16: without
    # autocast off, a loop run after a tune in the same process (the Python API, a notebook)
    # would train in bf16 and give other numbers than the same loop in a fresh process.
    # The loop computes in the dtype its model was loaded in.
    return Accelerator(
        kwargs_handlers=[DistributedDataParallelKwargs(static_graph=True), AutocastKwargs(False)]
    )


def _global_batches(
    examples: int, batch_size: int, seed: int
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """One seeded shuffle of global batches, the same on every process."""
    return DataLoader(
        TensorDataset(torch.arange(examples)),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )


def train(
    model: nn.Module,
    examples: int,
    batch_loss: BatchLoss,
    schedule: Schedule,
    *,
    seed: int,
    after_step: Callable[[int], None] | None = None,
    curves_name: str = "train",
    curves_settings: dict[str, Any] | None = None,
) -> nn.Module:
    """Minimise `batch_loss` over `examples` examples with AdamW (or what an
    `OptimiserSettings` asks for); returns the unwrapped model.

    `after_step(n)` runs after the n-th optimiser step on every process (pruning keeps its
    masks and rewind points through it). With a tracker asked for, the global mean loss
    per step is logged under `curves_name`.
    """
    accelerator = _accelerator()
    torch.manual_seed(seed)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimiser, decay = _optimiser(trainable, schedule)
    global_batches = _global_batches(examples, schedule.batch_size, seed)
    model, optimiser = accelerator.prepare(model, optimiser)
    processes = distributed.num_processes()
    total_steps = schedule.epochs * len(global_batches)
    step = 0
    model.train()
    settings = {
        **_settings(schedule),
        "seed": seed,
        "examples": examples,
        **(curves_settings or {}),
    }
    with training_curves(curves_name, settings) as log_values:
        for _ in range(schedule.epochs):
            for (batch,) in global_batches:
                indices = distributed.split_batch(batch.tolist())
                info = StepInfo(step, total_steps, distributed.gather_rows)
                loss_sum, count = batch_loss(model, indices, info)
                global_count = distributed.sum_across(count.detach().float())
                # DDP averages gradients over processes: scale so the average is the
                # global mean, even when processes hold different numbers of examples.
                loss = loss_sum * processes / global_count.clamp(min=1.0)
                optimiser.zero_grad()
                accelerator.backward(loss)
                optimiser.step()
                step += 1
                if log_values is not None:
                    mean_loss = distributed.sum_across(loss_sum.detach()) / global_count
                    log_values({"train/loss": mean_loss}, step)
                if after_step is not None:
                    after_step(step)
            if decay is not None:
                decay.step()  # milestones count epochs
    return accelerator.unwrap_model(model)


def fit(
    model: nn.Module,
    inputs: Inputs,
    targets: np.ndarray,
    schedule: Schedule,
    *,
    loss: Loss = soft_cross_entropy,
    seed: int,
    after_step: Callable[[int], None] | None = None,
    augment: Augment | None = None,
    curves_name: str = "fit",
    curves_settings: dict[str, Any] | None = None,
) -> nn.Module:
    """Train a classifier `model(inputs)` towards soft `targets` [n, classes] under `loss`;
    `augment` transforms each batch's inputs (its randomness a function of the example
    indices and the step, so that any number of processes draws the same)."""
    target_tensor = torch.as_tensor(targets, dtype=torch.float32)

    def batch_loss(
        module: nn.Module, indices: list[int], info: StepInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = len(indices)
        # A process without examples in this batch still runs the model (on one example,
        # kept out of the loss) so that its gradients, all zero, join DDP's all-reduce.
        chosen = indices or [0]
        batch = take(inputs, chosen)
        logits = module(augment(batch, chosen, info) if augment else batch)[:rows]
        losses = loss(logits, target_tensor[indices].to(logits.device), info)
        return losses.sum(), torch.tensor(float(rows), device=logits.device)

    return train(
        model,
        len(targets),
        batch_loss,
        schedule,
        seed=seed,
        after_step=after_step,
        curves_name=curves_name,
        curves_settings=curves_settings,
    )


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    inputs: Inputs,
    batch_size: int = 64,
    *,
    description: str = "predict",
    show_progress: bool = False,
) -> np.ndarray:
    """Class probabilities [n, classes], batches sharded over processes, rows in input order."""
    model.eval()

    def probabilities(indices: Sequence[int]) -> torch.Tensor:
        return torch.softmax(model(take(inputs, indices)).float(), dim=-1)

    return distributed.map_rows(
        probabilities,
        len(inputs),
        batch_size,
        description=description,
        show_progress=show_progress,
    ).numpy()
