"""The large model behind an OpenAI-compatible completions endpoint (`--backend api`).

CBS and best-of-N need only sampled text from the large model, so a served model (vLLM's
server, TGI, llama.cpp, a hosted API) can be steered by the small pair; the HTTP client
and its checks are `weak2strong.models.openai_api`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.models.openai_api import ApiSettings, CompletionsClient, parse_completions
from weak2strong.search.samplers import request_groups, sequence_seeds


class ApiSampler:
    """The large model as a black box: rows are text, each chunk continues prompt + text.

    CBS and best-of-N need only sampled text from the large model, never its logits, so a
    served model (or a hosted one) can be steered by the small pair (Zhou et al. 2024's
    gpt-3.5-turbo-instruct result). Token counts come from the server's usage reports.
    """

    def __init__(
        self, model: str, prompt_format: PromptFormat, settings: SamplingConfig, api: ApiSettings
    ) -> None:
        settings.validate()
        if prompt_format.is_chat:
            raise W2SError(
                "--backend api continues text through a completions endpoint: give "
                "large_template as text with {prompt}, not 'chat'"
            )
        self.format = prompt_format
        self.settings = settings
        self.api = api
        self.client = CompletionsClient(api, model)
        self.client.check()
        self.dtype = "unknown (remote)"
        self.prompt_texts: list[str] = []
        self.responses: list[str] = []
        self.finished: list[bool] = []
        self.prompt_of: list[int] = []
        self.sampled_tokens = 0
        self.seed = 0
        self.steps = 0

    def start(
        self, prompts: Sequence[Prompt], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None:
        self.prompt_texts = self.format.texts(list(prompts))
        self.responses = ["" for _ in prompts]
        self.finished = [False for _ in prompts]
        self.prompt_of = list(prompt_ids) if prompt_ids is not None else list(range(len(prompts)))
        self.seed, self.steps, self.sampled_tokens = seed, 0, 0

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        seeds = sequence_seeds(self.seed, self.prompt_of, parents, self.steps)
        self.steps += 1
        self.prompt_texts = [self.prompt_texts[p] for p in parents]
        self.responses = [self.responses[p] for p in parents]
        self.finished = [self.finished[p] for p in parents]
        self.prompt_of = [self.prompt_of[p] for p in parents]
        groups = request_groups(parents, self.finished, seeds)
        bodies = []
        for group in groups:
            body: dict[str, Any] = {
                "prompt": self.prompt_texts[group[0]] + self.responses[group[0]],
                "n": len(group),
                "max_tokens": max_tokens,
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
            }
            if self.api.send_seed:
                body["seed"] = seeds[group[0]]
            if self.api.send_top_k and self.settings.top_k > 0:
                body["top_k"] = self.settings.top_k
            bodies.append(body)
        for group, answer in zip(groups, self.client.complete_all(bodies), strict=True):
            completions, tokens = parse_completions(answer, len(group), max_tokens, self.client.url)
            self.sampled_tokens += tokens
            for row, completion in zip(group, completions, strict=True):
                self.responses[row] += completion.text
                self.finished[row] = completion.finished

    def texts(self) -> list[str]:
        return list(self.responses)
