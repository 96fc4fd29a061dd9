"""Planning an extrapolation from the checkpoints' headers, before any weight is read.

Config fields that decide what the weights mean must agree, tensor names are matched (tied
embeddings may be stored once), shapes must agree, and each tensor's output dtype is set.
The direction over n checkpoints is the least-squares slope over equally spaced steps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from weak2strong.errors import W2SError
from weak2strong.extrapolate.checkpoint import DTYPE_NAMES, FLOAT_DTYPES, Checkpoint

# Config fields that change what a weight means even when every shape agrees.
ARCHITECTURE_FIELDS = (
    "model_type",
    "architectures",
    "tie_word_embeddings",
    "hidden_act",
    "hidden_activation",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "position_embedding_type",
)
_SHAPE_FIELD = re.compile(r"(size|dim|layers|heads|experts|groups)$|^(num|n)_")


def architecture_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The config fields two checkpoints must share for their weights to be combined."""
    fields: dict[str, Any] = {}
    for key, value in config.items():
        is_count = isinstance(value, int) and not isinstance(value, bool)
        if key in ARCHITECTURE_FIELDS or (is_count and _SHAPE_FIELD.search(key)):
            fields[key] = value
    return fields


def direction_coefficients(count: int) -> list[float]:
    """Least-squares slope weights over steps 0 … count−1 ([−1, 1] for two checkpoints)."""
    if count < 2:
        raise W2SError("extrapolation needs at least two checkpoints (weakest → strongest)")
    mean = (count - 1) / 2
    spread = sum((step - mean) ** 2 for step in range(count))
    return [(step - mean) / spread for step in range(count)]


@dataclass
class TensorPlan:
    name: str  # in the output, as the strongest checkpoint names it
    sources: list[str]  # its name in each checkpoint, weakest → strongest
    shape: tuple[int, ...]
    out_dtype: torch.dtype
    extrapolated: bool  # float tensors are; integer buffers are copied from the strongest

    @property
    def out_bytes(self) -> int:
        return math.prod(self.shape) * self.out_dtype.itemsize


@dataclass
class Plan:
    checkpoints: list[Checkpoint]
    tensors: list[TensorPlan]
    coefficients: list[float]
    ignored_config_differences: list[str] = field(default_factory=list)


def tied_groups(config: dict[str, Any]) -> list[set[str]]:
    """Parameter names that share one tensor (tied embeddings), from a meta-device model.

    Empty when transformers does not know the architecture: names must then match exactly.
    """
    import transformers

    architectures = config.get("architectures") or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        return []
    try:
        model_config = transformers.AutoConfig.for_model(**config)
        with torch.device("meta"):
            model = model_class(model_config)
    except Exception:  # an unusual config this transformers cannot build: no alias info
        return []
    by_tensor: dict[int, set[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(parameter), set()).add(name)
    return [names for names in by_tensor.values() if len(names) > 1]


def _match_names(strongest: Checkpoint, other: Checkpoint) -> dict[str, str]:
    """For every tensor of the strongest checkpoint, the name holding it in `other`."""
    wanted, available = set(strongest.tensors), set(other.tensors)
    if wanted == available:
        return {name: name for name in strongest.tensors}
    groups = tied_groups(strongest.config)
    mapping: dict[str, str] = {}
    for name in strongest.tensors:
        if name in available:
            mapping[name] = name
            continue
        aliases = next((group & available for group in groups if name in group), set())
        if not aliases:
            raise W2SError(
                f"tensor {name} of '{strongest.name}' is missing from '{other.name}'"
                + (" (and is not a tied copy of one it has)" if groups else "")
            )
        mapping[name] = sorted(aliases)[0]
    covered = set(mapping.values())
    for name in sorted(available - covered):
        tied_to_wanted = any(name in group and group & wanted for group in groups)
        if not tied_to_wanted:
            raise W2SError(f"tensor {name} of '{other.name}' is missing from '{strongest.name}'")
    return mapping


def plan_extrapolation(checkpoints: Sequence[Checkpoint], dtype: str = "auto") -> Plan:
    """Check that the checkpoints can be combined; say what each output tensor is made of."""
    if len(checkpoints) < 2:
        raise W2SError("extrapolation needs at least two checkpoints (weakest → strongest)")
    if dtype != "auto" and dtype not in DTYPE_NAMES:
        raise W2SError(f"unknown dtype '{dtype}' (use auto, {', '.join(DTYPE_NAMES)})")
    strongest = checkpoints[-1]
    reference = architecture_fields(strongest.config)
    ignored: set[str] = set()
    for other in checkpoints[:-1]:
        fields = architecture_fields(other.config)
        differing = sorted(
            key for key in reference.keys() | fields.keys() if reference.get(key) != fields.get(key)
        )
        if differing:
            details = "; ".join(
                f"{key}: {fields.get(key)!r} vs {reference.get(key)!r}" for key in differing[:4]
            )
            raise W2SError(
                f"'{other.name}' and '{strongest.name}' are different architectures ({details})"
            )
        ignored |= {
            key
            for key in other.config.keys() | strongest.config.keys()
            if other.config.get(key) != strongest.config.get(key)
        }
    mappings = [_match_names(strongest, other) for other in checkpoints[:-1]]
    plans = []
    mismatched = []
    for name, info in strongest.tensors.items():
        sources = [mapping[name] for mapping in mappings] + [name]
        extrapolated = info.dtype in FLOAT_DTYPES
        for checkpoint, source in zip(checkpoints, sources, strict=True):
            source_info = checkpoint.tensors[source]
            where = f"in '{checkpoint.name}'"
            if source_info.shape != info.shape:
                mismatched.append(f"{name}: {source_info.shape} {where} vs {info.shape}")
            elif (source_info.dtype in FLOAT_DTYPES) != extrapolated:
                mismatched.append(f"{name}: {source_info.dtype} {where} vs {info.dtype}")
        out_dtype = DTYPE_NAMES[dtype] if extrapolated and dtype != "auto" else info.dtype
        plans.append(TensorPlan(name, sources, info.shape, out_dtype, extrapolated))
    if mismatched:
        more = f" (and {len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        raise W2SError("tensor shapes or kinds differ: " + "; ".join(mismatched[:3]) + more)
    return Plan(list(checkpoints), plans, direction_coefficients(len(checkpoints)), sorted(ignored))
