"""Typed results: dataclasses a command fills while it runs, turned into JSON only when the
run writes results.json, and read back from it by the command's tables and plots.

`to_json` and `from_json` walk any results dataclass by its type hints: nested dataclasses,
lists, string-keyed dicts and optional fields. A field missing from an older results.json
takes its default; a field whose metadata says `omit_if_none` is left out of the JSON while
it is None, so results.json keeps the layout it had before the results were typed.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

OMIT_IF_NONE = {"omit_if_none": True}


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval and the count behind it (test items, prompts or seeds);
    `value` None is undefined, and `undefined` says why."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    undefined: str | None = dataclasses.field(default=None, metadata=OMIT_IF_NONE)


def estimate(interval: Mapping[str, Any]) -> Estimate:
    """An interval object of the scoring layer (`{value, low, high, n}`) as an Estimate."""
    return from_json(Estimate, interval)


def optional_estimate(interval: Mapping[str, Any] | None) -> Estimate | None:
    """`estimate`, or None where there is no interval (a difference from itself)."""
    return None if interval is None else estimate(interval)


def to_json(value: Any) -> Any:
    """A results dataclass (or anything inside one) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: dict[str, Any] = {}
        for item in dataclasses.fields(value):
            field_value = getattr(value, item.name)
            if field_value is None and item.metadata.get("omit_if_none"):
                continue
            found[item.name] = to_json(field_value)
        return found
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(cls: type[T], data: Any) -> T:
    """The `cls` instance a `to_json` value (or an older results.json's) describes."""
    return typing.cast(T, _read(cls, data))


def _read(annotation: Any, data: Any) -> Any:
    if data is None:
        return None
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        hints = _hints(annotation)
        known = {item.name for item in dataclasses.fields(annotation)}
        return annotation(
            **{key: _read(hints[key], value) for key, value in data.items() if key in known}
        )
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in args if arg is not type(None)]
        return _read(options[0], data) if len(options) == 1 else data
    if origin is list:
        return [_read(args[0], item) for item in data] if args else list(data)
    if origin is dict:
        return {key: _read(args[1], item) for key, item in data.items()} if args else dict(data)
    return data
