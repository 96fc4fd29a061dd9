"""The small tuned/untuned model pair and its incremental log-ratio scorer.

A candidate response y to prompt x scores log π_tuned(y|x) − log π_untuned(y|x), summed over
the whole response so far (no length normalisation), each model reading x through its own
template and y re-tokenised from text, with the model's EOS appended once the candidate has
finished. The scorer keeps a KV cache per candidate, so a chunk costs only its new tokens;
when re-tokenising the longer text changes the last tokens of the parent (a word split
differently), only the changed suffix is recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from weak2strong.data.prompt_files import Prompt
from weak2strong.search.lm import CachedRows, LanguageModel


@dataclass
class ModelPair:
    tuned: LanguageModel
    untuned: LanguageModel

    @property
    def members(self) -> tuple[LanguageModel, LanguageModel]:
        return self.tuned, self.untuned


def common_prefix_length(first: Sequence[int], second: Sequence[int]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


class ResponseLogProb:
    """log π(response | templated prompt) for a batch of candidates of one model, incremental."""

    def __init__(self, lm: LanguageModel) -> None:
        self.lm = lm
        self.rows = CachedRows(lm)
        self.tokens: list[list[int]] = []  # per row, the response tokens in the cache
        self.token_logprobs: list[list[float]] = []
        self.prompt_last: list[int] = []  # per row, the last token of its templated prompt

    def start(self, prompts: Sequence[Prompt]) -> None:
        prompt_ids = [self.lm.prompt_ids(prompt) for prompt in prompts]
        self.rows.prefill(prompt_ids)
        self.tokens = [[] for _ in prompts]
        self.token_logprobs = [[] for _ in prompts]
        self.prompt_last = [ids[-1] for ids in prompt_ids]

    def update(
        self, parents: Sequence[int], texts: Sequence[str], finished: Sequence[bool]
    ) -> np.ndarray:
        """Rows become children of `parents` with response `texts`; returns the summed log-probs."""
        self.rows.select(parents)
        self.tokens = [list(self.tokens[p]) for p in parents]
        self.token_logprobs = [list(self.token_logprobs[p]) for p in parents]
        self.prompt_last = [self.prompt_last[p] for p in parents]
        feeds: list[list[int]] = []
        plans: list[tuple[list[int], bool]] = []
        for row, (text, done) in enumerate(zip(texts, finished, strict=True)):
            target = self.lm.response_ids(text) + ([self.lm.eos_id] if done else [])
            keep = common_prefix_length(self.tokens[row], target)
            stale = len(self.tokens[row]) - keep
            new = target[keep:]
            refeed, anchor = False, 0
            if stale:
                # The row's next-token logits were computed after a token now dropped: drop
                # one more (the anchor) and feed it again to get them back, whether or not
                # new tokens follow (a strict prefix of the parent has none).
                self.rows.drop_last(row, stale + 1)
                anchor = self.tokens[row][keep - 1] if keep else self.prompt_last[row]
                refeed = True
            del self.tokens[row][keep:]
            del self.token_logprobs[row][keep:]
            feeds.append([anchor, *new] if refeed else new)
            plans.append((new, refeed))
        before = self.rows.last_logits.clone()
        outputs = self.rows.append(feeds)
        for row, ((new, refeed), logits) in enumerate(zip(plans, outputs, strict=True)):
            if not new:
                continue
            predictors = logits[:-1] if refeed else torch.cat([before[row : row + 1], logits[:-1]])
            log_probs = torch.log_softmax(predictors.float(), dim=-1)
            picked = log_probs[torch.arange(len(new)), torch.tensor(new, device=log_probs.device)]
            self.tokens[row] += new
            self.token_logprobs[row] += picked.tolist()
        return np.array([sum(values) for values in self.token_logprobs], dtype=np.float64)


class PairScorer:
    """log π_tuned(y|x) − log π_untuned(y|x) for candidate responses, with per-row KV caches."""

    def __init__(self, pair: ModelPair) -> None:
        self.pair = pair
        self.tuned = ResponseLogProb(pair.tuned)
        self.untuned = ResponseLogProb(pair.untuned)

    def start(self, prompts: Sequence[Prompt]) -> None:
        self.tuned.start(prompts)
        self.untuned.start(prompts)

    def update(
        self, parents: Sequence[int], texts: Sequence[str], finished: Sequence[bool]
    ) -> np.ndarray:
        return self.tuned.update(parents, texts, finished) - self.untuned.update(
            parents, texts, finished
        )
