"""What the LLM judge is asked, and how its answers are read.

The pairwise prompt is AlpacaEval 2.0's classifier prompt (`alpaca_eval_clf_gpt4_turbo`,
Apache-2.0): answer `m` (the first output) or `M`. The grading prompt is FastChat
llm_judge's `single-v1` (MT-Bench single-answer grading, Apache-2.0): `[[rating]]`, 1–10.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from weak2strong.errors import W2SError

Messages = list[dict[str, str]]

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


def verdict_probability(choice: dict[str, Any], url: str) -> float | None:
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
    return first_share(found[FIRST], found[SECOND])


def first_share(first: list[float], second: list[float]) -> float:
    """P(first) / (P(first) + P(second)) from the log-probabilities of each one's tokens."""
    a = float(np.logaddexp.reduce(first)) if first else -math.inf
    b = float(np.logaddexp.reduce(second)) if second else -math.inf
    return float(np.exp(a - np.logaddexp(a, b)))


def parsed_verdict(content: str) -> float | None:
    verdict = content.strip()[:1]
    return {FIRST: 1.0, SECOND: 0.0}.get(verdict)


def message_of(answer: dict[str, Any], url: str) -> tuple[dict[str, Any], str]:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise W2SError(f"{url} answered without a list of choices: not a chat completions answer")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise W2SError(f"{url} answered with a message whose content is not text")
    return choices[0], content


def pairwise_messages(instruction: str, output_1: str, output_2: str) -> Messages:
    user = (
        PAIRWISE_USER.replace("{instruction}", instruction)
        .replace("{output_1}", output_1)
        .replace("{output_2}", output_2)
    )
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


def grade_messages(question: str, answer: str) -> Messages:
    user = GRADE_USER.replace("{question}", question).replace("{answer}", answer)
    return [{"role": "system", "content": GRADE_SYSTEM}, {"role": "user", "content": user}]
