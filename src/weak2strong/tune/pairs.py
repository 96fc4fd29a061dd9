"""`w2s tune`'s training and held-out data: preference pairs and SFT examples.

Pairs come from real reviews with human labels (`reviews`), two sampled completions per
prompt ranked by a labeler (`sampled`), a file or dataset (`file`), or a stronger model's
answers over the base model's (`teacher`); see `weak2strong.tune.tuning`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from weak2strong.data.preferences import PreferencePair, read_preference_pairs
from weak2strong.data.prompts import Prompt, imdb_prompt_pool, imdb_split, load_prompts
from weak2strong.data.tasks import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm, load_tokenizer
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import sample_completions
from weak2strong.scoring.held_out import HeldOutRewards
from weak2strong.scoring.lexicon import lexicon_name, lexicon_scores
from weak2strong.tune.config import TuneConfig


def sampled_prompts(cfg: TuneConfig) -> list[Prompt]:
    """The prompts whose two samples make a pair."""
    return load_prompts(
        cfg.prompts,
        cfg.train_prompts,
        1,
        seed=cfg.seed,
        prompt_words=cfg.prompt_words,
        options=cfg.prompt_options,
    ).train


def teacher_prompts(cfg: TuneConfig) -> tuple[list[Prompt], list[Prompt]]:
    """preferences=teacher: `train_prompts` training prompts and `eval_pairs` held-out ones."""
    split = load_prompts(
        cfg.prompts,
        cfg.train_prompts,
        cfg.eval_pairs,
        seed=cfg.seed,
        prompt_words=cfg.prompt_words,
        options=cfg.prompt_options,
    )
    return split.train, split.test


def answers(
    cfg: TuneConfig, model_name: str, prompt_format: PromptFormat, prompts: list[Prompt]
) -> list[str]:
    model, tokenizer = load_causal_lm(model_name)
    prompt_format.check(model_name, tokenizer)
    return sample_completions(
        model,
        tokenizer,
        prompt_format.texts(prompts, tokenizer),
        cfg.sampling,
        seed=cfg.seed,
        description=f"answers of {model_name}",
        show_progress=cfg.show_progress,
        add_special_tokens=not prompt_format.is_chat,
    )


def teacher_pairs(cfg: TuneConfig, prompts: list[Prompt]) -> dict[str, list[str]]:
    """The teacher's answer chosen over the base model's: distillation as a preference, as
    UltraFeedback's binarized pairs mostly prefer the strongest model's answer."""
    chosen = answers(cfg, cfg.teacher, PromptFormat("chat", cfg.system), prompts)
    rejected = answers(cfg, cfg.base, cfg.prompt_format(), prompts)
    pairs = [PreferencePair(p, c, r) for p, c, r in zip(prompts, chosen, rejected, strict=True)]
    return formatted(cfg, pairs)


def sampled_pairs(cfg: TuneConfig) -> dict[str, list[str]]:
    """Two sampled completions of the base model per prompt, ranked by the labeler."""
    prompts = sampled_prompts(cfg)
    model, tokenizer = load_causal_lm(cfg.base)
    prompt_format = cfg.prompt_format()
    prompt_format.check(cfg.base, tokenizer)
    texts = prompt_format.texts(prompts, tokenizer)
    completions = sample_completions(
        model,
        tokenizer,
        [text for text in texts for _ in range(2)],
        cfg.sampling,
        seed=cfg.seed,
        description="preference candidates",
        show_progress=cfg.show_progress,
        add_special_tokens=not prompt_format.is_chat,
    )
    labeler = HeldOutRewards(cfg.labeler, prompts, 2, show_progress=cfg.show_progress)
    scores = labeler.per_prompt(labeler.scores(completions))
    if not labeler.higher_is_better:
        scores = -scores
    pairs: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for row in range(len(prompts)):
        first, second = completions[2 * row], completions[2 * row + 1]
        if np.isclose(scores[row, 0], scores[row, 1]):
            continue  # a tie says nothing about the preference
        chosen, rejected = (first, second) if scores[row, 0] > scores[row, 1] else (second, first)
        pairs["prompt"].append(texts[row])
        pairs["chosen"].append(chosen)
        pairs["rejected"].append(rejected)
    if len(pairs["prompt"]) < 2:
        raise W2SError("the labeler tied on almost every pair: no preferences to train on")
    return pairs


def reviews_by_class(cfg: TuneConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(opening, continuation) of shuffled target-class and other-class train reviews."""
    data = imdb_split() if cfg.prompts == "imdb" else load_task(TaskConfig(name=cfg.prompts))
    if cfg.target_label not in data.label_names:
        raise W2SError(
            f"target_label '{cfg.target_label}' is not a label of {cfg.prompts} "
            f"({', '.join(data.label_names)})"
        )
    target = data.label_names.index(cfg.target_label)
    rng = np.random.default_rng(cfg.seed)
    end = cfg.prompt_words + cfg.completion_words
    split: tuple[list[tuple[str, str]], list[tuple[str, str]]] = ([], [])
    # IMDB: only the reviews reserved for prompts, never the gold scorer's training data
    pool = imdb_prompt_pool(data) if cfg.prompts == "imdb" else data.split("train")
    texts, labels = [e.text for e in pool], [e.label for e in pool]
    for index in rng.permutation(len(texts)):
        words = texts[int(index)].split()
        if len(words) < end:
            continue
        opening = " ".join(words[: cfg.prompt_words])
        continuation = " " + " ".join(words[cfg.prompt_words : end])
        split[0 if labels[int(index)] == target else 1].append((opening, continuation))
    return split


