"""The task data model: labelled texts with a split and a provenance, and seeded splitting."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from weak2strong.errors import W2SError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    split: str
    source: str  # where the row comes from, e.g. "advbench" or "imdb.csv:412"


@dataclass(frozen=True)
class RawExample:
    """A row before splitting; `split` is kept when the source defines one."""

    text: str
    label: int
    source: str
    split: str | None = None


@dataclass(frozen=True)
class TaskData:
    name: str
    label_names: tuple[str, ...]
    examples: tuple[Example, ...]

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise W2SError(f"unknown split '{name}' (splits: {', '.join(SPLITS)})")
        return [example for example in self.examples if example.split == name]

    def texts(self, split: str) -> list[str]:
        return [example.text for example in self.split(split)]

    def labels(self, split: str) -> list[int]:
        return [example.label for example in self.split(split)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Examples per split and label name, e.g. {"train": {"neg": 10000, "pos": 10000}}."""
        counts: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            tally = Counter(example.label for example in self.split(split))
            counts[split] = {
                name: tally.get(index, 0) for index, name in enumerate(self.label_names)
            }
        return counts

    def fingerprint(self) -> str:
        """A digest of every text, label and split: cache keys use it, never the task name alone."""
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.label_names).encode())
        for example in self.examples:
            digest.update(f"\x1e{example.split}\x1f{example.label}\x1f{example.text}".encode())
        return digest.hexdigest()[:16]


def dedupe(rows: Iterable[RawExample]) -> list[RawExample]:
    """Drop repeated texts (whitespace- and case-insensitive), keeping the first."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        key = " ".join(row.text.lower().split())
        if key and key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def balance(rows: Sequence[RawExample], seed: int) -> list[RawExample]:
    """Subsample every label down to the rarest one's count, keeping source proportions."""
    by_label: dict[int, list[RawExample]] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    smallest = min(len(group) for group in by_label.values())
    rng = np.random.default_rng(seed)
    kept: list[RawExample] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen = sorted(rng.choice(len(group), size=smallest, replace=False).tolist())
        kept.extend(group[index] for index in chosen)
    return kept


def assign_splits(rows: Sequence[RawExample], test_fraction: float, seed: int) -> list[Example]:
    """Keep a source's own train/test split; otherwise split each label with a seeded shuffle.

    Stratifying by label gives every split the source's label balance exactly (to rounding).
    """
    if not 0.0 < test_fraction < 1.0:
        raise W2SError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    given = {row.split for row in rows}
    if given == set(SPLITS):
        return [Example(row.text, row.label, str(row.split), row.source) for row in rows]
    rng = np.random.default_rng(seed)
    split_of: dict[int, str] = {}
    for label in sorted({row.label for row in rows}):
        members = [index for index, row in enumerate(rows) if row.label == label]
        order = rng.permutation(len(members))
        n_test = round(len(members) * test_fraction)
        for rank, position in enumerate(order):
            split_of[members[position]] = "test" if rank < n_test else "train"
    return [
        Example(row.text, row.label, split_of[index], row.source) for index, row in enumerate(rows)
    ]


def cap_per_split(examples: Sequence[Example], limit: int, seed: int) -> list[Example]:
    """At most `limit` examples per split, label-stratified, for quick runs."""
    rng = np.random.default_rng(seed)
    kept: list[Example] = []
    for split in SPLITS:
        members = [example for example in examples if example.split == split]
        if len(members) <= limit:
            kept.extend(members)
            continue
        labels = sorted({example.label for example in members})
        per_label = {label: [e for e in members if e.label == label] for label in labels}
        quota = {
            label: round(limit * len(group) / len(members)) for label, group in per_label.items()
        }
        for label, group in per_label.items():
            chosen = sorted(
                rng.choice(len(group), size=min(quota[label], len(group)), replace=False).tolist()
            )
            kept.extend(group[index] for index in chosen)
    return kept


def split_halves(examples: Sequence[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """Label-stratified, seeded halves: A (the weak supervisor's gold) and B (to be weakly labelled)."""
    rng = np.random.default_rng(seed)
    half_a: list[Example] = []
    half_b: list[Example] = []
    for label in sorted({example.label for example in examples}):
        members = [example for example in examples if example.label == label]
        order = rng.permutation(len(members))
        cut = len(members) // 2
        half_a += [members[i] for i in order[:cut]]
        half_b += [members[i] for i in order[cut:]]
    return half_a, half_b
