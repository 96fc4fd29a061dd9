"""An LLM judge, served (an OpenAI-compatible chat endpoint) or in-process.

- `judge:pairwise` (AlpacaEval 2.0): each response against a reference output for the same
  instruction, with AlpacaEval's classifier prompt (`alpaca_eval_clf_gpt4_turbo`: answer
  `m` or `M`). The judge's log-probabilities of the two identifiers give P(first wins), as
  AlpacaEval's weighted annotator reads them; without log-probabilities the answer is
  parsed. Both orders are asked and averaged, which cancels the judge's position bias.
  A response's score is the probability that it beats the reference: its mean over prompts
  is the win rate (× 100); `HeldOutRewards.win_rates` adds the length-controlled win rate.
- `judge:grade` (MT-Bench single-answer grading): FastChat's `single-v1` prompt, a rating
  1–10 read from `[[rating]]`.

`scorer.judge.backend=transformers` loads the judge in this process instead (its chat template,
the next-token probabilities of the two identifiers).

The reference outputs come from an AlpacaEval-format file (`model_outputs.json`, matched by
instruction) or are generated in the run by a named model. The API key is read from the
environment at run time and never stored.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError, clipped
from weak2strong.fileio import read_json, sha256_file
from weak2strong.scoring.base import JudgeSettings, ScorerConfig, ScorerKind, no_quality
from weak2strong.scoring.judge_backends import LocalJudge, ServedJudge
from weak2strong.scoring.judge_prompts import (
    MIDPOINT,
    RATING,
    RATING_BACKUP,
    grade_messages,
    pairwise_messages,
)

log = logging.getLogger(__name__)

JUDGE_MODES = ("pairwise", "grade")


def judge_mode(name: str) -> str:
    mode = name.removeprefix("judge:")
    if mode not in JUDGE_MODES:
        raise W2SError(f"scorer '{name}': a judge is judge:pairwise or judge:grade")
    return mode


def check_judge(name: str, settings: JudgeSettings) -> None:
    mode = judge_mode(name)
    if not settings.model:
        raise W2SError(f"scorer '{name}' needs the judge's model: scorer.judge.model")
    if mode == "pairwise" and not settings.reference:
        raise W2SError(
            f"scorer '{name}' needs reference outputs: scorer.judge.reference (an AlpacaEval "
            "model_outputs.json, or a model that writes them)"
        )
    settings.api.validate()


def reference_fingerprint(reference: str) -> dict[str, Any]:
    if Path(reference).expanduser().is_file():
        return {"file_sha256": sha256_file(Path(reference).expanduser())}
    from weak2strong.models.loading import model_fingerprint

    return {"model": model_fingerprint(reference)}


class JudgeScorer:
    """A judge as a scorer of (prompt, response) pairs."""

    higher_is_better = True

    def __init__(self, name: str, settings: JudgeSettings, show_progress: bool = True) -> None:
        check_judge(name, settings)
        self.name = name
        self.mode = judge_mode(name)
        self.settings = settings
        self.show_progress = show_progress
        self.judge: ServedJudge | LocalJudge = (
            ServedJudge(settings) if settings.backend == "api" else LocalJudge(settings)
        )
        self.unreadable = 0  # verdicts or ratings the judge gave in no readable form

    def score(self, texts: Sequence[str]) -> np.ndarray:
        raise W2SError(f"scorer '{self.name}' judges a response to a prompt, not a text alone")

    def score_responses(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        if self.mode == "grade":
            judged = self._judged(len(prompts), lambda rows: self._grades(prompts, responses, rows))
        else:
            references = self.references(prompts)
            judged = self._judged(
                len(prompts), lambda rows: self._wins(prompts, references, responses, rows)
            )
        if self.unreadable:
            log.warning(
                "the judge %s gave %d answer(s) in no readable form (counted as ties or the "
                "midpoint rating)",
                self.settings.model,
                self.unreadable,
            )
        return np.asarray(judged, dtype=np.float64)

    def _judged(self, count: int, batch: Any) -> list[float]:
        size = (
            self.settings.api.max_concurrency * 4
            if self.settings.backend == "api"
            else self.settings.batch_size
        )
        return distributed.map_items(
            batch,
            count,
            size,
            description=f"judge {self.settings.model}",
            show_progress=self.show_progress,
        )

    def _wins(
        self,
        prompts: Sequence[Prompt],
        references: Sequence[str],
        responses: Sequence[str],
        rows: list[int],
    ) -> list[float]:
        """P(each response beats its reference); both orders averaged when swapping."""
        conversations = [
            pairwise_messages(prompts[i].text, references[i], responses[i]) for i in rows
        ]
        if self.settings.position_swap:
            conversations += [
                pairwise_messages(prompts[i].text, responses[i], references[i]) for i in rows
            ]
        verdicts = self.judge.first_wins(conversations)
        self.unreadable += sum(verdict is None for verdict in verdicts)
        first = [0.5 if v is None else v for v in verdicts]
        wins = [1 - p for p in first[: len(rows)]]
        if not self.settings.position_swap:
            return wins
        return [(a + b) / 2 for a, b in zip(wins, first[len(rows) :], strict=True)]

    def _grades(
        self, prompts: Sequence[Prompt], responses: Sequence[str], rows: list[int]
    ) -> list[float]:
        answers = self.judge.answers(
            [grade_messages(prompts[i].text, responses[i]) for i in rows],
            self.settings.grade_tokens,
        )
        grades = []
        for content in answers:
            match = RATING.search(content) or RATING_BACKUP.search(content)
            if match is None or not 1 <= float(match.group(1)) <= 10:
                self.unreadable += 1
                log.info("unreadable rating: %s", clipped(content, 120))
                grades.append(MIDPOINT)
            else:
                grades.append(float(match.group(1)))
        return grades

    # ---- reference outputs

    def references(self, prompts: Sequence[Prompt]) -> list[str]:
        source = Path(self.settings.reference).expanduser()
        if source.is_file():
            by_instruction = _reference_file(str(source))
            missing = [p.text for p in prompts if p.text not in by_instruction]
            if missing:
                raise W2SError(
                    f"{source} has no reference output for {len(missing)} instruction(s), "
                    f"e.g. {clipped(missing[0], 60)!r}"
                )
            return [by_instruction[p.text] for p in prompts]
        return _generated_references(
            self.settings.reference,
            tuple(prompts),
            self.settings.reference_new_tokens,
            self.show_progress,
        )


@functools.cache
def _reference_file(path: str) -> dict[str, str]:
    rows = read_json(path)
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and "instruction" in r and "output" in r for r in rows
    ):
        raise W2SError(f"{path}: reference outputs must be AlpacaEval's [{{instruction, output}}]")
    return {str(row["instruction"]): str(row["output"]) for row in rows}


@functools.cache
def _generated_references(
    model_name: str, prompts: tuple[Prompt, ...], new_tokens: int, show_progress: bool
) -> list[str]:
    """The reference model's own answers (its chat template when it has one), seed 0; one
    per distinct prompt, so a prompt's several responses meet the same reference."""
    from weak2strong.models import load_causal_lm
    from weak2strong.models.formatting import PromptFormat
    from weak2strong.models.generation import SamplingConfig, sample_completions

    model, tokenizer = load_causal_lm(model_name)
    chat = bool(getattr(tokenizer, "chat_template", None))
    prompt_format = PromptFormat("chat" if chat else "{prompt}")
    distinct = list(dict.fromkeys(prompts))
    outputs = sample_completions(
        model,
        tokenizer,
        prompt_format.texts(distinct, tokenizer),
        dataclasses.replace(SamplingConfig(), new_tokens=new_tokens),
        seed=0,
        description=f"reference outputs ({model_name})",
        show_progress=show_progress,
        add_special_tokens=not chat,
    )
    by_prompt = dict(zip(distinct, outputs, strict=True))
    return [by_prompt[prompt] for prompt in prompts]


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    judge = config.judge
    from weak2strong.models.loading import model_fingerprint

    served = judge.backend == "api"
    return {
        "name": config.name,
        "judge": judge.model if served else model_fingerprint(judge.model),
        "base_url": judge.api.base_url if served else None,
        "reference": reference_fingerprint(judge.reference) if judge.reference else None,
    }


def _check(name: str) -> None:
    judge_mode(name)


KIND = ScorerKind(
    prefix="judge:",
    check=_check,
    load=lambda config, show_progress: JudgeScorer(config.name, config.judge, show_progress),
    fingerprint=_fingerprint,
    higher_is_better=lambda config: True,
    units=lambda name: (
        "rating 1–10 by the judge (MT-Bench single-answer grading)"
        if name == "judge:grade"
        else "probability the judge prefers the response to the reference (× 100: win rate)"
    ),
    quality=no_quality,
)
