"""Preference pairs from a user's file or a Hugging Face dataset, for `w2s tune`'s DPO.

A row holds `prompt`, `chosen` and `rejected` in one of the field's layouts:
- text: `prompt` a string (or chat messages), `chosen` and `rejected` the two responses;
- chat (UltraFeedback-binarized style): `chosen` and `rejected` are conversations
  (`[{role, content}, ...]`) ending with the assistant's response; the prompt is `prompt`,
  or the turns before the response;
- transcripts (HH-RLHF style): `chosen` and `rejected` are `\\n\\nHuman: …\\n\\nAssistant: …`
  texts sharing everything up to the last assistant turn, which is the response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weak2strong.data.files import read_records
from weak2strong.data.prompt_files import Prompt, is_prompt_file, prompt_of_record
from weak2strong.errors import W2SError

_TURN = re.compile(r"\n\n(Human|Assistant): ")
_ROLES = {"Human": "user", "Assistant": "assistant"}


@dataclass(frozen=True)
class PreferencePair:
    prompt: Prompt
    chosen: str
    rejected: str


def _transcript(text: str, where: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """An HH-RLHF transcript as (the turns before the last assistant turn, its response)."""
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    turns = [(_ROLES[parts[i]], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]
    if len(turns) < 2 or turns[-1][0] != "assistant" or turns[-2][0] != "user":
        raise W2SError(f"{where}: not a Human/Assistant transcript ending with the assistant")
    return tuple(turns[:-1]), turns[-1][1]


def _conversation(value: Any, where: str, field: str) -> tuple[tuple[tuple[str, str], ...], str]:
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        raise W2SError(f"{where}: '{field}' must be a response or a list of messages")
    last = value[-1]
    if last.get("role") != "assistant" or not isinstance(last.get("content"), str):
        raise W2SError(f"{where}: the '{field}' conversation must end with the assistant's turn")
    before = tuple((str(m.get("role")), str(m.get("content", ""))) for m in value[:-1])
    return before, last["content"]


def pair_of_record(record: dict[str, Any], where: str) -> PreferencePair:
    missing = [f for f in ("chosen", "rejected") if f not in record]
    if missing:
        raise W2SError(
            f"{where}: no '{missing[0]}' field (a preference row has prompt, chosen, rejected)"
        )
    chosen, rejected = record["chosen"], record["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str) and "prompt" in record:
        return PreferencePair(prompt_of_record(record, where, "prompt"), chosen, rejected)
    if isinstance(chosen, str) and isinstance(rejected, str):
        before, chosen_text = _transcript(chosen, where)
        before_rejected, rejected_text = _transcript(rejected, where)
        if before != before_rejected:
            raise W2SError(f"{where}: chosen and rejected transcripts differ before the response")
        return PreferencePair(Prompt(before), chosen_text, rejected_text)
    before, chosen_text = _conversation(chosen, where, "chosen")
    _, rejected_text = _conversation(rejected, where, "rejected")
    prompt = prompt_of_record(record, where, "prompt") if "prompt" in record else None
    if prompt is None:
        if not before or before[-1][0] != "user":
            raise W2SError(f"{where}: no prompt, and the conversation has no user turn first")
        prompt = Prompt(before)
    return PreferencePair(prompt, chosen_text, rejected_text)


def read_preference_pairs(source: str, split: str = "") -> list[PreferencePair]:
    """Every pair of a file (.jsonl, .json, .csv, .tsv) or a dataset (hub id or folder)."""
    if is_prompt_file(source):
        location = Path(source).expanduser()
        records = read_records(location)
        origin = str(location)
    else:
        import datasets

        try:
            loaded = datasets.load_dataset(source)
        except Exception as error:  # datasets raises many types for "not reachable / not found"
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise W2SError(
                f"preference data '{source}': not a file and not a reachable dataset ({first_line})"
            ) from None
        splits = list(loaded)
        chosen_split = split or (splits[0] if len(splits) == 1 else "train")
        if chosen_split not in loaded:
            raise W2SError(
                f"dataset '{source}' has no split '{chosen_split}' (splits: {', '.join(splits)})"
            )
        records = [dict(row) for row in loaded[chosen_split]]
        origin = f"{source}/{chosen_split}"
    if not records:
        raise W2SError(f"{origin}: holds no preference pairs")
    return [pair_of_record(r, f"{origin}: row {n}") for n, r in enumerate(records, start=1)]
