"""mergekit-style YAML recipes: read one into the settings of `w2s extrapolate`, write one back.

ExPO is mergekit's `task_arithmetic` with the SFT model as `base_model` and weight 1+α on
the aligned model: θ_sft + (1+α)(θ_aligned − θ_sft) = θ_aligned + α(θ_aligned − θ_sft).
`normalize: true` would divide by the weight sum 1+α and give back the aligned model, so
it is refused. Our own spelling, `merge_method: expo`, takes `alpha:` (one α or a list).

A recipe is resolved into `sft`, `aligned`, `alphas` and `dtype` when the config loads, so
the run folder is keyed by what the recipe says, not by the name of its file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from weak2strong.errors import W2SError, clipped, shown
from weak2strong.fileio import read_yaml

METHODS = ("task_arithmetic", "expo")
TOP_KEYS = ("merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "alpha")
MODEL_KEYS = ("model", "parameters")
# mergekit's dtype names (and their usual short forms) → the `dtype` setting
DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}
# the settings a recipe fills, in the order conflicts are reported
RECIPE_SETTINGS = ("sft", "aligned", "alphas", "dtype")


@dataclass(frozen=True)
class Recipe:
    sft: str
    aligned: str
    alphas: list[float]
    dtype: str | None  # None: the recipe names no dtype (the setting keeps its value)

    def settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {"sft": self.sft, "aligned": self.aligned, "alphas": self.alphas}
        if self.dtype is not None:
            values["dtype"] = self.dtype
        return values


def exact_sum(*terms: float) -> float:
    """The sum of numbers as their decimal text reads (1 + 0.3 is 1.3, 1.3 − 1 is 0.3)."""
    return float(sum((Decimal(repr(float(term))) for term in terms), Decimal(0)))


def exact_product(left: float, right: float) -> float:
    return float(Decimal(repr(float(left))) * Decimal(repr(float(right))))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise W2SError(f"{where} must be a number, got {shown(value)}")
    if not math.isfinite(value):
        raise W2SError(f"{where} must be a finite number, got {shown(value)}")
    return float(value)


def _mapping(value: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise W2SError(f"{where} must be a mapping, got {shown(value)}")
    for key in value:
        if key not in known:
            raise W2SError(f"unknown key {shown(f'{where}.{key}')} (known: {', '.join(known)})")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise W2SError(f"{where} must be a model name or folder, got {shown(value)}")
    return value


def _dtype(value: Any, where: str) -> str:
    name = value.lower().removeprefix("torch.") if isinstance(value, str) else ""
    if name not in DTYPE_ALIASES:
        raise W2SError(f"{where} must be one of float32, bfloat16, float16, got {shown(value)}")
    return DTYPE_ALIASES[name]


def parse_recipe(data: Any, source: str = "recipe") -> Recipe:
    """The ExPO settings a mergekit-style recipe describes; anything else is a W2SError."""
    try:
        return _parse(data)
    except W2SError as error:
        raise W2SError(f"{source}: {error}") from None


def _alphas(method: str, data: dict[str, Any], parameters: dict[str, Any]) -> list[float]:
    """α from task_arithmetic's weight 1+α on the aligned model, or expo's alpha."""
    if method == "task_arithmetic":
        if "alpha" in data:
            raise W2SError("alpha is for merge_method: expo; task_arithmetic takes weight 1+α")
        if "weight" not in parameters:
            raise W2SError("missing key 'models[0].parameters.weight' (1+α)")
        weight = parameters["weight"]
        if isinstance(weight, list | dict):
            raise W2SError(
                "models[0].parameters.weight must be one number (a list is a per-layer "
                "gradient in mergekit, which is not ExPO)"
            )
        return [exact_sum(_number(weight, "models[0].parameters.weight"), -1.0)]
    if "weight" in parameters:
        raise W2SError("merge_method: expo takes alpha, not models[0].parameters.weight")
    if "alpha" not in data:
        raise W2SError("missing key 'alpha' (merge_method: expo)")
    given = data["alpha"]
    values = given if isinstance(given, list) else [given]
    if not values:
        raise W2SError("alpha must name at least one α")
    return [_number(value, "alpha") for value in values]


def _check_not_normalized(data: dict[str, Any]) -> None:
    merge_parameters = _mapping(data.get("parameters") or {}, "parameters", ("normalize",))
    normalize = merge_parameters.get("normalize", False)
    if not isinstance(normalize, bool):
        raise W2SError(f"parameters.normalize must be true or false, got {shown(normalize)}")
    if normalize:
        raise W2SError(
            "parameters.normalize: true divides by the weight sum 1+α, which gives back the "
            "aligned model, not ExPO: set it to false"
        )


def _parse(data: Any) -> Recipe:
    if not isinstance(data, dict):
        raise W2SError(f"a recipe is a mapping of {', '.join(TOP_KEYS)}, got {shown(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise W2SError(f"unknown key {shown(key)} (known: {', '.join(TOP_KEYS)})")
    for key in ("merge_method", "base_model", "models"):
        if key not in data:
            raise W2SError(f"missing key '{key}'")
    method = data["merge_method"]
    if method not in METHODS:
        raise W2SError(
            f"merge_method {shown(method)} is not ExPO: use task_arithmetic (weight 1+α on the "
            "aligned model) or expo (with alpha)"
        )
    sft = _name(data["base_model"], "base_model")
    models = data["models"]
    if not isinstance(models, list) or len(models) != 1:
        count = len(models) if isinstance(models, list) else "no list"
        raise W2SError(
            f"models must list exactly one model, the aligned one (got {count}): ExPO "
            "extrapolates one aligned model away from base_model"
        )
    entry = _mapping(models[0], "models[0]", MODEL_KEYS)
    if "model" not in entry:
        raise W2SError("missing key 'models[0].model'")
    aligned = _name(entry["model"], "models[0].model")
    parameters = _mapping(entry.get("parameters") or {}, "models[0].parameters", ("weight",))
    alphas = _alphas(method, data, parameters)
    _check_not_normalized(data)
    # mergekit computes in `dtype` and stores in `out_dtype`, or in `dtype` without one;
    # the computation here is always float32, so either names the stored dtype
    stored = {
        key: _dtype(data[key], key) for key in ("dtype", "out_dtype") if data.get(key) is not None
    }
    return Recipe(sft, aligned, alphas, stored.get("out_dtype", stored.get("dtype")))


def read_recipe(path: str | Path) -> Recipe:
    location = Path(path).expanduser()
    return parse_recipe(read_yaml(location, "recipe"), f"recipe {location}")


def apply_recipe(config: Any) -> None:
    """Fill `config`'s sft, aligned, alphas and dtype from its recipe, then forget the file.

    A setting that differs from its default and from the recipe is a conflict: the recipe
    and the flags must agree where both are given (a setting given at its default value
    cannot be told apart from one not given, and the recipe's value wins).
    """
    recipe = read_recipe(config.recipe)
    fields = {item.name: item for item in dataclasses.fields(config)}
    if config.checkpoints:
        raise W2SError(
            f"recipe {config.recipe} names the SFT and aligned models: checkpoints "
            "(--checkpoint) cannot be given with it"
        )
    for key, value in recipe.settings().items():
        current = getattr(config, key)
        item = fields[key]
        factory = item.default_factory
        default = item.default if factory is dataclasses.MISSING else factory()
        if current != default and current != value:
            raise W2SError(
                f"recipe {config.recipe} sets {key} to {_shown(value)}, but {key} is also "
                f"set to {_shown(current)}: give it in one place"
            )
        setattr(config, key, value)
    config.recipe = None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return clipped(
            ",".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value)
        )
    return shown(value)


def mergekit_recipe(
    names: list[str], alpha: float, coefficients: list[float], stored_dtype: str | None
) -> dict[str, Any]:
    """A mergekit recipe that computes θ_n + α·Σ c_i θ_i, the extrapolation itself.

    task_arithmetic is θ_base + Σ w_i (θ_i − θ_base); with θ_1 as base and w_i = α·c_i
    (+1 for the strongest) it is θ_n + α·Σ c_i θ_i, because Σ c_i = 0. For two checkpoints
    that is weight 1+α on the aligned model. mergekit's `dtype` is the dtype it computes
    in (float32, as here) and `out_dtype` the one it stores.
    """
    last = len(names) - 1
    models = []
    for index in range(1, len(names)):
        weight = exact_product(alpha, coefficients[index])
        if index == last:
            weight = exact_sum(1.0, weight)
        models.append({"model": names[index], "parameters": {"weight": weight}})
    recipe: dict[str, Any] = {
        "merge_method": "task_arithmetic",
        "base_model": names[0],
        "models": models,
        "parameters": {"normalize": False},
        "dtype": "float32",
    }
    if stored_dtype is not None and stored_dtype != "float32":
        recipe["out_dtype"] = stored_dtype
    return recipe


def dump_recipe(recipe: dict[str, Any]) -> str:
    return yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True)


__all__ = [
    "Recipe",
    "apply_recipe",
    "dump_recipe",
    "exact_sum",
    "mergekit_recipe",
    "parse_recipe",
    "read_recipe",
]
