"""Decoders over a large model steered by a small pair: sampling, best-of-N, CBS and EFT.

Every decoder takes a batch of prompts (with their indices in the whole run) and returns
one response per prompt. Every sampled sequence draws from its own seed (see
`samplers.sequence_seeds`), so best-of-N and CBS with W=1, K=N, L=∞ sample the very same
candidates and pick the same response, and no result depends on how prompts are batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import CachedRows, LanguageModel
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.samplers import Sampler, row_generators, sequence_seeds, token_sampler
from weak2strong.settings import setting


@dataclass
class Decoded:
    texts: list[str]
    finished: list[bool]
    pair_scores: list[float | None]  # the pair's log-ratio of the chosen response, if scored
    sampled_tokens: int  # large-model tokens sampled for the whole batch
    # best-of-N only: every candidate of each prompt, in seed order, and its pair score
    candidates: list[list[str]] | None = None
    candidate_scores: list[list[float]] | None = None
    candidate_finished: list[list[bool]] | None = None


def best_of_first(candidate_scores: Sequence[Sequence[float]], n: int) -> list[int]:
    """Per prompt, the index of best-of-n's choice among best-of-N's candidates (n ≤ N).

    Candidate j of a prompt draws from the same seed whatever N is, so best-of-n is exactly
    the best of best-of-N's first n candidates (ties go to the first, as in `best_of_n`).
    """
    if n < 1 or any(len(scores) < n for scores in candidate_scores):
        raise W2SError(f"best-of-{n} needs at least {n} candidates per prompt")
    return [int(np.argmax(scores[:n])) for scores in candidate_scores]


def sample(
    sampler: Sampler,
    prompts: Sequence[Prompt],
    new_tokens: int,
    seed: int,
    prompt_ids: Sequence[int] | None = None,
) -> Decoded:
    sampler.start(prompts, seed, prompt_ids)
    sampler.extend(range(len(prompts)), new_tokens)
    return Decoded(
        sampler.texts(), list(sampler.finished), [None] * len(prompts), sampler.sampled_tokens
    )


def best_of_n(
    sampler: Sampler,
    scorer: PairScorer,
    prompts: Sequence[Prompt],
    n: int,
    new_tokens: int,
    seed: int,
    prompt_ids: Sequence[int] | None = None,
) -> Decoded:
    """N full responses per prompt; keep the one with the highest pair log-ratio."""
    if n < 1:
        raise W2SError("best-of-N needs N ≥ 1")
    sampler.start(prompts, seed, prompt_ids)
    fan_out = [p for p in range(len(prompts)) for _ in range(n)]
    sampler.extend(fan_out, new_tokens)
    scorer.start(prompts)
    scores = scorer.update(fan_out, sampler.texts(), sampler.finished)
    all_texts = sampler.texts()
    rows = [range(p * n, (p + 1) * n) for p in range(len(prompts))]
    candidate_scores = [[float(scores[row]) for row in group] for group in rows]
    chosen = best_of_first(candidate_scores, n)
    best = [group[index] for group, index in zip(rows, chosen, strict=True)]
    return Decoded(
        [all_texts[row] for row in best],
        [sampler.finished[row] for row in best],
        [float(scores[row]) for row in best],
        sampler.sampled_tokens,
        candidates=[[all_texts[row] for row in group] for group in rows],
        candidate_scores=candidate_scores,
        candidate_finished=[[sampler.finished[row] for row in group] for group in rows],
    )


@dataclass
class CBSSettings:
    width: int = setting(4, help="W: beams kept per prompt")
    successors: int = setting(4, help="K: continuations sampled per beam")
    chunk_length: int = setting(
        5, help="L: tokens per continuation; 0: the whole response (CBS(1, N, 0) is best-of-N)"
    )

    def validate(self) -> None:
        if self.width < 1 or self.successors < 1:
            raise W2SError(f"CBS needs W ≥ 1 and K ≥ 1 (got W={self.width}, K={self.successors})")
        if self.chunk_length < 0:
            raise W2SError("CBS chunk length L must be ≥ 1, or 0 for the whole response")


def curve_cbs_settings(n: int, chunk_length: int) -> CBSSettings:
    """CBS with W·K = n: W the largest power of two ≤ √n that divides n, K = n / W."""
    width = 1
    while (width * 2) ** 2 <= n and n % (width * 2) == 0:
        width *= 2
    return CBSSettings(width=width, successors=n // width, chunk_length=chunk_length)


def chunk_beam_search(
    sampler: Sampler,
    scorer: PairScorer,
    prompts: Sequence[Prompt],
    settings: CBSSettings,
    new_tokens: int,
    seed: int,
    prompt_ids: Sequence[int] | None = None,
) -> Decoded:
    """Chunk-level beam search (W, K, L).

    Step 1 samples W·K continuations of each prompt; every later step extends each
    unfinished beam K times by L tokens. Candidates are scored by the pair's log-ratio over
    the whole response so far and the top W per prompt are kept. A finished beam is carried
    over once, not extended, and keeps its score; the search ends when every beam has
    finished or the responses reach `new_tokens`.
    """
    settings.validate()
    chunk = settings.chunk_length or new_tokens
    width, successors = settings.width, settings.successors
    sampler.start(prompts, seed, prompt_ids)
    scorer.start(prompts)
    # rows of the first step: W·K children of each prompt row
    parents = [p for p in range(len(prompts)) for _ in range(width * successors)]
    owners = list(parents)  # the prompt each row belongs to
    generated = 0
    beams: list[list[int]] = []
    scores = np.zeros(0)
    while True:
        sampler.extend(parents, min(chunk, new_tokens - generated))
        generated += min(chunk, new_tokens - generated)
        scores = scorer.update(parents, sampler.texts(), sampler.finished)
        beams = []
        for p in range(len(prompts)):
            rows = [row for row, owner in enumerate(owners) if owner == p]
            ranked = sorted(rows, key=lambda row: -scores[row])  # stable: ties keep order
            beams.append(ranked[:width])
        if generated >= new_tokens or all(sampler.finished[r] for b in beams for r in b):
            break
        parents, owners = [], []
        for p, beam in enumerate(beams):
            for row in beam:
                copies = 1 if sampler.finished[row] else successors
                parents += [row] * copies
                owners += [p] * copies
    texts = sampler.texts()
    best = [beam[0] for beam in beams]
    return Decoded(
        [texts[r] for r in best],
        [sampler.finished[r] for r in best],
        [float(scores[r]) for r in best],
        sampler.sampled_tokens,
    )


def check_shared_vocabulary(large: LanguageModel, pair: ModelPair) -> int:
    """EFT adds logits token by token: every model must use the same vocabulary."""
    check_tokenizers_share_vocabulary(
        {lm.name: lm.tokenizer for lm in (large, *pair.members)}, large.name
    )
    return len(large.tokenizer)


def check_tokenizers_share_vocabulary(tokenizers: dict[str, Any], large: str) -> None:
    """The tokenizers (by model name) all map tokens to the same ids as `large`'s."""
    reference = tokenizers[large].get_vocab()
    for name, tokenizer in tokenizers.items():
        if tokenizer.get_vocab() != reference:
            raise W2SError(
                f"EFT needs one vocabulary: '{name}' and '{large}' tokenize "
                "differently (use CBS or best-of-N, which join models through text)"
            )


