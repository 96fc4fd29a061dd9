"""An LLM judge behind an OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp, a hosted API).

- `judge:pairwise` (AlpacaEval 2.0): each response against a reference output for the same
  instruction, with AlpacaEval's classifier prompt (`alpaca_eval_clf_gpt4_turbo`: answer
  `m` or `M`). The judge's log-probabilities of the two identifiers give P(first wins), as
  AlpacaEval's weighted annotator reads them; without log-probabilities the answer is
  parsed. Both orders are asked and averaged, which cancels the judge's position bias.
  A response's score is the probability that it beats the reference: its mean over prompts
  is the win rate (× 100); `HeldOutRewards.win_rates` adds the length-controlled win rate.
- `judge:grade` (MT-Bench single-answer grading): FastChat's `single-v1` prompt, a rating
  1–10 read from `[[rating]]`.

The reference outputs come from an AlpacaEval-format file (`model_outputs.json`, matched by
instruction) or are generated in the run by a named model. The API key is read from the
environment at run time and never stored.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError, clipped
from weak2strong.fileio import read_json, sha256_file
from weak2strong.models.openai_api import CompletionsClient
from weak2strong.scoring.base import JudgeSettings, ScorerConfig, ScorerKind, no_quality

log = logging.getLogger(__name__)

JUDGE_MODES = ("pairwise", "grade")
FIRST, SECOND = "m", "M"  # AlpacaEval's model identifiers: m is shown first

# AlpacaEval 2.0's classifier prompt (alpaca_eval_clf_gpt4_turbo, Apache-2.0), as messages
PAIRWISE_SYSTEM = (
    "You are a highly efficient assistant, who evaluates and selects the best large language "
    "model (LLMs) based on the quality of their responses to a given instruction. This process "
    "will be used to create a leaderboard reflecting the most accurate and human-preferred "
    "answers."
)
PAIRWISE_USER = """I require a leaderboard for various large language models. I'll provide you with prompts given to these models and their corresponding outputs. Your task is to assess these responses, and select the model that produces the best output from a human perspective.

## Instruction

{
    "instruction": \"\"\"{instruction}\"\"\",
}

## Model Outputs

Here are the unordered outputs from the models. Each output is associated with a specific model, identified by a unique model identifier.

{
    {
        "model_identifier": "m",
        "output": \"\"\"{output_1}\"\"\"
    },
    {
        "model_identifier": "M",
        "output": \"\"\"{output_2}\"\"\"
    }
}

## Task

Evaluate the models based on the quality and relevance of their outputs, and select the model that generated the best output. Answer by providing the model identifier of the best model. We will use your output as the name of the best model, so make sure your output only contains one of the following model identifiers and nothing else (no quotes, no spaces, no new lines, ...): m or M.

## Best Model Identifier"""

# FastChat llm_judge's single-v1 prompt (MT-Bench single-answer grading, Apache-2.0)
GRADE_SYSTEM = "You are a helpful assistant."
GRADE_USER = """[Instruction]
Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to the user question displayed below. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your evaluation by providing a short explanation. Be as objective as possible. After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".

[Question]
{question}

[The Start of Assistant's Answer]
{answer}
[The End of Assistant's Answer]"""
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # FastChat's fallback
MIDPOINT = 5.5  # an unreadable rating: counted, warned about, and scored as the midpoint


def judge_mode(name: str) -> str:
    mode = name.removeprefix("judge:")
    if mode not in JUDGE_MODES:
        raise W2SError(f"scorer '{name}': a judge is judge:pairwise or judge:grade")
    return mode


def check_judge(name: str, settings: JudgeSettings) -> None:
    mode = judge_mode(name)
    if not settings.model:
        raise W2SError(f"scorer '{name}' needs the judge's served model: scorer.judge.model")
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


def _verdict_probability(choice: dict[str, Any], url: str) -> float | None:
    """P(the first output wins) from the identifiers' log-probabilities (None: not served)."""
    content = (choice.get("logprobs") or {}).get("content")
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    top = content[0].get("top_logprobs")
    if not isinstance(top, list):
        return None
    found: dict[str, list[float]] = {FIRST: [], SECOND: []}
    for entry in top:
        if not isinstance(entry, dict) or not isinstance(entry.get("logprob"), int | float):
            raise W2SError(f"{url} answered with top_logprobs that are not {{token, logprob}}")
        token = str(entry.get("token", "")).strip()
        if token in found:
            found[token].append(float(entry["logprob"]))
    if not found[FIRST] and not found[SECOND]:
        return None
    first = float(np.logaddexp.reduce(found[FIRST])) if found[FIRST] else -math.inf
    second = float(np.logaddexp.reduce(found[SECOND])) if found[SECOND] else -math.inf
    return float(np.exp(first - np.logaddexp(first, second)))


