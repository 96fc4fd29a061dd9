"""What every gold scorer (reward) shares: its settings, its interface and a kind's entry.

A scorer's name picks its kind: a prefix (`hf:`, `python:`, `lexicon:`) or a built-in
name; `weak2strong.scoring.scorers` holds the registry of kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from weak2strong.data.prompt_files import Prompt
from weak2strong.models.openai_api import ApiSettings
from weak2strong.settings import setting


@dataclass
class JudgeSettings:
    model: str = setting(
        "", help="the judge: the served model's name (api), or a model to load (transformers)"
    )
    backend: Literal["api", "transformers"] = setting(
        "api", help="api: a server's chat endpoint; transformers: the model in this process"
    )
    api: ApiSettings = setting(help="the judge's server", factory=ApiSettings)
    batch_size: int = setting(4, help="transformers: judgements per forward pass", hash=False)
    reference: str = setting(
        "",
        help="judge:pairwise: the reference outputs, an AlpacaEval model_outputs.json "
        "(matched by instruction), or a model that writes them in this run",
    )
    reference_new_tokens: int = setting(256, help="tokens of a generated reference output")
    position_swap: bool = setting(True, help="ask both orders and average (cancels order bias)")
    logprobs: bool = setting(True, help="read the verdict's log-probabilities when served")
    grade_tokens: int = setting(512, help="judge:grade: tokens of the judge's explanation")


@dataclass
class ScorerConfig:
    name: str = setting(
        "sentiment",
        help="gold scorer: sentiment, toxicity, lexicon:vader|afinn, hf:<model>, "
        "python:<module>:<function>, judge:pairwise (AlpacaEval), judge:grade (MT-Bench)",
    )
    encoder: str = setting("minilm-l6", help="encoder of the sentiment/toxicity scorers")
    max_train: int = setting(4000, help="label-stratified cap on the scorer's training data")
    heldout: int = setting(
        1000,
        help="held-out labelled texts its accuracy and AUROC are measured on",
        hash="when-changed",
    )
    max_length: int = setting(256, help="tokens per scored text")
    higher_is_better: bool = setting(
        True, help="direction of hf: and python: scorers (the built-in ones know theirs)"
    )
    judge: JudgeSettings = setting(
        help="judge:pairwise and judge:grade: the LLM judge", factory=JudgeSettings
    )


class Scorer(Protocol):
    name: str
    higher_is_better: bool

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class ResponseScorer(Protocol):
    """A scorer that reads the prompt and the response apart (a reward model through its
    chat template, a judge, a two-argument python: function); text-only scorers read the
    prompt's text followed by the response."""

    def score_responses(
        self, prompts: Sequence[Prompt], responses: Sequence[str]
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class ScorerKind:
    """One kind of scorer: how its names look and what the toolkit asks of it."""

    prefix: str  # "hf:", "python:", "lexicon:"; "" for the built-in names
    check: Callable[[str], None]  # fail fast, before any model loads, on a name naming nothing
    load: Callable[[ScorerConfig, bool], Scorer]  # (config, show_progress)
    fingerprint: Callable[[ScorerConfig], dict[str, Any]]  # for run inputs, beside settings
    higher_is_better: Callable[[ScorerConfig], bool]  # known without loading it
    units: Callable[[str], str]  # what one score means, for results
    quality: Callable[[ScorerConfig, bool], dict[str, Any]]  # held-out accuracy, if trained


def no_check(name: str) -> None:
    del name


def as_configured(config: ScorerConfig) -> bool:
    return config.higher_is_better


def no_quality(config: ScorerConfig, show_progress: bool) -> dict[str, Any]:
    del config, show_progress
    return {}
