"""Perplexity of a causal language model on held-out text, in fixed-length token windows.

Texts are tokenised, joined by the end-of-sequence token and cut into consecutive windows
of `length` tokens (as the pruning papers evaluate WikiText-2); a window's loss is its mean
next-token negative log-likelihood. Windows hold the same number of tokens, so the mean
over windows is the mean over tokens, and perplexity = exp(mean loss). Intervals come from
a bootstrap over windows; two models on the same windows are compared by the paired
difference of their losses (log-perplexity; exp of it is the ratio of perplexities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from weak2strong import distributed
from weak2strong.errors import W2SError


def token_windows(tokenizer: Any, texts: Sequence[str], length: int, count: int) -> torch.Tensor:
    """The first `count` windows of `length` tokens of the joined texts [count, length]."""
    if length < 2:
        raise W2SError("a perplexity window needs at least 2 tokens")
    separator = tokenizer.eos_token_id
    tokens: list[int] = []
    for text in texts:
        tokens += tokenizer(text, add_special_tokens=False)["input_ids"]
        if separator is not None:
            tokens.append(separator)
        if len(tokens) >= length * count:
            break
    if len(tokens) < length * count:
        raise W2SError(
            f"{len(tokens)} tokens of text make fewer than {count} windows of {length} tokens"
        )
    return torch.tensor(tokens[: length * count]).reshape(count, length)


@torch.no_grad()
def window_losses(
    model: nn.Module,
    windows: torch.Tensor,
    batch_size: int = 4,
    *,
    description: str = "perplexity",
    show_progress: bool = False,
) -> np.ndarray:
    """Each window's mean next-token loss (nats), batches sharded over processes."""
    model.eval()
    device = next(model.parameters()).device

    def losses(indices: Sequence[int]) -> torch.Tensor:
        batch = windows[list(indices)].to(device)
        logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
        per_token = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="none"
        )
        return per_token.reshape(len(indices), -1).mean(1)

    return (
        distributed.map_rows(
            losses, len(windows), batch_size, description=description, show_progress=show_progress
        )
        .double()
        .numpy()
    )


def perplexity_of(interval: dict[str, Any]) -> dict[str, Any]:
    """A mean-loss interval as perplexity (exp is monotone: the bounds map to the bounds)."""
    mapped = dict(interval)
    for key in ("value", "low", "high"):
        if mapped.get(key) is not None:
            mapped[key] = float(np.exp(mapped[key]))
    return mapped
