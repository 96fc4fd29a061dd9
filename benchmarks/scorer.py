"""How far the embedded IMDB data takes the gold sentiment scorer: accuracy and AUROC by
encoder layer and by training reviews, from one feature pass.

    python benchmarks/scorer.py [--max-length 256] [--train 12000] [--heldout 1000]

The scorer's own data selection (IMDB split with seed 0, train reviews outside the prompt
pool, label-stratified caps, the same held-out test reviews) and its head (standardised
features, logistic regression), with every layer's mean-pooled features kept, so layers,
training sizes and the middle + last layers side by side are compared on identical data.
The README quotes `--max-length 256 --train 12000` and `--max-length 512 --train 4000`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from weak2strong.data import TaskConfig, load_task
from weak2strong.data.base import cap_per_split
from weak2strong.data.prompts import reserved_for_prompts
from weak2strong.models.features import pool
from weak2strong.models.loading import load_encoder
from weak2strong.scoring.classifier import SCORER_SEED, fit_head
from weak2strong.scoring.metrics import compute_metrics


@torch.no_grad()
def every_layer(model, tokenizer, texts: list[str], max_length: int) -> torch.Tensor:
    """[texts, layers + 1, hidden]: mean-pooled hidden states, longest texts batched first."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    pooled: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    for start in range(0, len(texts), 32):
        batch_rows = order[start : start + 32]
        batch = tokenizer(
            [texts[i] for i in batch_rows],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=max_length,
        )
        hidden = model(**batch, output_hidden_states=True).hidden_states
        layers = torch.stack([pool(h, batch["attention_mask"], "mean") for h in hidden], 1)
        for row, index in enumerate(batch_rows):
            pooled[index] = layers[row]
    return torch.stack(pooled)


def head_quality(
    train: torch.Tensor, test: torch.Tensor, train_labels: np.ndarray, test_labels: np.ndarray
) -> tuple[float, float]:
    """Accuracy and AUROC of the scorer's own head trained on `train`, on `test`."""
    _, probabilities = fit_head(train, train_labels)
    metrics = compute_metrics(test_labels, probabilities(test), ("accuracy", "auroc"))
    return metrics["accuracy"], metrics["auroc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--encoder", default="minilm-l6")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--train", type=int, default=12000)
    parser.add_argument("--heldout", type=int, default=1000)
    args = parser.parse_args()

    data = load_task(TaskConfig(name="imdb"), seed=SCORER_SEED)
    positive = data.label_names.index("positive")
    reserved = reserved_for_prompts(data)
    outside_pool = [e for e in data.split("train") if e.text not in reserved]
    train = cap_per_split(outside_pool, args.train, SCORER_SEED)
    test = cap_per_split(data.split("test"), args.heldout, SCORER_SEED)
    model, tokenizer = load_encoder(args.encoder)
    model.eval()
    started = time.perf_counter()
    train_features = every_layer(model, tokenizer, [e.text for e in train], args.max_length)
    test_features = every_layer(model, tokenizer, [e.text for e in test], args.max_length)
    print(
        f"{args.encoder}, max_length {args.max_length}: {len(train)} train reviews (of "
        f"{len(outside_pool)} outside the prompt pool), {len(test)} held out; features "
        f"{time.perf_counter() - started:.0f} s"
    )
    train_labels = np.array([e.label == positive for e in train], dtype=int)
    test_labels = np.array([e.label == positive for e in test], dtype=int)
    layers = train_features.shape[1]
    for layer in range(1, layers):
        accuracy, auroc = head_quality(
            train_features[:, layer], test_features[:, layer],
            train_labels, test_labels,
        )  # fmt: skip
        print(f"  layer {layer}: accuracy {accuracy:.3f}, AUROC {auroc:.3f}")
    middle = layers // 2

    def side_by_side(features: torch.Tensor) -> torch.Tensor:
        return torch.cat([features[:, middle], features[:, -1]], 1)

    accuracy, auroc = head_quality(
        side_by_side(train_features), side_by_side(test_features), train_labels, test_labels
    )
    print(
        f"  layers {middle} + {layers - 1} side by side: accuracy {accuracy:.3f}, AUROC {auroc:.3f}"
    )
    position = {id(example): index for index, example in enumerate(train)}
    for size in (1000, 2000, 4000, 8000, 12000):
        if size > len(train):
            break
        rows = [position[id(example)] for example in cap_per_split(train, size, SCORER_SEED)]
        accuracy, auroc = head_quality(
            train_features[rows, -1], test_features[:, -1],
            train_labels[rows], test_labels,
        )  # fmt: skip
        print(f"  last layer, {size} train reviews: accuracy {accuracy:.3f}, AUROC {auroc:.3f}")


if __name__ == "__main__":
    main()
