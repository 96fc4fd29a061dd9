"""Typed dataclass configs: loaded from YAML, overridden with `key=value`, hashed for run folders.

The hash covers only settings that differ from their defaults (and skips fields marked
`metadata={"hash": False}`), so adding a new option with a default keeps every existing
run folder's name, as in open_lth. A command whose code changes its results bumps its
config's `RESULTS_VERSION`; above 1 it joins the hash, so old cached steps are not reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from weak2strong.errors import W2SError, shown
from weak2strong.fileio import parse_yaml, read_yaml
from weak2strong.settings import check_settings

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def result_settings(config: Any) -> dict[str, Any]:
    """Every setting that can change a result: the config minus fields marked `hash: False`."""
    settings: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if not item.metadata.get("hash", True):
            continue
        value = getattr(config, item.name)
        settings[item.name] = result_settings(value) if dataclasses.is_dataclass(value) else value
    return settings


def without_unhashed(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict restricted to the fields that `result_settings` keeps."""
    hints = typing.get_type_hints(cls)
    kept: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if not item.metadata.get("hash", True) or item.name not in data:
            continue
        nested = _dataclass_in(hints[item.name])
        value = data[item.name]
        kept[item.name] = (
            without_unhashed(nested, value) if nested and isinstance(value, dict) else value
        )
    return kept


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        nested = _dataclass_in(hints[item.name])
        if nested is not None:
            keys += _valid_keys(nested, f"{prefix}{item.name}.")
        else:
            keys.append(prefix + item.name)
    return keys