def split_preference_data(cfg: TuneConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """preferences=file: `train_prompts` training pairs and `eval_pairs` held-out ones, by seed."""
    if not cfg.preference_data:
        raise W2SError("preferences=file needs preference_data (a file or dataset)")
    pairs = read_preference_pairs(cfg.preference_data, cfg.preference_split)
    needed = cfg.train_prompts + cfg.eval_pairs
    if len(pairs) < needed:
        raise W2SError(
            f"{cfg.preference_data} has {len(pairs)} pairs; train_prompts + eval_pairs "
            f"asks for {needed}"
        )
    order = np.random.default_rng(cfg.seed).permutation(len(pairs))
    return (
        [pairs[i] for i in order[: cfg.train_prompts]],
        [pairs[i] for i in order[cfg.train_prompts : needed]],
    )


def formatted(cfg: TuneConfig, pairs: list[PreferencePair]) -> dict[str, list[str]]:
    """Pairs with each prompt in the base model's format, as DPO and the evaluation read them."""
    tokenizer = load_tokenizer(cfg.base)
    prompt_format = cfg.prompt_format()
    prompt_format.check(cfg.base, tokenizer)
    return {
        "prompt": [prompt_format.text(pair.prompt, tokenizer) for pair in pairs],
        "chosen": [pair.chosen for pair in pairs],
        "rejected": [pair.rejected for pair in pairs],
    }


def file_pairs(cfg: TuneConfig) -> dict[str, list[str]]:
    return formatted(cfg, split_preference_data(cfg)[0])


def training_teacher_pairs(cfg: TuneConfig) -> dict[str, list[str]]:
    return teacher_pairs(cfg, teacher_prompts(cfg)[0])


def sft_examples(cfg: TuneConfig) -> dict[str, list[str]]:
    if cfg.preferences in ("file", "teacher"):  # the chosen responses are the demonstrations
        pairs = PAIR_SOURCES[cfg.preferences](cfg)
        return {"prompt": pairs["prompt"], "completion": pairs["chosen"]}
    target, _ = reviews_by_class(cfg)
    chosen = target[: cfg.train_prompts]
    return {"prompt": [p for p, _ in chosen], "completion": [c for _, c in chosen]}


def review_pairs(cfg: TuneConfig) -> dict[str, list[str]]:
    if not cfg.review_filter:
        return pairs_from_reviews(cfg, cfg.train_prompts, start=0)
    target, other = reviews_by_class(cfg)
    # the held-out pairs' reviews (see held_out_pairs) are never training candidates
    held_out = range(cfg.train_prompts, cfg.train_prompts + cfg.eval_pairs)
    kept = [
        _agreeing(cfg, [row for i, row in enumerate(rows) if i not in held_out], sign)
        for rows, sign in ((target, 1.0), (other, -1.0))
    ]
    return _pairs_of(kept[0], kept[1], cfg.train_prompts, start=0)


def review_filter_lexicon(cfg: TuneConfig) -> str:
    """The lexicon `review_filter` names, or one error that says what it takes."""
    name = lexicon_name(cfg.review_filter)
    if name is None:
        raise W2SError(
            f"review_filter '{cfg.review_filter}' is not a lexicon (lexicon:vader, lexicon:afinn)"
        )
    return name


def _agreeing(cfg: TuneConfig, rows: list[tuple[str, str]], sign: float) -> list[tuple[str, str]]:
    """The (opening, continuation) rows whose continuation the lexicon reads with the sign
    of their class (+: the target label's)."""
    name = review_filter_lexicon(cfg)
    polarity = lexicon_scores(name, [continuation for _, continuation in rows])
    return [row for row, value in zip(rows, polarity, strict=True) if sign * value > 0]


# where DPO's training pairs come from, by `preferences`
PAIR_SOURCES: dict[str, Callable[[TuneConfig], dict[str, list[str]]]] = {
    "reviews": review_pairs,
    "sampled": sampled_pairs,
    "file": file_pairs,
    "teacher": training_teacher_pairs,
}


def held_out_pairs(cfg: TuneConfig) -> dict[str, list[str]]:
    """Pairs no training pair used: from the preference data, or from reviews (both
    methods train on fewer)."""
    if cfg.preferences == "file":
        return formatted(cfg, split_preference_data(cfg)[1])
    if cfg.preferences == "teacher":
        return teacher_pairs(cfg, teacher_prompts(cfg)[1])
    return pairs_from_reviews(cfg, cfg.eval_pairs, start=cfg.train_prompts)


def pairs_from_reviews(cfg: TuneConfig, count: int, start: int) -> dict[str, list[str]]:
    """`count` pairs from the shuffled reviews of each class, from position `start` on."""
    target, other = reviews_by_class(cfg)
    return _pairs_of(target, other, count, start)


def _pairs_of(
    target: list[tuple[str, str]], other: list[tuple[str, str]], count: int, start: int
) -> dict[str, list[str]]:
    """Half the pairs open a target-class review, half another; the chosen continuation is
    always the target class's, so a review's own continuation is as often chosen as not."""
    half = count // 2
    if min(len(target), len(other)) < start + 2 * half:
        raise W2SError(f"not enough reviews for {count} preference pairs")
    pairs: dict[str, list[str]] = {"prompt": [], "chosen": [], "rejected": []}
    for i in range(start, start + half):
        (opening, own), (_, foreign) = target[i], other[half + i]
        pairs["prompt"].append(opening)
        pairs["chosen"].append(own)
        pairs["rejected"].append(foreign)
        (opening, own), (_, foreign) = other[i], target[half + i]
        pairs["prompt"].append(opening)
        pairs["chosen"].append(foreign)
        pairs["rejected"].append(own)
    return pairs
