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

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.runs import Run
from weak2strong.runs.exports import export_annotations
from weak2strong.runs.typed import from_json, to_json
from weak2strong.scoring.base import ResponseScorer
from weak2strong.scoring.judge import JudgeScorer
from weak2strong.scoring.metrics import paired_bootstrap_means
from weak2strong.scoring.scorers import (
    Scorer,
    ScorerConfig,
    load_scorer,
    scorer_higher_is_better,
)
from weak2strong.scoring.winrate import WinRates, win_rates


@dataclass
class HeldOutRewards:
    scorer_config: ScorerConfig
    prompts: Sequence[Prompt]
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

    def repeated_prompts(self) -> list[Prompt]:
        """Each prompt `samples_per_prompt` times in a row, as its responses are laid out."""
        return [prompt for prompt in self.prompts for _ in range(self.samples_per_prompt)]

    def scores(self, responses: Sequence[str]) -> list[float]:
        """One score per response."""
        if not self.reads_prompt:
            return np.asarray(self.scorer.score(list(responses)), dtype=np.float64).tolist()
        prompts = self.repeated_prompts()
        if len(prompts) != len(responses):
            raise ValueError(f"{len(responses)} responses for {len(prompts)} prompt slots")
        if isinstance(self.scorer, ResponseScorer):
            values = self.scorer.score_responses(prompts, list(responses))
        else:
            values = self.scorer.score(
                [p.text + r for p, r in zip(prompts, responses, strict=True)]
            )
        return np.asarray(values, dtype=np.float64).tolist()

    def scores_of(self, responses: Mapping[str, Sequence[str]]) -> dict[str, list[float]]:
        """Scores of each model's (or method's) responses, by its name."""
        return {name: self.scores(texts) for name, texts in responses.items()}

    def per_prompt(self, scores: Sequence[float]) -> np.ndarray:
        """[prompts, samples_per_prompt]."""
        return np.asarray(scores, dtype=np.float64).reshape(-1, self.samples_per_prompt)

    def prompt_means(self, responses: Sequence[str]) -> list[float]:
        """The mean score of each prompt's responses."""
        return [float(value) for value in self.per_prompt(self.scores(responses)).mean(1)]

    @property
    def judged_pairwise(self) -> bool:
        """An AlpacaEval-style judge scores: win rates and annotations can be reported."""
        return self.scorer_config.name == "judge:pairwise"

    def win_rates(
        self,
        responses: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
        *,
        samples: int,
        seed: int,
    ) -> dict[str, dict[str, Any]]:
        """Per output: AlpacaEval's win rate and length-controlled win rate against the
        judge's reference, and its annotations (`preference` = 1 + P(response wins))."""
        scorer = self.scorer
        if not isinstance(scorer, JudgeScorer):
            raise W2SError("win rates need the judge:pairwise scorer")
        prompts = self.repeated_prompts()
        references = scorer.references(prompts)
        judged: dict[str, dict[str, Any]] = {}
        for name, texts in responses.items():
            preferences = [1 + float(score) for score in scores[name]]
            rates = win_rates(preferences, references, texts, samples=samples, seed=seed)
            annotations = [
                {
                    "instruction": prompt.text,
                    "output_1": reference,
                    "output_2": text,
                    "generator_1": "reference",
                    "generator_2": name,
                    "annotator": scorer.settings.model,
                    "preference": preference,
                }
                for prompt, reference, text, preference in zip(
                    prompts, references, texts, preferences, strict=True
                )
            ]
            judged[name] = {"win_rates": to_json(rates), "annotations": annotations}
        return judged

    def report_win_rates(
        self,
        run: Run,
        step: str,
        responses: Mapping[str, Sequence[str]],
        scores: Mapping[str, Sequence[float]],
        *,
        samples: int,
        seed: int,
    ) -> dict[str, WinRates] | None:
        """With the pairwise judge: each output's win rates (a cached step of the run) and
        its annotations written beside its AlpacaEval outputs; otherwise None."""
        if not self.judged_pairwise:
            return None
        judged = run.cached_json(
            step, lambda: self.win_rates(responses, scores, samples=samples, seed=seed)
        )
        for name, entry in judged.items():
            export_annotations(run.path, name, entry["annotations"])
        return {name: from_json(WinRates, entry["win_rates"]) for name, entry in judged.items()}

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