def _dataclass_in(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    return None


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    if not isinstance(data, dict):
        raise W2SError(
            f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {shown(data)}"
        )
    hints = typing.get_type_hints(cls)
    names = {item.name for item in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            valid = ", ".join(_valid_keys(cls))
            raise W2SError(f"unknown config key {shown(f'{prefix}{key}')} (valid keys: {valid})")
    kwargs = {key: _coerce(hints[key], value, f"{prefix}{key}") for key, value in data.items()}
    return cls(**kwargs)


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    nested = _dataclass_in(annotation)
    if nested is not None:
        return from_dict(nested, value if value is not None else {}, f"{key}.")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        is_null = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_null and type(None) in args:
            return None
        errors = []
        for option in (arg for arg in args if arg is not type(None)):
            try:
                return _coerce(option, value, key)
            except W2SError as error:
                errors.append(str(error))
        raise W2SError(errors[0] if errors else f"config key '{key}': invalid value {shown(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise W2SError(
                f"config key '{key}' must be one of {', '.join(map(str, args))}, got {shown(value)}"
            )
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise W2SError(f"config key '{key}' must be a mapping, got {shown(value)}")
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(value_type, v, f"{key}.{k}") for k, v in value.items()}
    if origin in (list, tuple, Sequence):
        items = (
            value
            if isinstance(value, list | tuple)
            else [v.strip() for v in str(value).split(",") if v.strip()]
        )
        item_type = args[0] if args else Any
        coerced = [_coerce(item_type, item, key) for item in items]
        return tuple(coerced) if origin is tuple else coerced
    return _coerce_scalar(annotation, value, key)


def _coerce_scalar(annotation: Any, value: Any, key: str) -> Any:
    """A leaf value: any, bool, int, float or str."""
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "0", "off"):
            return False
        raise W2SError(f"config key '{key}' must be true or false, got {shown(value)}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise W2SError(f"config key '{key}' must be a number, got {shown(value)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise W2SError(f"config key '{key}' must be a number, got {shown(value)}") from None
        if annotation is int:
            if not number.is_integer():
                raise W2SError(f"config key '{key}' must be an integer, got {shown(value)}")
            return int(number)
        return number
    if annotation is str:
        if isinstance(value, dict | list):
            raise W2SError(f"config key '{key}' must be a string, got {shown(value)}")
        return str(value)
    raise W2SError(f"config key '{key}': unsupported field type {annotation!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` → (["a", "b"], value parsed as YAML, so 3 is an int and null is None)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise W2SError(
            f"malformed override {shown(text)}: expected key=value, e.g. seed=1 or task.name=imdb"
        )
    try:
        value = parse_yaml(raw, f"the value of --set {key.strip()}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def canonical_model_names(value: Any) -> Any:
    """`value` with every earlier name of an embedded model replaced by its current one, so
    that a config naming `qwen2.5-0.5b-instruct` is the same run as one naming
    `qwen2.5-coder-0.5b-instruct` (and the run records the name of the model it is)."""
    from weak2strong.models.registry import ALIASES

    if isinstance(value, str):
        return ALIASES.get(value, value)
    if isinstance(value, list):
        return [canonical_model_names(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical_model_names(item) for key, item in value.items()}
    return value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults, then the YAML file, then each `key=value` override, validated against `cls`."""
    data: dict[str, Any] = {}
    if path is not None:
        location = Path(path).expanduser()
        loaded = read_yaml(location, "config file")
        if loaded is not None and not isinstance(loaded, dict):
            raise W2SError(f"config file {location} must hold a mapping of settings")
        data = loaded or {}
    for override in overrides:
        keys, value = parse_override(override)
        section = data
        for part in keys[:-1]:
            existing = section.get(part)
            if not isinstance(existing, dict):
                existing = {}
                section[part] = existing
            section = existing
        section[keys[-1]] = value
    config = from_dict(cls, canonical_model_names(data))
    check_settings(config)
    return config


def _hashed_items(config: Any) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for item in dataclasses.fields(config):
        if not item.metadata.get("hash", True):
            continue
        value = getattr(config, item.name)
        if item.metadata.get("hash") == "when-changed" and value == _factory_value(item):
            continue
        if dataclasses.is_dataclass(value):
            nested = _hashed_items(value)
            if nested:
                items[item.name] = nested
            continue
        if item.default is not dataclasses.MISSING and value == item.default:
            continue
        if item.default_factory is not dataclasses.MISSING and value == item.default_factory():
            continue
        items[item.name] = list(value) if isinstance(value, tuple) else value
    return items


def _factory_value(item: dataclasses.Field[Any]) -> Any:
    factory: Any = item.default_factory
    return None if factory is dataclasses.MISSING else factory()


def results_version(config: Any) -> int:
    """The version of the code that makes this command's results (1 unless bumped)."""
    return int(getattr(type(config), "RESULTS_VERSION", 1))


def non_default_settings(config: Any) -> dict[str, Any]:
    """The result-affecting settings that differ from the command's own defaults: what the
    user changed. (The hash compares a nested section with its class's defaults instead, so
    a section a command sets up its own way, as ExPO's sampling, would look changed.)"""
    return _differences(result_settings(config), result_settings(type(config)()))


def _differences(current: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key, value in current.items():
        base = default.get(key)
        if isinstance(value, dict) and isinstance(base, dict):
            nested = _differences(value, base)
            if nested:
                changed[key] = nested
        elif _plain_value(value) != _plain_value(base):
            changed[key] = _plain_value(value)
    return changed


def _plain_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def config_hash(config: Any, length: int = 10) -> str:
    """Short stable digest of every non-default, result-affecting setting."""
    content: dict[str, Any] = {"kind": type(config).__name__, "settings": _hashed_items(config)}
    if results_version(config) > 1:
        content["results_version"] = results_version(config)
    payload = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One setting of a config: its dotted key, type, default and help."""

    key: str
    annotation: Any
    default: Any
    help: str


def leaves(cls: type, prefix: str = "", defaults: Any = None) -> list[Leaf]:
    """Every leaf setting of a config class, with the defaults of the enclosing config."""
    hints = typing.get_type_hints(cls)
    instance = defaults if defaults is not None else cls()
    found: list[Leaf] = []
    for item in dataclasses.fields(cls):
        annotation = hints[item.name]
        value = getattr(instance, item.name)
        if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
            found += leaves(annotation, f"{prefix}{item.name}.", value)
        else:
            found.append(Leaf(prefix + item.name, annotation, value, item.metadata.get("help", "")))
    return found