def _message(answer: dict[str, Any], url: str) -> tuple[dict[str, Any], str]:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise W2SError(f"{url} answered without a list of choices: not a chat completions answer")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise W2SError(f"{url} answered with a message whose content is not text")
    return choices[0], content


class JudgeScorer:
    """A judge as a scorer of (prompt, response) pairs."""

    higher_is_better = True

    def __init__(self, name: str, settings: JudgeSettings, show_progress: bool = True) -> None:
        check_judge(name, settings)
        self.name = name
        self.mode = judge_mode(name)
        self.settings = settings
        self.show_progress = show_progress
        self.client = CompletionsClient(settings.api, settings.model, "chat/completions")
        self.unreadable = 0  # verdicts or ratings the judge gave in no readable form

    def score(self, texts: Sequence[str]) -> np.ndarray:
        raise W2SError(f"scorer '{self.name}' judges a response to a prompt, not a text alone")

    def score_responses(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        if self.mode == "grade":
            return self._scores(len(prompts), lambda i: self._grade(prompts[i], responses[i]))
        references = self.references(prompts)
        return self._scores(
            len(prompts), lambda i: self._win(prompts[i].text, references[i], responses[i])
        )

    def _scores(self, count: int, one: Any) -> np.ndarray:
        def batch(indices: list[int]) -> list[float]:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.settings.api.max_concurrency) as pool:
                return list(pool.map(one, indices))

        values = distributed.map_items(
            batch,
            count,
            self.settings.api.max_concurrency * 4,
            description=f"judge {self.settings.model}",
            show_progress=self.show_progress,
        )
        if self.unreadable:
            log.warning(
                "the judge %s gave %d answer(s) in no readable form (counted as ties or the "
                "midpoint rating)",
                self.settings.model,
                self.unreadable,
            )
        return np.asarray(values, dtype=np.float64)

    # ---- pairwise

    def _first_wins(self, instruction: str, output_1: str, output_2: str) -> float:
        body: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": PAIRWISE_SYSTEM},
                {
                    "role": "user",
                    "content": PAIRWISE_USER.replace("{instruction}", instruction)
                    .replace("{output_1}", output_1)
                    .replace("{output_2}", output_2),
                },
            ],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        if self.settings.logprobs:
            body |= {"logprobs": True, "top_logprobs": 5}
        choice, content = _message(self.client.complete(body), self.client.url)
        probability = _verdict_probability(choice, self.client.url)
        if probability is not None:
            return probability
        verdict = content.strip()
        if verdict[:1] in (FIRST, SECOND):
            return 1.0 if verdict[:1] == FIRST else 0.0
        self.unreadable += 1
        return 0.5

    def _win(self, instruction: str, reference: str, response: str) -> float:
        """P(the response beats the reference), both orders averaged when swapping."""
        wins = 1 - self._first_wins(instruction, reference, response)
        if not self.settings.position_swap:
            return wins
        return (wins + self._first_wins(instruction, response, reference)) / 2

    # ---- single-answer grading

    def _grade(self, prompt: Prompt, response: str) -> float:
        body = {
            "messages": [
                {"role": "system", "content": GRADE_SYSTEM},
                {
                    "role": "user",
                    "content": GRADE_USER.replace("{question}", prompt.text).replace(
                        "{answer}", response
                    ),
                },
            ],
            "max_tokens": self.settings.grade_tokens,
            "temperature": 0.0,
        }
        _, content = _message(self.client.complete(body), self.client.url)
        match = RATING.search(content) or RATING_BACKUP.search(content)
        if match is None or not 1 <= float(match.group(1)) <= 10:
            self.unreadable += 1
            log.info("unreadable rating: %s", clipped(content, 120))
            return MIDPOINT
        return float(match.group(1))

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
    """The reference model's own answers (its chat template when it has one), seed 0."""
    from weak2strong.models import load_causal_lm
    from weak2strong.models.formatting import PromptFormat
    from weak2strong.models.generation import SamplingConfig, sample_completions

    model, tokenizer = load_causal_lm(model_name)
    chat = bool(getattr(tokenizer, "chat_template", None))
    prompt_format = PromptFormat("chat" if chat else "{prompt}")
    return sample_completions(
        model,
        tokenizer,
        prompt_format.texts(list(prompts), tokenizer),
        dataclasses.replace(SamplingConfig(), new_tokens=new_tokens),
        seed=0,
        description=f"reference outputs ({model_name})",
        show_progress=show_progress,
        add_special_tokens=not chat,
    )


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    judge = config.judge
    return {
        "name": config.name,
        "judge": judge.model,
        "base_url": judge.api.base_url,
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
