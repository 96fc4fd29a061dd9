"""Masked training overhead: time per step with pruning masks over dense training, ours
against the ecosystem's standard, `torch.nn.utils.prune`.

    python benchmarks/prune.py [--examples 320] [--repeats 5] [--sparsity 0.5]

On `w2s prune`'s default student (MiniLM-L6's first two layers + head, IMDB, 48 tokens,
batch 32), the same training run is timed dense, under our masks (gradient hooks that zero
pruned gradients, plus re-zeroing the pruned weights after every optimiser step) and under
`torch.nn.utils.prune.custom_from_mask` (a forward pre-hook that multiplies weight_orig by
the mask on every forward), in alternation so that drifts in machine speed hit all three.
Both masked runs must end with the same effective weights. Targets: ours / dense ≤ 1.1,
and ours no slower than torch's.

Growth: `w2s prune` (IMP only, one seed, `--examples` training reviews) with 1, 2 and 4
rounds, each in a fresh run folder; every round retrains in full, so time should grow
linearly with rounds (a constant seconds per round).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from torch.nn.utils import prune as torch_prune

from weak2strong.data import TaskConfig, load_task
from weak2strong.prune import Masks, masked_gradients, prunable_weights, prune
from weak2strong.prune.experiment import (
    Prune,
    PruneConfig,
    StudentSettings,
    TextClassifierProblem,
)
from weak2strong.prune.lottery import LotterySettings


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--growth-rounds", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    data = load_task(TaskConfig(name="imdb"), seed=0)
    order = np.random.default_rng(0).permutation(len(data.split("train")))[: args.examples]
    examples = [data.split("train")[int(i)] for i in order]
    targets = np.eye(2, dtype=np.float32)[[e.label for e in examples]]
    settings = StudentSettings()
    problem = TextClassifierProblem(
        settings, [e.text for e in examples], targets, [], np.zeros(0), classes=2
    )
    steps = settings.epochs * -(-args.examples // settings.batch_size)
    reference = problem.build(0)
    weights = prunable_weights(reference, exclude=[r"^head\.", r"\.pooler\."])
    masks = prune("random", reference, Masks.dense(weights), args.sparsity, "global")

    def dense_run() -> float:
        model = problem.build(0)
        started = time.perf_counter()
        problem.train(model, lambda step: None, 0)
        return (time.perf_counter() - started) / steps

    final: dict[str, dict[str, torch.Tensor]] = {}

    def masked_run() -> float:
        model = problem.build(0)
        started = time.perf_counter()
        masks.apply(model)
        with masked_gradients(model, masks):
            problem.train(model, lambda step: masks.apply(model), 0)
        seconds = (time.perf_counter() - started) / steps
        final["ours"] = {name: p.detach().clone() for name, p in model.named_parameters()}
        return seconds

    def torch_prune_run() -> float:
        model = problem.build(0)
        modules = dict(model.named_modules())
        started = time.perf_counter()
        for name, mask in masks.items():
            torch_prune.custom_from_mask(modules[name.removesuffix(".weight")], "weight", mask)
        problem.train(model, lambda step: None, 0)
        seconds = (time.perf_counter() - started) / steps
        for name in masks:  # weight = weight_orig · mask, made permanent (not timed)
            torch_prune.remove(modules[name.removesuffix(".weight")], "weight")
        final["torch"] = {name: p.detach().clone() for name, p in model.named_parameters()}
        return seconds

    dense_run()  # warm-up: first-call allocations and thread pools
    dense, masked, torch_masked = [], [], []
    for _ in range(args.repeats):
        dense.append(dense_run())
        masked.append(masked_run())
        torch_masked.append(torch_prune_run())
    differences = [
        float((final["ours"][name] - final["torch"][name]).abs().max()) for name in masks
    ]
    dense_step, masked_step = statistics.median(dense), statistics.median(masked)
    torch_step = statistics.median(torch_masked)
    print(
        f"{steps} steps of batch {settings.batch_size}, {settings.max_length} tokens, "
        f"{masks.sparsity():.0%} of {masks.total():,} prunable weights masked"
    )
    print(f"dense  {dense_step * 1000:.0f} ms/step (runs: {', '.join(f'{d:.3f}' for d in dense)})")
    print(
        f"masked {masked_step * 1000:.0f} ms/step (runs: {', '.join(f'{m:.3f}' for m in masked)})"
    )
    print(
        f"torch  {torch_step * 1000:.0f} ms/step (runs: "
        f"{', '.join(f'{t:.3f}' for t in torch_masked)}; torch.nn.utils.prune)"
    )
    print(f"largest |ours − torch| over the masked weights after training: {max(differences):.2e}")
    # the fastest run is the least disturbed by other work on a shared machine
    print(
        f"masked / dense per step: median {masked_step / dense_step:.3f}, "
        f"fastest runs {min(masked) / min(dense):.3f} (target ≤ 1.1)"
    )
    print(
        f"torch.nn.utils.prune / dense per step: median {torch_step / dense_step:.3f}, "
        f"fastest runs {min(torch_masked) / min(dense):.3f}"
    )
    print(
        f"ours / torch per step: median {masked_step / torch_step:.3f}, "
        f"fastest runs {min(masked) / min(torch_masked):.3f} (target ≤ 1.0)"
    )
    growth(args.growth_rounds, args.examples)


def growth(rounds_list: list[int], examples: int) -> None:
    """Wall time of a whole IMP run against its number of rounds."""
    print(f"growth with IMP rounds (w2s prune, 1 seed, {examples} training examples):")
    first = None
    for rounds in rounds_list:
        config = PruneConfig(
            seeds=[0],
            train_examples=examples,
            test_examples=160,
            lottery=LotterySettings(
                rounds=rounds, fraction=0.2, exclude=[r"^head\.", r"\.pooler\."], baselines=[]
            ),
            show_progress=False,
        )
        with tempfile.TemporaryDirectory() as runs_dir:
            started = time.perf_counter()
            Prune(config, runs_dir).run()
            seconds = time.perf_counter() - started
        first = first or (rounds, seconds)
        print(
            f"  {rounds} rounds: {seconds:6.1f} s (×{seconds / first[1]:.2f} for "
            f"×{rounds / first[0]:.0f} rounds; {seconds / (rounds + 1):.1f} s per training, "
            "the dense one included)"
        )


if __name__ == "__main__":
    main()
