"""ExPO: θ = θ_aligned + α(θ_aligned − θ_sft), streamed tensor by tensor in fp32.

With n checkpoints θ_1 … θ_n (weakest → strongest), the direction is the least-squares
slope of each weight over equally spaced steps, d = Σ c_i θ_i with c_i = (i − ī)/Σ(j − ī)²,
and θ = θ_n + α·d: α counts steps beyond the strongest. For two checkpoints d is
θ_aligned − θ_sft, so this is ExPO exactly.

Everything is checked from the headers before any weight is read: config fields that
decide what the weights mean, tensor names (tied embeddings may be stored once), shapes.
Values are checked as they stream (inputs and result finite); any failure removes the
staged output, so the output folder appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import math
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from weak2strong.errors import W2SError
from weak2strong.extrapolate.card import write_model_card
from weak2strong.extrapolate.checkpoint import (
    DTYPE_NAMES,
    FLOAT_DTYPES,
    PROVENANCE_FILE,
    Checkpoint,
    ShardWriter,
    check_output_folder,
    copy_model_files,
    parse_size,
    plan_shards,
    set_config_dtype,
    staged_folder,
    tensor_group,
)
from weak2strong.fileio import write_json

# Rows are processed in blocks of about this many elements, so the fp32 working copies of
# one huge tensor (an embedding matrix) stay small.
BLOCK_ELEMENTS = 1 << 24
# The cast statistics sample this many elements per block, in runs of SAMPLE_RUN: small
# enough that their dozen small tensor ops run on one thread (torch splits work across
# threads from 32k elements), which on a busy machine would wait for a descheduled peer.
SAMPLE_ELEMENTS = 1 << 14
SAMPLE_RUN = 1 << 9

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


def _sample(flat: torch.Tensor) -> torch.Tensor:
    """About SAMPLE_ELEMENTS elements of a 1-d tensor, in evenly spaced contiguous runs.

    Runs rather than a strided sample: a stride under a cache line's width would still
    read every byte of the block.
    """
    total = flat.numel()
    if total <= SAMPLE_ELEMENTS:
        return flat
    runs = SAMPLE_ELEMENTS // SAMPLE_RUN
    spacing = total // runs
    return flat[: runs * spacing].view(runs, spacing)[:, :SAMPLE_RUN]


@dataclass
class CastLoss:
    """How much of the fp32 update a group of tensors kept after the cast to its dtype.

    Measured on an evenly spread sample of each block (16k elements, summed over every
    block of the group), which estimates fractions and norm ratios well at a small fraction
    of a full pass's cost.
    """

    tensors: int = 0
    elements: int = 0
    updated: float = 0.0  # elements with a nonzero fp32 update (estimated from the sample)
    survived: float = 0.0  # of those, elements whose stored value differs from the aligned one
    intended_sq: float = 0.0
    realised_sq: float = 0.0
    error_sq: float = 0.0

    def add(self, aligned: torch.Tensor, result: torch.Tensor, stored: torch.Tensor) -> None:
        total = aligned.numel()
        aligned = _sample(aligned.reshape(-1))
        intended = _sample(result.reshape(-1)) - aligned
        # Against the aligned weights stored in the same dtype, so a change of dtype alone
        # (float32 → bfloat16) does not count as a lost or gained update.
        baseline = aligned.to(stored.dtype).to(torch.float32)
        realised = _sample(stored.reshape(-1)).to(torch.float32) - baseline
        # each sampled element stands for total / sampled elements, so sums over blocks and
        # tensors of different sizes stay unbiased
        weight = total / intended.numel()
        moved = intended != 0
        self.elements += total
        self.updated += weight * int(moved.sum())
        self.survived += weight * int((moved & (realised != 0)).sum())
        self.intended_sq += weight * float(torch.sum(intended * intended))
        self.realised_sq += weight * float(torch.sum(realised * realised))
        error = realised - intended
        self.error_sq += weight * float(torch.sum(error * error))

    def merge(self, other: CastLoss) -> None:
        self.tensors += other.tensors
        self.elements += other.elements
        self.updated += other.updated
        self.survived += other.survived
        self.intended_sq += other.intended_sq
        self.realised_sq += other.realised_sq
        self.error_sq += other.error_sq

    def summary(self) -> dict[str, Any]:
        return {
            "tensors": self.tensors,
            "elements": self.elements,
            "updated_fraction": self.updated / self.elements if self.elements else None,
            "survived_fraction": self.survived / self.updated if self.updated else None,
            # ‖stored update‖ / ‖fp32 update‖ and ‖stored − fp32 update‖ / ‖fp32 update‖
            "update_norm_ratio": math.sqrt(self.realised_sq / self.intended_sq)
            if self.intended_sq
            else None,
            "relative_error": math.sqrt(self.error_sq / self.intended_sq)
            if self.intended_sq
            else None,
        }


def _check_values(tensor: torch.Tensor, what: str, limit: float | None = None) -> None:
    """Finite, and within `limit` (the largest value of the dtype it is cast to)."""
    low, high = (float(value) for value in torch.aminmax(tensor))  # nan propagates
    if not (math.isfinite(low) and math.isfinite(high)):
        raise W2SError(f"{what} has non-finite values (inf or nan): refusing to write it")
    if limit is not None and max(-low, high) > limit:
        raise W2SError(f"{what} reaches {max(-low, high):.3g}, beyond what its dtype can hold")


class Workspace:
    """fp32 buffers reused from block to block.

    A fresh 64 MB tensor per block would be handed back to the operating system when freed
    and page-faulted in again for the next block: a third of the merge's time.
    """

    def __init__(self) -> None:
        self.buffers: dict[int, torch.Tensor] = {}

    def take(self, slot: int, shape: tuple[int, ...]) -> torch.Tensor:
        size = math.prod(shape)
        buffer = self.buffers.get(slot)
        if buffer is None or buffer.numel() < size:
            buffer = self.buffers[slot] = torch.empty(size, dtype=torch.float32)
        return buffer[:size].view(shape)


def _read_block(plan: Plan, tensor: TensorPlan, start: int, stop: int) -> list[torch.Tensor]:
    return [
        checkpoint.read_rows(source, start, stop)
        for checkpoint, source in zip(plan.checkpoints, tensor.sources, strict=True)
    ]


def _check_inputs(plan: Plan, tensor: TensorPlan, raws: list[torch.Tensor]) -> None:
    for checkpoint, source, raw in zip(plan.checkpoints, tensor.sources, raws, strict=True):
        _check_values(raw, f"tensor {source} of '{checkpoint.name}'")


def _combine(
    plan: Plan, tensor: TensorPlan, alpha: float, loss: CastLoss, workspace: Workspace
) -> torch.Tensor:
    """One output tensor, computed block of rows by block of rows in fp32."""
    strongest = plan.checkpoints[-1]
    if not tensor.extrapolated:
        return strongest.read(tensor.name)
    rows = tensor.shape[0] if tensor.shape else 1
    row_elements = math.prod(tensor.shape[1:]) if tensor.shape else 1
    step = max(1, BLOCK_ELEMENTS // max(1, row_elements))
    limit = torch.finfo(tensor.out_dtype).max
    out = torch.empty((rows, row_elements), dtype=tensor.out_dtype)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        shape = (stop - start, row_elements)
        raws = _read_block(plan, tensor, start, stop)
        stored = out[start:stop]
        if alpha == 0:
            _check_inputs(plan, tensor, raws)
            stored.copy_(raws[-1].reshape(shape))  # exactly the strongest weights, -0.0 included
            continue
        blocks = [
            workspace.take(slot, shape).copy_(raw.reshape(shape)) for slot, raw in enumerate(raws)
        ]
        aligned = blocks[-1]
        direction = workspace.take(len(blocks), shape)
        if len(blocks) == 2:  # coefficients are exactly −1, +1
            torch.sub(aligned, blocks[0], out=direction)
        else:
            direction.zero_()
            for coefficient, block in zip(plan.coefficients, blocks, strict=True):
                direction.add_(block, alpha=coefficient)
        result = torch.add(aligned, direction, alpha=alpha, out=direction)
        try:
            _check_values(
                result,
                f"extrapolated tensor {tensor.name} (α={alpha:g}, {tensor.out_dtype})",
                limit,
            )
        except W2SError:
            # a non-finite input makes a non-finite result: name the input when it is one
            _check_inputs(plan, tensor, raws)
            raise
        stored.copy_(result)
        loss.add(aligned, result, stored)
    loss.tensors += 1
    return out.reshape(tensor.shape)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler's kill) unwinds like Ctrl-C, so staged output gets removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def extrapolate(
    checkpoints: Sequence[str | Path],
    alpha: float,
    out: str | Path,
    *,
    dtype: str = "auto",
    shard_size: str | int = "2GB",
    force: bool = False,
    show_progress: bool = True,
    provenance: dict[str, Any] | None = None,
    selection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write θ_n + α·d (ExPO for two checkpoints) as a Hugging Face checkpoint in `out`.

    `checkpoints` run weakest → strongest (for ExPO: [sft, aligned]); each is an embedded
    model name, a local folder or a hub id. The output has the strongest model's config,
    tokenizer and generation config, safetensors shards of at most `shard_size` and an index,
    and a model card (README.md, saying how α was chosen from `selection`, see
    `card.model_card`) with the equivalent mergekit recipe. Returns what was written,
    including how much of the update survived the cast per group.
    """
    if not math.isfinite(alpha):
        raise W2SError(f"alpha must be a finite number, got {alpha}")
    max_shard = parse_size(shard_size)
    out = Path(out).expanduser()
    opened = [Checkpoint.open(name) for name in checkpoints]
    check_output_folder(out, [checkpoint.folder for checkpoint in opened])
    plan = plan_extrapolation(opened, dtype)
    started = time.perf_counter()
    losses: dict[str, CastLoss] = {}
    shards = plan_shards(
        [t.name for t in plan.tensors], [t.out_bytes for t in plan.tensors], max_shard
    )
    by_name = {t.name: t for t in plan.tensors}
    out_dtypes = sorted({str(t.out_dtype).removeprefix("torch.") for t in plan.tensors})
    report: dict[str, Any] = {
        "checkpoints": [{"name": c.name, "folder": str(c.folder)} for c in opened],
        "alpha": alpha,
        "coefficients": plan.coefficients,
        "formula": "θ_n + α·Σ c_i θ_i (two checkpoints: θ_aligned + α(θ_aligned − θ_sft))",
        "out": str(out),
        "dtype": dtype,
        "out_dtypes": out_dtypes,
        "tensors": len(plan.tensors),
        "copied_non_float_tensors": [t.name for t in plan.tensors if not t.extrapolated],
        "shards": len(shards),
        "ignored_config_differences": plan.ignored_config_differences,
        **(provenance or {}),
    }
    with _terminate_as_interrupt(), staged_folder(out, force=force) as staging:
        report["copied_files"] = copy_model_files(opened[-1].folder, staging)
        if dtype != "auto":
            set_config_dtype(staging, DTYPE_NAMES[dtype])
        writer = ShardWriter(staging, shards)
        workspace = Workspace()
        total = sum(t.out_bytes for t in plan.tensors)
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"extrapolate α={alpha:g}",
            disable=not show_progress,
        ) as progress:
            for shard in shards:
                for name, size in shard:
                    tensor = by_name[name]
                    loss = losses.setdefault(tensor_group(name), CastLoss())
                    writer.add(name, _combine(plan, tensor, alpha, loss, workspace))
                    progress.update(size)
        writer.finish()
        overall = CastLoss()
        for loss in losses.values():
            overall.merge(loss)
        report["cast_survival"] = {
            "all": overall.summary(),
            **{group: loss.summary() for group, loss in losses.items() if loss.tensors},
        }
        report["total_size"] = writer.total_size
        report["seconds"] = time.perf_counter() - started
        write_json(staging / PROVENANCE_FILE, report)
        # after the input's files are copied: the aligned model's own README is replaced
        write_model_card(staging, report, out, selection)
    return report
