"""Where the judge's answers come from: a server's chat endpoint, or the model in-process."""

from __future__ import annotations

from typing import Any

from weak2strong.errors import W2SError
from weak2strong.models.openai_api import CompletionsClient
from weak2strong.scoring.base import JudgeSettings
from weak2strong.scoring.judge_prompts import (
    FIRST,
    SECOND,
    Messages,
    first_share,
    message_of,
    parsed_verdict,
    verdict_probability,
)


class ServedJudge:
    """The judge behind an OpenAI-compatible chat endpoint, requests in parallel."""

    def __init__(self, settings: JudgeSettings) -> None:
        self.settings = settings
        self.client = CompletionsClient(settings.api, settings.model, "chat/completions")

    def _all(self, bodies: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        return [message_of(answer, self.client.url) for answer in self.client.complete_all(bodies)]

    def first_wins(self, conversations: list[Messages]) -> list[float | None]:
        extra = {"logprobs": True, "top_logprobs": 5} if self.settings.logprobs else {}
        bodies = [
            {"messages": messages, "max_tokens": 1, "temperature": 0.0, **extra}
            for messages in conversations
        ]
        verdicts = []
        for choice, content in self._all(bodies):
            probability = verdict_probability(choice, self.client.url)
            verdicts.append(probability if probability is not None else parsed_verdict(content))
        return verdicts

    def answers(self, conversations: list[Messages], max_tokens: int) -> list[str]:
        bodies = [
            {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
            for messages in conversations
        ]
        return [content for _, content in self._all(bodies)]


class LocalJudge:
    """The judge in this process: its chat template, P(m) against P(M) from the next-token
    distribution (every token that reads as the identifier), greedy answers for grades."""

    def __init__(self, settings: JudgeSettings) -> None:
        from weak2strong.models import load_causal_lm

        self.settings = settings
        model, tokenizer = load_causal_lm(settings.model)
        self.model: Any = model
        self.tokenizer: Any = tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise W2SError(f"judge {settings.model}: its tokenizer has no chat template")
        vocabulary = self.tokenizer.get_vocab()
        spelled = {i: str(self.tokenizer.decode([i])).strip() for i in vocabulary.values()}
        self.ids = {
            key: [i for i, text in spelled.items() if text == key] for key in (FIRST, SECOND)
        }

    def _inputs(self, conversations: list[Messages]) -> Any:
        texts = [
            self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
            for m in conversations
        ]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            batch = self.tokenizer(
                texts, return_tensors="pt", padding=True, add_special_tokens=False
            )
        finally:
            self.tokenizer.padding_side = side
        return batch.to(next(self.model.parameters()).device)

    def first_wins(self, conversations: list[Messages]) -> list[float | None]:
        import torch

        with torch.no_grad():
            # the verdict's distribution alone: no output head over the whole prompt
            outputs = self.model(**self._inputs(conversations), logits_to_keep=1)
            logits = outputs.logits[:, -1].float()
        log_probs = logits.log_softmax(-1)
        return [
            first_share(row[self.ids[FIRST]].tolist(), row[self.ids[SECOND]].tolist())
            for row in log_probs
        ]

    def answers(self, conversations: list[Messages], max_tokens: int) -> list[str]:
        import torch

        batch = self._inputs(conversations)
        with torch.no_grad():
            output = self.model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=max_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = output[:, batch["input_ids"].shape[1] :]
        return list(self.tokenizer.batch_decode(new, skip_special_tokens=True))
