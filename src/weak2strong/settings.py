"""Config fields: their help text, whether they change results, and the ranges of numbers.

Every command's config is a dataclass of `setting(...)` fields. The help text is what
`w2s <command> --help` shows; `hash=False` marks settings that change no result (progress
bars, where outputs go), which the run folder's hash skips; numeric settings must be finite
and within the range their field name (or their own `range`) gives.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weak2strong.errors import W2SError, shown


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    hash: bool | str = True,
    range: Range | None = None,
) -> Any:
    """A config field with its `--help` text; `hash=False` for settings that change no
    result (progress bars, output places); `hash="when-changed"` for a nested config added
    to a command later: hashed only when it differs from its factory's value, so existing
    run folders keep their names; `range` overrides the range by field name."""
    metadata: dict[str, Any] = {"help": help, "hash": hash}
    if range is not None:
        metadata["range"] = range
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take (None: unbounded on that side)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )

    def __str__(self) -> str:
        low = "-∞" if self.low is None else _bound(self.low)
        high = "∞" if self.high is None else _bound(self.high)
        return f"{'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def _bound(value: float) -> str:
    """A range's end as written: whole numbers in full (a seed's 4294967295, not 4.29e+09)."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


COUNT = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
UNIT = Range(0, 1)
SEED_RANGE = Range(0, 2**32 - 1)  # what numpy's and torch's generators take
# The ranges of numeric settings by field name, for every command's config in one place (a
# field's own `metadata={"range": Range(...)}` comes first). Every float must be finite.
_COUNTS = [
    "epochs",
    "batch_size",
    "max_length",
    "new_tokens",
    "bootstrap_samples",
    "max_per_split",
    "test_prompts",
    "train_prompts",
    "prompt_words",
    "completion_words",
    "samples_per_prompt",
    "ceiling_candidates",
    "bon_n",
    "width",
    "successors",
    "rounds",
    "weak_words",
    "max_train",
    "tensor_parallel_size",
    "max_concurrency",
    "max_model_len",
    "alpha",
    "train_examples",
    "test_examples",
    "validation_examples",
    "eval_every",
]
RANGES: dict[str, Range] = {
    **dict.fromkeys(_COUNTS, COUNT),
    **dict.fromkeys(
        (
            "weight_decay",
            "top_k",
            "rank",
            "hidden",
            "chunk_length",
            "rewind_step",
            "max_retries",
            "train_limit",
        ),
        NON_NEGATIVE,
    ),
    **dict.fromkeys(("learning_rate", "temperature", "timeout", "beta"), POSITIVE),
    **dict.fromkeys(("confidence_alpha", "confidence_warmup"), UNIT),
    "eval_pairs": Range(2),
    "seed": SEED_RANGE,
    "seeds": SEED_RANGE,
    "dropout": Range(0, 1, high_open=True),
    "top_p": Range(0, 1, low_open=True),
    "subset_keep": Range(0, 1, low_open=True),
    "gpu_memory_utilization": Range(0, 1, low_open=True),
    "test_fraction": Range(0, 1, low_open=True, high_open=True),
    "fraction": Range(0, 1, low_open=True, high_open=True),
}


def check_settings(config: Any, prefix: str = "") -> None:
    """Every numeric setting finite and within its range, every enum-like one (a `Literal`)
    one of its choices, before anything runs: a config built in Python is checked as one
    loaded from YAML or the command line."""
    try:
        hints = typing.get_type_hints(type(config))
    except (NameError, TypeError):  # a class whose annotations name what its module lacks
        hints = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        key = f"{prefix}{item.name}"
        if dataclasses.is_dataclass(value):
            check_settings(value, f"{key}.")
            continue
        choices = literal_choices(hints.get(item.name))
        values = value if isinstance(value, list | tuple) else [value]
        for one in values:
            if choices is not None and one not in choices:
                raise W2SError(
                    f"config key '{key}' must be one of {', '.join(map(str, choices))}, "
                    f"got {shown(one)}"
                )
        allowed = item.metadata.get("range") or RANGES.get(item.name)
        for number in values:
            if isinstance(number, bool) or not isinstance(number, int | float):
                continue
            if not math.isfinite(number):
                raise W2SError(f"config key '{key}' must be a finite number, got {number}")
            if allowed is not None and not allowed.allows(number):
                raise W2SError(f"config key '{key}' must be in {allowed}, got {number:g}")


def literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The values an enum-like setting allows (`Literal[...]`, a list of one, or an optional
    one: None too); None when the setting is not enum-like."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return args
    if origin in (list, tuple) and args:
        return literal_choices(args[0])
    if origin in (typing.Union, types.UnionType):
        inner = [literal_choices(arg) for arg in args if arg is not type(None)]
        if inner and all(choices is not None for choices in inner):
            optional = (None,) if type(None) in args else ()
            return tuple(value for choices in inner for value in choices or ()) + optional
    return None


def dotted_keys(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested settings mapping as `{"probe.epochs": 3, ...}` (an empty section stays a value)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            flat |= dotted_keys(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
