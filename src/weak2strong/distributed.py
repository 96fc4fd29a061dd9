"""One process or many: who computes, who writes, and how work is shared between processes.

Every command runs unchanged under a multi-process launcher:

    torchrun --nproc_per_node N -m weak2strong.cli generalize ...        (CPU or GPU)
    accelerate launch --num_processes N -m weak2strong.cli generalize ...  (GPU)

The rules, the same for every command:
- Training is data-parallel through accelerate (`weak2strong.training`): gradients are
  all-reduced, every process holds the same weights after every step.
- Inference is sharded: `map_batches` deals whole batches to processes, each batch is
  computed once, and every process gets every result back in batch order. Batches are
  formed exactly as one process would form them, so results do not depend on the number
  of processes (sampling is seeded per batch).
- Only the main process writes files, prints and shows progress. Whether a cached file
  exists is decided by the main process and its contents are broadcast (`cached_value`),
  so processes on other machines never need to see the run folder to agree.

With one process none of this communicates: every helper reduces to the plain computation.
The process group comes from accelerate's `PartialState`; on a machine without an
accelerator it is created as a CPU (gloo) group, which accelerate does not do by itself.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


def launched() -> bool:
    """True under a multi-process launcher (torchrun and accelerate launch set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _no_accelerator() -> bool:
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None:
        return not accelerator.is_available()
    return not torch.cuda.is_available()


# Long single-process stretches (the main process merging a large checkpoint while the
# others wait for its report) must not trip the collective timeout (30 min by default).
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@functools.cache
def state() -> PartialState:
    """The process group (created on first use; every later accelerate object shares it)."""
    from accelerate import PartialState

    # PartialState only builds a CPU group when told: without cpu=True a CPU-only machine
    # under torchrun gets N processes that each believe they are alone.
    if not launched():
        return PartialState(cpu=_no_accelerator())
    return PartialState(cpu=_no_accelerator(), timeout=COLLECTIVE_TIMEOUT)


def process_index() -> int:
    return state().process_index if launched() else 0


def num_processes() -> int:
    return state().num_processes if launched() else 1


def is_main() -> bool:
    """The process that writes files, prints and shows progress."""
    return state().is_main_process if launched() else True


def device() -> torch.device:
    """This process's device: cuda:<local rank> on a GPU node, cpu otherwise."""
    import torch

    if launched():
        return state().device
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def barrier() -> None:
    if launched():
        state().wait_for_everyone()


def broadcast(value: T | None) -> T:
    """The main process's `value`, on every process (the others may pass None)."""
    if launched():
        from accelerate.utils import broadcast_object_list

        value = broadcast_object_list([value])[0]
    return cast(T, value)


def main_decides(decide: Callable[[], T]) -> T:
    """Run `decide` on the main process only and hand its answer to every process."""
    return broadcast(decide() if is_main() else None)


def all_gather(value: T) -> list[T]:
    """Every process's `value`, in process order, on every process."""
    if not launched():
        return [value]
    from accelerate.utils import gather_object

    return list(gather_object([value]))


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's rows of `tensor`, concatenated in process order (counts may differ)."""
    if not launched():
        return tensor
    import torch
    from accelerate.utils import gather, pad_across_processes

    counts = gather(torch.tensor([tensor.shape[0]], device=tensor.device)).tolist()
    padded = gather(pad_across_processes(tensor.contiguous(), dim=0))
    width = max(counts)
    return torch.cat([padded[rank * width : rank * width + n] for rank, n in enumerate(counts)])


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over every process."""
    if not launched():
        return tensor
    from accelerate.utils import reduce

    return cast("torch.Tensor", reduce(tensor, reduction="sum"))


def describe() -> dict[str, Any]:
    """The processes and machines of this run, for env.json and results.json."""
    if not launched():
        return {"processes": 1, "machines": 1, "backend": None}
    hosts = all_gather(socket.gethostname())
    return {
        "processes": num_processes(),
        "machines": len(set(hosts)),
        "backend": state().backend,
    }


def split_batch(batch: Sequence[T]) -> list[T]:
    """This process's contiguous share of one global batch (shares differ by at most one)."""
    count, rank = num_processes(), process_index()
    size, extra = divmod(len(batch), count)
    start = rank * size + min(rank, extra)
    return list(batch[start : start + size + (1 if rank < extra else 0)])


def batch_shares(batch_size: int) -> list[int]:
    """How many examples of a full batch of `batch_size` each process takes."""
    size, extra = divmod(batch_size, num_processes())
    return [size + (1 if rank < extra else 0) for rank in range(num_processes())]


# ---- caches decided by the main process


def cached_value(
    path: Path,
    compute: Callable[[], T],
    load: Callable[[Path], T],
    save: Callable[[Path, T], None],
) -> tuple[T, bool]:
    """The value stored at `path`, or `compute()` stored there; (value, whether it was cached).

    The main process decides whether `path` holds a readable value and loads it; the others
    receive its value. A file that exists but cannot be read (truncated, torn) is named in
    a warning, removed and computed again. Otherwise every process runs `compute` (it may
    train or infer collectively) and only the main process saves the result.
    """

    def read() -> tuple[bool, T | None]:
        if not path.exists():
            return False, None
        try:
            return True, load(path)
        except Exception as error:  # any reader's failure means the same: not a usable cache
            reason = (str(error).strip().splitlines() or [""])[0][:200]
            log.warning(
                "damaged cache file %s (%s: %s): computing it again",
                path.absolute(),
                type(error).__name__,
                reason,
            )
            path.unlink(missing_ok=True)
            return False, None

    found, stored = main_decides(read)
    if found:
        return cast(T, stored), True
    value = compute()
    if is_main():
        save(path, value)
    return value, False


# ---- sharded inference


def map_batches(
    compute: Callable[[list[int]], R],
    batches: Sequence[Sequence[int]],
    *,
    description: str = "inference",
    show_progress: bool = True,
) -> list[R]:
    """`compute(batch)` for every batch of item indices, each batch on one process.

    Batches are dealt round-robin (balancing length-sorted batches); each process returns
    the results of all batches in batch order. Every index is computed exactly once: the
    gathered indices are checked against the batches before anything is returned.
    """
    rank, count = process_index(), num_processes()
    mine = list(range(rank, len(batches), count))
    local: list[tuple[int, R]] = []
    bar = tqdm(
        mine,
        desc=description,
        unit="batch",
        disable=not show_progress or not is_main(),
    )
    for number in bar:
        local.append((number, compute(list(batches[number]))))
    if count == 1:
        return [result for _, result in local]
    gathered = all_gather(local)
    results: dict[int, R] = {}
    for share in gathered:
        for number, result in share:
            results[number] = result
    if sorted(results) != list(range(len(batches))):
        raise RuntimeError(f"{description}: batches lost or computed twice across processes")
    if is_main():
        rows = [sum(len(batches[n]) for n, _ in share) for share in gathered]
        log.info(
            "%s: %d rows in %d batches over %d processes (%s rows each)",
            description,
            sum(rows),
            len(batches),
            count,
            " + ".join(map(str, rows)),
        )
    return [results[number] for number in range(len(batches))]


def batches_of(count: int, batch_size: int, order: Sequence[int] | None = None) -> list[list[int]]:
    """Consecutive batches of `batch_size` indices, taken in `order` (default 0..count-1)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    indices = list(order) if order is not None else list(range(count))
    return [indices[start : start + batch_size] for start in range(0, len(indices), batch_size)]


def map_rows(
    compute: Callable[[list[int]], torch.Tensor],
    count: int,
    batch_size: int,
    *,
    order: Sequence[int] | None = None,
    description: str = "inference",
    show_progress: bool = True,
) -> torch.Tensor:
    """Row i of the result is row i's output: `compute(batch)` gives one row per index."""
    import torch

    batches = batches_of(count, batch_size, order)
    outputs = map_batches(
        lambda batch: compute(batch).detach().cpu(),
        batches,
        description=description,
        show_progress=show_progress,
    )
    if not outputs:
        raise ValueError(f"{description}: nothing to compute")
    result = torch.empty((count, *outputs[0].shape[1:]), dtype=outputs[0].dtype)
    for batch, rows in zip(batches, outputs, strict=True):
        result[torch.tensor(batch)] = rows
    return result


def map_items(
    compute: Callable[[list[int]], list[T]],
    count: int,
    batch_size: int,
    *,
    description: str = "inference",
    show_progress: bool = True,
) -> list[T]:
    """Like `map_rows` for outputs that are Python objects (texts, scores), in index order."""
    batches = batches_of(count, batch_size)
    outputs = map_batches(compute, batches, description=description, show_progress=show_progress)
    return [item for batch_output in outputs for item in batch_output]
