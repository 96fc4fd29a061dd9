"""The large model in transformers, in this process: one KV cache holds every candidate row."""

from __future__ import annotations

from collections.abc import Sequence

from weak2strong.data.prompt_files import Prompt
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import CachedRows, LanguageModel
from weak2strong.search.samplers import Rows, row_generators, token_sampler


class TransformersSampler(Rows):
    def __init__(self, lm: LanguageModel, settings: SamplingConfig) -> None:
        super().__init__()
        settings.validate()
        self.lm = lm
        self.settings = settings
        self.rows = CachedRows(lm)
        self._sample = token_sampler(settings)
        self.dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")

    def start(
        self, prompts: Sequence[Prompt], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None:
        self.rows.prefill([self.lm.prompt_ids(prompt) for prompt in prompts])
        self._start_rows(len(prompts), seed, prompt_ids)

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        self.rows.select(parents)
        generators = row_generators(self._reorder(parents), self.lm.device)
        eos = self.lm.eos_ids
        for _ in range(max_tokens):
            active = [row for row, done in enumerate(self.finished) if not done]
            if not active:
                break
            tokens = self._sample(
                self.rows.last_logits[active], [generators[row] for row in active]
            ).tolist()
            feeds: list[list[int]] = [[] for _ in self.finished]
            for row, token in zip(active, tokens, strict=True):
                self.sampled_tokens += 1
                if token in eos:
                    self.finished[row] = True  # EOS ends the row; it is not part of the text
                else:
                    self.responses[row].append(token)
                    feeds[row] = [token]
            self.rows.append(feeds)
