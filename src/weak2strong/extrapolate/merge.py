"""ExPO: θ = θ_aligned + α(θ_aligned − θ_sft), streamed tensor by tensor in fp32.

With n checkpoints θ_1 … θ_n (weakest → strongest), the direction is the least-squares
slope of each weight over equally spaced steps, d = Σ c_i θ_i with c_i = (i − ī)/Σ(j − ī)²,
and θ = θ_n + α·d: α counts steps beyond the strongest. For two checkpoints d is
θ_aligned − θ_sft, so this is ExPO exactly.

Everything is checked from the headers before any weight is read (`planning`). Values
are checked as they stream (inputs and result finite); any failure removes the
staged output, so the output folder appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from weak2strong.errors import W2SError
from weak2strong.extrapolate.card import write_model_card
from weak2strong.extrapolate.cast import CastLoss
from weak2strong.extrapolate.checkpoint import (
    DTYPE_NAMES,
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
from weak2strong.extrapolate.planning import Plan, TensorPlan, plan_extrapolation
from weak2strong.fileio import write_json

# Rows are processed in blocks of about this many elements, so the fp32 working copies of
# one huge tensor (an embedding matrix) stay small.
BLOCK_ELEMENTS = 1 << 24


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
    shards = plan_shards(
        [t.name for t in plan.tensors], [t.out_bytes for t in plan.tensors], max_shard
    )
    report = _report_header(plan, alpha, out, dtype, len(shards), provenance)
    with _terminate_as_interrupt(), staged_folder(out, force=force) as staging:
        report["copied_files"] = copy_model_files(opened[-1].folder, staging)
        if dtype != "auto":
            set_config_dtype(staging, DTYPE_NAMES[dtype])
        writer = ShardWriter(staging, shards)
        losses = _write_shards(plan, alpha, shards, writer, show_progress)
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


def _report_header(
    plan: Plan,
    alpha: float,
    out: Path,
    dtype: str,
    shards: int,
    provenance: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the provenance report says before any weight is written."""
    return {
        "checkpoints": [{"name": c.name, "folder": str(c.folder)} for c in plan.checkpoints],
        "alpha": alpha,
        "coefficients": plan.coefficients,
        "formula": "θ_n + α·Σ c_i θ_i (two checkpoints: θ_aligned + α(θ_aligned − θ_sft))",
        "out": str(out),
        "dtype": dtype,
        "out_dtypes": sorted({str(t.out_dtype).removeprefix("torch.") for t in plan.tensors}),
        "tensors": len(plan.tensors),
        "copied_non_float_tensors": [t.name for t in plan.tensors if not t.extrapolated],
        "shards": shards,
        "ignored_config_differences": plan.ignored_config_differences,
        **(provenance or {}),
    }


def _write_shards(
    plan: Plan,
    alpha: float,
    shards: list[list[tuple[str, int]]],
    writer: ShardWriter,
    show_progress: bool,
) -> dict[str, CastLoss]:
    """Every output tensor, shard by shard; the cast statistics per tensor group."""
    by_name = {t.name: t for t in plan.tensors}
    losses: dict[str, CastLoss] = {}
    workspace = Workspace()
    with tqdm(
        total=sum(t.out_bytes for t in plan.tensors),
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
    return losses
