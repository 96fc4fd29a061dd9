"""Tasks from a user's CSV/TSV/JSONL file or a Hugging Face dataset id."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from weak2strong.data.base import SPLITS, RawExample
from weak2strong.errors import W2SError

FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise W2SError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
        if suffix == ".jsonl":
            lines = path.read_text("utf-8").splitlines()
            return _objects([json.loads(line) for line in lines if line.strip()], path)
        if suffix == ".json":
            data = json.loads(path.read_text("utf-8"))
            if not isinstance(data, list):
                raise W2SError(f"{path}: a .json task file must hold a list of records")
            return _objects(data, path)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as error:
        raise W2SError(f"cannot read {path}: {error}") from None
    except OSError as error:
        raise W2SError(f"cannot read {path}: {error.strerror or error}") from None
    raise W2SError(f"unsupported data file type '{suffix}' (use {', '.join(FILE_SUFFIXES)})")


def _objects(records: list[Any], path: Path) -> list[dict[str, Any]]:
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise W2SError(
                f"{path}: record {number} is {type(record).__name__}, not an object with fields"
            )
    return records


def records_to_rows(
    records: Sequence[dict[str, Any]],
    *,
    origin: str,
    text_column: str,
    label_column: str,
    label_names: Sequence[str] | None = None,
) -> tuple[list[RawExample], tuple[str, ...]]:
    """Labels may be integers 0..n-1 or strings (mapped in sorted order); a `split` column is kept."""
    if not records:
        raise W2SError(f"{origin} holds no rows")
    columns = list(records[0].keys())
    for column in (text_column, label_column):
        if column not in columns:
            raise W2SError(
                f"{origin} has no column '{column}' (columns: {', '.join(map(str, columns))})"
            )
    unlabelled = [
        number
        for number, record in enumerate(records, start=1)
        if record.get(label_column) is None or not str(record[label_column]).strip()
    ]
    if unlabelled:
        shown = ", ".join(map(str, unlabelled[:5])) + (" ..." if len(unlabelled) > 5 else "")
        raise W2SError(
            f"{origin}: {len(unlabelled)} row(s) without a '{label_column}' value (rows {shown}); "
            "label them or remove them"
        )
    raw_labels = [record[label_column] for record in records]
    names, index_of = _label_mapping(raw_labels, label_names, origin)
    given_splits = {str(record.get("split") or "").strip() for record in records} - {""}
    if given_splits and given_splits != set(SPLITS):
        unknown = sorted(given_splits - set(SPLITS))
        raise W2SError(
            f"{origin}: the split column must name both train and test rows "
            f"(found: {', '.join(sorted(given_splits))}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + "); remove the column to split by seed"
        )
    if given_splits:
        missing = [n for n, r in enumerate(records, 1) if not str(r.get("split") or "").strip()]
        if missing:
            raise W2SError(
                f"{origin}: {len(missing)} row(s) have no split value (first: row {missing[0]}); "
                "give every row train or test, or remove the column to split by seed"
            )
    rows = []
    for i, record in enumerate(records):
        text = record[text_column]
        if text is None or not str(text).strip():
            continue
        split = str(record.get("split") or "").strip() or None
        rows.append(
            RawExample(
                str(text), index_of[_label_key(record[label_column])], f"{origin}:{i}", split
            )
        )
    return rows, names


def _label_key(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _label_mapping(
    raw_labels: Sequence[Any], label_names: Sequence[str] | None, origin: str
) -> tuple[tuple[str, ...], dict[str, int]]:
    keys = sorted({_label_key(value) for value in raw_labels})
    if len(keys) < 2:
        raise W2SError(
            f"{origin}: the label column has {len(keys)} distinct value(s); need at least 2"
        )
    if all(key.lstrip("-").isdigit() for key in keys):
        numbers = sorted(int(key) for key in keys)
        if numbers != list(range(numbers[-1] + 1)):
            raise W2SError(f"{origin}: integer labels must be 0..n-1, got {numbers}")
        names = tuple(label_names) if label_names else tuple(str(n) for n in numbers)
        return names, {str(n): n for n in numbers}
    return tuple(keys), {key: index for index, key in enumerate(keys)}


def load_file(
    path: str, text_column: str, label_column: str
) -> tuple[list[RawExample], tuple[str, ...]]:
    location = Path(path).expanduser()
    return records_to_rows(
        read_records(location),
        origin=location.name,
        text_column=text_column,
        label_column=label_column,
    )


def load_hub_dataset(
    dataset_id: str, text_column: str, label_column: str, revision: str | None = None
) -> tuple[list[RawExample], tuple[str, ...]]:
    """A Hugging Face dataset id (needs the hub); `validation` serves as test when no test split exists."""
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, revision=revision)
    except Exception as error:  # datasets raises many types for "not reachable / not found"
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise W2SError(
            f"unknown task '{dataset_id}': not an embedded task, not a data file, and not a reachable dataset ({first_line})"
        ) from None
    split_map = {"train": "train", "test": "test"}
    if "test" not in loaded and "validation" in loaded:
        split_map["validation"] = "test"
    rows: list[RawExample] = []
    names: tuple[str, ...] = ()
    for hub_split, our_split in split_map.items():
        if hub_split not in loaded:
            continue
        part = loaded[hub_split]
        feature = part.features.get(label_column)
        class_names = getattr(feature, "names", None)
        records = [dict(record, split=our_split) for record in part]
        part_rows, names = records_to_rows(
            records,
            origin=f"{dataset_id}/{hub_split}",
            text_column=text_column,
            label_column=label_column,
            label_names=class_names,
        )
        rows += part_rows
    return rows, names
