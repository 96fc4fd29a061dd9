"""Prompts from a user's file or a Hugging Face dataset, in the formats the field uses.

A row is one prompt. Its field is named by `column`, or found: `messages` (chat messages,
`[{role, content}, ...]`, ending with a user turn), `turns` (MT-Bench questions: the first
turn), `instruction` (AlpacaEval and Alpaca; a non-empty `input` is appended), `prompt`
(text or messages), `text`, `question`. AlpacaEval's `dataset` and MT-Bench's
`question_id` and `category` are kept, so outputs can be written back in those formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weak2strong.data.files import FILE_SUFFIXES, read_records
from weak2strong.errors import W2SError

ROLES = ("system", "user", "assistant")
PROMPT_FIELDS = ("messages", "turns", "instruction", "prompt", "text", "question")


@dataclass(frozen=True)
class Prompt:
    """A task prompt: chat messages (plain text is one user message) and where it came from.

    Each model turns it into its own input: its chat template or a text template
    (`weak2strong.models.formatting`)."""

    messages: tuple[tuple[str, str], ...]  # (role, content), the last one a user turn
    dataset: str = ""  # AlpacaEval's `dataset` field
    question_id: int | str | None = None  # MT-Bench's question id

    @classmethod
    def of_text(cls, text: str, **fields: Any) -> Prompt:
        return cls((("user", text),), **fields)

    @property
    def is_text(self) -> bool:
        """One user message and nothing else: a plain-text prompt."""
        return len(self.messages) == 1

    @property
    def text(self) -> str:
        """The prompt as plain text (what text templates and text-only scorers see): a plain
        prompt's text; a conversation's turns as `role: content` paragraphs."""
        if self.is_text:
            return self.messages[0][1]
        return "\n\n".join(f"{role}: {content}" for role, content in self.messages)

    def chat(self, system: str = "") -> list[dict[str, str]]:
        """The messages for a chat template; `system` is used when the prompt has none."""
        messages = [{"role": role, "content": content} for role, content in self.messages]
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def key(self) -> Any:
        """What identifies it for cache keys (a plain prompt: its text, as before chat)."""
        if self.is_text and not self.dataset and self.question_id is None:
            return self.text
        return {
            "messages": [list(message) for message in self.messages],
            "dataset": self.dataset,
            "question_id": self.question_id,
        }


def texts_of(prompts: Sequence[Prompt]) -> list[str]:
    return [prompt.text for prompt in prompts]


def _messages(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise W2SError(f"{where}: messages must be a non-empty list of {{role, content}}")
    messages = []
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict) or "content" not in message:
            raise W2SError(f"{where}: message {number} has no 'content' field")
        role = str(message.get("role", ""))
        if role not in ROLES:
            raise W2SError(f"{where}: message {number} has role {role!r} (use {', '.join(ROLES)})")
        messages.append((role, str(message["content"])))
    if messages[-1][0] != "user":
        raise W2SError(f"{where}: the messages must end with a user turn (the model answers it)")
    return tuple(messages)


def _field_value(field: str, value: Any, record: dict[str, Any], where: str) -> Any:
    """A prompt's messages (tuple) from its field's value, or None when it is empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if field == "turns":
        if not isinstance(value, list) or not value or not isinstance(value[0], str):
            raise W2SError(f"{where}: 'turns' must be a list of strings (MT-Bench questions)")
        return (("user", value[0]),)
    if isinstance(value, list):
        return _messages(value, where)
    text = str(value)
    extra = record.get("input") if field == "instruction" else None
    if isinstance(extra, str) and extra.strip():
        text = f"{text}\n\n{extra}"
    return (("user", text),)


def prompt_of_record(record: dict[str, Any], where: str, column: str = "") -> Prompt:
    """One row as a prompt; `where` names the file and row in errors."""
    fields = (column,) if column else PROMPT_FIELDS
    for field in fields:
        if field in record:
            messages = _field_value(field, record[field], record, where)
            if messages is None:
                raise W2SError(f"{where}: the prompt field '{field}' is empty")
            question_id = record.get("question_id")
            dataset = record.get("dataset") or record.get("category") or ""
            return Prompt(messages, str(dataset), question_id)
    looked = f"'{column}'" if column else ", ".join(PROMPT_FIELDS)
    present = ", ".join(map(str, record)) or "none"
    raise W2SError(f"{where}: no prompt field (looked for {looked}; fields: {present})")


def is_prompt_file(name: str) -> bool:
    return Path(name).suffix.lower() in FILE_SUFFIXES


def read_prompt_file(path: str, column: str = "") -> list[Prompt]:
    location = Path(path).expanduser()
    records = read_records(location)
    if not records:
        raise W2SError(f"{location}: holds no prompts")
    return [
        prompt_of_record(record, f"{location}: row {number}", column)
        for number, record in enumerate(records, start=1)
    ]


def read_hub_prompts(
    dataset_id: str, split: str = "", column: str = "", revision: str | None = None
) -> list[Prompt]:
    """A Hugging Face dataset (a hub id, or a local folder of data files); `split` empty:
    its only split, else `test`."""
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, revision=revision)
    except Exception as error:  # datasets raises many types for "not reachable / not found"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise W2SError(
            f"unknown prompt set '{dataset_id}': not a built-in set, not a prompt file "
            f"({', '.join(FILE_SUFFIXES)}), and not a reachable dataset ({first_line})"
        ) from None
    splits = list(loaded)
    chosen = split or (splits[0] if len(splits) == 1 else "test")
    if chosen not in loaded:
        raise W2SError(
            f"dataset '{dataset_id}' has no split '{chosen}' (splits: {', '.join(splits)}); "
            "choose one with prompt_options.split"
        )
    return [
        prompt_of_record(dict(record), f"{dataset_id}/{chosen}: row {number}", column)
        for number, record in enumerate(loaded[chosen], start=1)
    ]
