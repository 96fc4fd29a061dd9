"""`hf:<model>`: any Hugging Face sequence-classification model as a reward.

A reward model with a chat template (Skywork-Reward, the UltraRM/Starling-RM family) scores
the conversation, prompt and response as turns in its own template; one without scores the
prompt's text followed by the response, as text classifiers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.loading import model_fingerprint
from weak2strong.scoring.base import ScorerConfig, ScorerKind, as_configured, no_check, no_quality


class SequenceClassifierScorer:
    """A Hugging Face sequence-classification model as a reward."""

    def __init__(self, config: ScorerConfig, show_progress: bool = True) -> None:
        from weak2strong.models.loading import load_sequence_classifier

        self.name = config.name
        self.higher_is_better = config.higher_is_better
        self.max_length = config.max_length
        self.show_progress = show_progress
        self.model, self.tokenizer = load_sequence_classifier(config.name.removeprefix("hf:"))
        labels = len(self.model.config.id2label or {}) or 1
        if labels not in (1, 2):
            raise W2SError(f"scorer '{config.name}' has {labels} labels; a reward needs 1 or 2")
        names = {i: str(n).lower() for i, n in (self.model.config.id2label or {}).items()}
        positive = [i for i, n in names.items() if n.startswith("pos")]
        self.positive = int(positive[0]) if positive else labels - 1

    def conversation(self, prompt: Prompt, response: str) -> str:
        """The prompt and response in the reward model's chat template (special tokens included)."""
        messages = [*prompt.chat(), {"role": "assistant", "content": response}]
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False))

    def score_responses(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        if not getattr(self.tokenizer, "chat_template", None):
            return self.score([p.text + r for p, r in zip(prompts, responses, strict=True)])
        texts = [self.conversation(p, r) for p, r in zip(prompts, responses, strict=True)]
        return self.score(texts, add_special_tokens=False)

    @torch.no_grad()
    def score(
        self, texts: Sequence[str], batch_size: int = 32, add_special_tokens: bool = True
    ) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        device = next(self.model.parameters()).device

        def reward(indices: list[int]) -> torch.Tensor:
            batch = self.tokenizer(
                [texts[i] for i in indices],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=add_special_tokens,
            ).to(device)
            logits = self.model(**batch).logits.float()
            if logits.shape[-1] == 1:
                return logits[:, 0]
            log_probs = logits.log_softmax(-1)
            return log_probs[:, self.positive] - log_probs[:, 1 - self.positive]

        return (
            distributed.map_rows(
                reward,
                len(texts),
                batch_size,
                description=f"scorer {self.name}",
                show_progress=self.show_progress,
            )
            .numpy()
            .astype(np.float64)
        )


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    return {"name": config.name, "model": model_fingerprint(config.name.removeprefix("hf:"))}


KIND = ScorerKind(
    prefix="hf:",
    check=no_check,
    load=lambda config, show_progress: SequenceClassifierScorer(config, show_progress),
    fingerprint=_fingerprint,
    higher_is_better=as_configured,
    units=lambda name: "the model's logit (log-odds of its positive label)",
    quality=no_quality,
)
