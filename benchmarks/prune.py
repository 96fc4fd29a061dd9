"""Masked training overhead: time per step with pruning masks over dense training.

    python benchmarks/prune.py [--examples 320] [--repeats 5] [--sparsity 0.5]

On `w2s prune`'s default student (MiniLM-L6's first two layers + head, IMDB, 48 tokens,
batch 32), the same training run is timed dense and under masks (gradient hooks that zero
pruned gradients, plus re-zeroing the pruned weights after every optimiser step), in
alternation so that drifts in machine speed hit both. Target: masked / dense ≤ 1.1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from weak2strong.data import TaskConfig, load_task
from weak2strong.prune import Masks, masked_gradients, prunable_weights, prune
from weak2strong.prune.experiment import StudentSettings, TextClassifierProblem


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sparsity", type=float, default=0.5)
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

    def masked_run() -> float:
        model = problem.build(0)
        started = time.perf_counter()
        masks.apply(model)
        with masked_gradients(model, masks):
            problem.train(model, lambda step: masks.apply(model), 0)
        return (time.perf_counter() - started) / steps

    dense_run()  # warm-up: first-call allocations and thread pools
    dense, masked = [], []
    for _ in range(args.repeats):
        dense.append(dense_run())
        masked.append(masked_run())
    dense_step, masked_step = statistics.median(dense), statistics.median(masked)
    print(
        f"{steps} steps of batch {settings.batch_size}, {settings.max_length} tokens, "
        f"{masks.sparsity():.0%} of {masks.total():,} prunable weights masked"
    )
    print(f"dense  {dense_step * 1000:.0f} ms/step (runs: {', '.join(f'{d:.3f}' for d in dense)})")
    print(
        f"masked {masked_step * 1000:.0f} ms/step (runs: {', '.join(f'{m:.3f}' for m in masked)})"
    )
    # the fastest run is the least disturbed by other work on a shared machine
    print(
        f"masked / dense per step: median {masked_step / dense_step:.3f}, "
        f"fastest runs {min(masked) / min(dense):.3f} (target ≤ 1.1)"
    )


if __name__ == "__main__":
    main()
