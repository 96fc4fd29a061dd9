"""How each model turns a task prompt into its input: its chat template, or a text template.

A text template holds `{prompt}` (the prompt's text) and may hold `{system}`; `chat` uses the
tokenizer's own chat template, with the system prompt when one is set. The large model and
each small model have their own format, as the weak-to-strong search paper's models do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError

CHAT_TEMPLATE = "chat"


@dataclass(frozen=True)
class PromptFormat:
    template: str = "{prompt}"  # text with {prompt} (and optionally {system}), or "chat"
    system: str = ""

    @property
    def is_chat(self) -> bool:
        return self.template == CHAT_TEMPLATE

    def check(self, who: str, tokenizer: Any = None) -> None:
        """Refuse a template that cannot format a prompt (with the tokenizer, when given)."""
        if not self.template:
            raise W2SError(f"{who}: the prompt template is missing (use '{{prompt}}' or 'chat')")
        if self.is_chat:
            if tokenizer is not None and not getattr(tokenizer, "chat_template", None):
                raise W2SError(f"{who}: template 'chat' but the tokenizer has no chat template")
            return
        if "{prompt}" not in self.template:
            raise W2SError(
                f"{who}: prompt template {self.template!r} has no {{prompt}} placeholder"
            )
        if self.system and "{system}" not in self.template:
            raise W2SError(
                f"{who}: a system prompt is set but the template {self.template!r} has no "
                "{system} placeholder (or use the chat template)"
            )

    def text(self, prompt: Prompt, tokenizer: Any = None) -> str:
        """The model's input as text (a chat template's text includes its special tokens)."""
        if self.is_chat:
            if tokenizer is None:
                raise W2SError("the chat template needs the model's tokenizer")
            return str(
                tokenizer.apply_chat_template(
                    prompt.chat(self.system), tokenize=False, add_generation_prompt=True
                )
            )
        return self.template.replace("{system}", self.system).replace("{prompt}", prompt.text)

    def token_ids(self, prompt: Prompt, tokenizer: Any) -> list[int]:
        """The model's input ids: a chat template's text already holds its special tokens,
        a text template gets the tokenizer's usual ones (BOS where it adds one)."""
        ids = tokenizer(self.text(prompt, tokenizer), add_special_tokens=not self.is_chat)
        return list(ids["input_ids"])

    def texts(self, prompts: list[Prompt], tokenizer: Any = None) -> list[str]:
        return [self.text(prompt, tokenizer) for prompt in prompts]