@torch.no_grad()
def emulated_fine_tuning(
    large: LanguageModel,
    pair: ModelPair,
    prompts: Sequence[Prompt],
    beta: float,
    settings: SamplingConfig,
    new_tokens: int,
    seed: int,
    prompt_ids: Sequence[int] | None = None,
) -> Decoded:
    """Sample from softmax(base + β·(tuned − untuned)) token by token, one cache per model.

    Each prompt's response draws from the seed plain sampling gives it, so β = 0 is exactly
    the base model's sample.
    """
    vocabulary = check_shared_vocabulary(large, pair)
    settings.validate()
    prompt_of = list(prompt_ids) if prompt_ids is not None else list(range(len(prompts)))
    generators = row_generators(
        sequence_seeds(seed, prompt_of, range(len(prompts)), step=0), large.device
    )
    draw = token_sampler(settings)
    streams = [CachedRows(lm) for lm in (large, *pair.members)]
    for stream in streams:
        stream.prefill([stream.lm.prompt_ids(prompt) for prompt in prompts])
    responses: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    eos = large.eos_ids
    sampled = 0
    for _ in range(new_tokens):
        active = [row for row, done in enumerate(finished) if not done]
        if not active:
            break
        base, tuned, untuned = (
            s.last_logits[active, :vocabulary].to(large.device) for s in streams
        )
        tokens = draw(base + beta * (tuned - untuned), [generators[row] for row in active]).tolist()
        feeds: list[list[int]] = [[] for _ in prompts]
        for row, token in zip(active, tokens, strict=True):
            sampled += 1
            if token in eos:
                finished[row] = True
            else:
                responses[row].append(token)
                feeds[row] = [token]
        for stream in streams:
            stream.append(feeds)
    texts = [large.tokenizer.decode(r, skip_special_tokens=True) for r in responses]
    return Decoded(texts, finished, [None] * len(prompts), sampled)
