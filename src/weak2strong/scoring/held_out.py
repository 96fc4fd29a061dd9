"""Held-out reward evaluation: the one way every command that samples and scores measures.

Each held-out prompt has `samples_per_prompt` responses side by side. Every response is
scored by the gold scorer, a prompt's scores are averaged first, and the intervals come
from a paired bootstrap over prompts (never over samples: a prompt's samples are not
independent items).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weak2strong.errors import W2SError
from weak2strong.scoring.metrics import paired_bootstrap_means
from weak2strong.scoring.scorers import (
    Scorer,
    ScorerConfig,
    load_scorer,
    scorer_higher_is_better,
)


@dataclass
class HeldOutRewards:
    scorer_config: ScorerConfig
    prompts: Sequence[str]
    samples_per_prompt: int = 1
    # a text-only scorer reads prompt + response (a review's sentiment), or the response
    # alone (a continuation's toxicity)
    reads_prompt: bool = True
    show_progress: bool = True
    # a command that maximises the reward names itself: a lower-is-better scorer is refused
    maximised_by: str | None = None

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 1:
            raise W2SError("samples_per_prompt must be at least 1")
        if self.maximised_by is not None and not self.higher_is_better:
            raise W2SError(
                f"scorer '{self.scorer_config.name}' is lower-is-better; "
                f"{self.maximised_by} maximises a reward"
            )

    @property
    def higher_is_better(self) -> bool:
        return scorer_higher_is_better(self.scorer_config)

    @functools.cached_property
    def scorer(self) -> Scorer:
        """Loaded on first use: a run whose scores are cached loads no scorer."""
        return load_scorer(self.scorer_config, show_progress=self.show_progress)

    def repeated_prompts(self) -> list[str]:
        """Each prompt `samples_per_prompt` times in a row, as its responses are laid out."""
        return [prompt for prompt in self.prompts for _ in range(self.samples_per_prompt)]

    def scores(self, responses: Sequence[str]) -> list[float]:
        """One score per response."""
        if not self.reads_prompt:
            return np.asarray(self.scorer.score(list(responses)), dtype=np.float64).tolist()
        texts = [p + r for p, r in zip(self.repeated_prompts(), responses, strict=True)]
        return np.asarray(self.scorer.score(texts), dtype=np.float64).tolist()

    def scores_of(self, responses: Mapping[str, Sequence[str]]) -> dict[str, list[float]]:
        """Scores of each model's (or method's) responses, by its name."""
        return {name: self.scores(texts) for name, texts in responses.items()}

    def per_prompt(self, scores: Sequence[float]) -> np.ndarray:
        """[prompts, samples_per_prompt]."""
        return np.asarray(scores, dtype=np.float64).reshape(-1, self.samples_per_prompt)

    def prompt_means(self, responses: Sequence[str]) -> list[float]:
        """The mean score of each prompt's responses."""
        return [float(value) for value in self.per_prompt(self.scores(responses)).mean(1)]

    def table(
        self,
        per_prompt: Mapping[str, Sequence[float] | np.ndarray],
        *,
        samples: int,
        seed: int,
        weak: str | None = None,
        ceiling: str | None = None,
        baseline: str | None = None,
        higher_is_better: bool | None = None,
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """Means with paired-bootstrap intervals over prompts: one value per prompt and
        output; PGR with `weak` and `ceiling`, differences from `baseline`."""
        return paired_bootstrap_means(
            {name: np.asarray(values, dtype=np.float64) for name, values in per_prompt.items()},
            weak=weak,
            ceiling=ceiling,
            baseline=baseline,
            higher_is_better=self.higher_is_better
            if higher_is_better is None
            else higher_is_better,
            samples=samples,
            seed=seed,
        )
