"""Optional training curves in TensorBoard or MLflow, through accelerate's trackers.

Off unless asked for: `w2s --track tensorboard <command>` (or `W2S_TRACK=tensorboard,mlflow`)
logs every training loop's loss per optimiser step under `W2S_TRACK_DIR` (default
`tracking/`): TensorBoard event files one folder per training run, or an MLflow file store.
Neither library is required; asking for one that is not installed warns and logs nothing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from weak2strong.distributed import is_main, state
from weak2strong.errors import W2SError

TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # name → module it needs
log = logging.getLogger(__name__)

# values may be 0-d tensors; a loop gets None instead when no tracker is on, so a run
# without one never waits for the device (or the other processes) to hand back a loss
LogValues = Callable[[dict[str, Any], int], None]


def requested_trackers() -> list[str]:
    """The trackers asked for in W2S_TRACK that are installed."""
    names = [n.strip() for n in os.environ.get("W2S_TRACK", "").split(",") if n.strip()]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise W2SError(f"unknown tracker '{unknown[0]}' (known: {', '.join(TRACKERS)})")
    installed = [name for name in names if importlib.util.find_spec(TRACKERS[name]) is not None]
    for name in sorted(set(names) - set(installed)):
        if is_main():
            log.warning(
                "%s is not installed (pip install %s): training curves not logged", name, name
            )
    return installed


def tracking_dir() -> Path:
    return Path(os.environ.get("W2S_TRACK_DIR", "tracking")).expanduser()


@contextlib.contextmanager
def training_curves(name: str, settings: dict[str, Any]) -> Iterator[LogValues | None]:
    """`log(values, step)` for one training run, or None when no tracker is asked for.

    Every process gets the logger (accelerate writes from the main process only).
    """
    trackers = requested_trackers()
    if not trackers:
        yield None
        return
    from accelerate import Accelerator

    state()  # the process group first, as in every accelerate use here
    accelerator = Accelerator(log_with=trackers, project_dir=str(tracking_dir()))
    accelerator.init_trackers(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", config=settings)
    try:
        yield lambda values, step: accelerator.log(
            {key: float(value) for key, value in values.items()}, step=step
        )
    finally:
        accelerator.end_training()
