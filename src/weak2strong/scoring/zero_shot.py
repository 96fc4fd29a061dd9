"""Zero-shot classification by a causal language model, scored as lm-evaluation-harness
scores a multiple-choice task: the text and a question form the prompt, every label name is
a continuation, and the model's answer is the label whose continuation it finds likeliest
(summed log-probability of its tokens).

A model with a chat template is asked through it (instruction-tuned models answer far better
so: Qwen2.5-Coder-0.5B-Instruct on Rotten Tomatoes 0.71 against 0.50 with a plain prompt);
any other model reads the question as plain text ending in "Answer:".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.formatting import CHAT_TEMPLATE, PromptFormat


def question(label_names: Sequence[str]) -> str:
    """The question after the text: 'Is this text negative or positive? ...'."""
    names = list(label_names)
    choices = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return f"Is this text {choices}? Answer with one word."


def prompt_format(tokenizer: Any) -> PromptFormat:
    if getattr(tokenizer, "chat_template", None):
        return PromptFormat(CHAT_TEMPLATE)
    return PromptFormat("{prompt}\nAnswer:")


def _prompt_ids(
    tokenizer: Any, form: PromptFormat, text: str, label_names: Sequence[str], limit: int
) -> list[int]:
    """Prompt tokens, the text cut to its first `limit` tokens so the question survives."""
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(text_ids) > limit:
        text = tokenizer.decode(text_ids[:limit])
    return form.token_ids(Prompt.of_text(f"{text}\n\n{question(label_names)}"), tokenizer)


def _choice_ids(tokenizer: Any, form: PromptFormat, label_names: Sequence[str]) -> list[list[int]]:
    # a chat answer starts the assistant turn; a plain answer follows "Answer:" after a space
    spacer = "" if form.is_chat else " "
    choices = [
        tokenizer(spacer + name, add_special_tokens=False)["input_ids"] for name in label_names
    ]
    if any(not ids for ids in choices):
        raise W2SError(f"a label name makes no tokens: {list(label_names)}")
    return choices


def _padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for number, row in enumerate(rows):
        input_ids[number, : len(row)] = torch.tensor(row)
        attention[number, : len(row)] = 1
    return input_ids, attention


def _continuation_log_likelihoods(
    model: Any, prompts: list[list[int]], choices: list[list[int]], pad_id: int
) -> torch.Tensor:
    """[prompts, choices] summed log-probability of each choice after each prompt. Choices of
    one token each share one row per prompt; longer ones get a row per prompt and choice."""
    single_token = all(len(choice) == 1 for choice in choices)
    rows = prompts if single_token else [p + c for p in prompts for c in choices]
    input_ids, attention = _padded(rows, pad_id)
    device = next(model.parameters()).device
    logits = model(
        input_ids=input_ids.to(device), attention_mask=attention.to(device), use_cache=False
    ).logits
    if single_token:
        last = logits[torch.arange(len(rows)), attention.sum(1) - 1].float().cpu()
        return torch.log_softmax(last, dim=-1)[:, [choice[0] for choice in choices]]
    totals = torch.empty(len(rows))
    for number, row in enumerate(rows):
        choice = torch.tensor(choices[number % len(choices)])
        # the token at position p is predicted by the logits at p - 1
        predicting = logits[number, len(row) - len(choice) - 1 : len(row) - 1].float().cpu()
        log_probs = torch.log_softmax(predicting, dim=-1)
        totals[number] = log_probs[torch.arange(len(choice)), choice].sum()
    return totals.reshape(len(prompts), len(choices))


@torch.no_grad()
def label_log_likelihoods(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    label_names: Sequence[str],
    *,
    max_text_tokens: int = 256,
    batch_size: int = 8,
    description: str = "zero-shot",
    show_progress: bool = False,
) -> np.ndarray:
    """[texts, labels] log-likelihood of each label name as the answer; batches sharded over
    processes, rows in input order."""
    model.eval()
    form = prompt_format(tokenizer)
    choices = _choice_ids(tokenizer, form, label_names)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prompts = [_prompt_ids(tokenizer, form, text, label_names, max_text_tokens) for text in texts]

    def scores(indices: Sequence[int]) -> torch.Tensor:
        return _continuation_log_likelihoods(model, [prompts[i] for i in indices], choices, pad_id)

    # longest prompts together: less padding per batch
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    table = distributed.map_rows(
        scores,
        len(prompts),
        batch_size,
        order=order,
        description=description,
        show_progress=show_progress,
    )
    return table.double().numpy()


def correct_answers(log_likelihoods: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """1.0 where the likeliest label is the gold one, else 0.0 (ties go to the first)."""
    return (np.asarray(log_likelihoods).argmax(-1) == np.asarray(labels)).astype(np.float64)
