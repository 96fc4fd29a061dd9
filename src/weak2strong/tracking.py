"""Optional experiment tracking in TensorBoard, MLflow or W&B, through accelerate's trackers.

Off unless asked for: `w2s <command> --track tensorboard` (or `W2S_TRACK=tensorboard,mlflow,wandb`)
logs under `W2S_TRACK_DIR` (default `tracking/`):

- every training loop's curves (`train/loss` per optimiser step, with its schedule as
  hyperparameters), one tracker run per training run named `<curves name>-<time>` (prefixed
  `<group>/` inside `run_group`), from `training_curves`;
- a command's result, one tracker run named after the w2s run: its hyperparameters (the
  config flattened to dotted keys) and final metrics with their intervals, from `report_run`.

Where each tracker writes, unless its own settings say otherwise:

- tensorboard: event files in `<dir>/<run name>/`;
- mlflow: a file store `<dir>/mlruns` (experiment `weak2strong`; MLFLOW_TRACKING_URI and
  MLFLOW_EXPERIMENT_NAME override), shown by
  `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri <dir>/mlruns`;
- wandb: `<dir>/wandb/` (project `weak2strong`; WANDB_PROJECT and WANDB_DIR override); offline
  unless WANDB_MODE or WANDB_API_KEY is set, so it never needs the network (`wandb sync
  <dir>/wandb/offline-run-*` uploads later).

None of the libraries is required: asking for one that is not installed warns and logs nothing.
Metric and parameter names keep to letters, digits, `_ - . /` and spaces (what all three take).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib.util
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weak2strong.distributed import is_main, state
from weak2strong.errors import W2SError
from weak2strong.settings import dotted_keys

if TYPE_CHECKING:
    from accelerate import Accelerator
    from accelerate.tracking import GeneralTracker

TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # name → module
PROJECT = "weak2strong"  # the MLflow experiment and the W&B project
log = logging.getLogger(__name__)

# values may be 0-d tensors; a loop gets None instead when no tracker is on, so a run
# without one never waits for the device (or the other processes) to hand back a loss
LogValues = Callable[[dict[str, Any], int], None]
Scalar = bool | int | float | str

_group: contextvars.ContextVar[tuple[str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "w2s_tracking_group", default=None
)
_labels_used: set[str] = set()
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- /]")


def requested_trackers() -> list[str]:
    """The trackers asked for in W2S_TRACK that are installed."""
    names = [n.strip() for n in os.environ.get("W2S_TRACK", "").split(",") if n.strip()]
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise W2SError(f"unknown tracker '{unknown[0]}' (known: {', '.join(TRACKERS)})")
    installed = [name for name in names if importlib.util.find_spec(TRACKERS[name]) is not None]
    for name in sorted(set(names) - set(installed)):
        if is_main():
            log.warning("%s is not installed (pip install %s): nothing logged to it", name, name)
    return list(dict.fromkeys(installed))


def tracking_dir() -> Path:
    return Path(os.environ.get("W2S_TRACK_DIR", "tracking")).expanduser()


# ---- names


def clean_key(key: str) -> str:
    """`key` in the characters TensorBoard, MLflow and W&B all accept ('w2s:naive' → 'w2s-naive').

    Slashes stay (they group names in every UI); empty, '.' and '..' parts become '_'.
    """
    parts = [_UNSAFE.sub("-", part).strip() for part in str(key).split("/")]
    return "/".join("_" if not part or set(part) == {"."} else part for part in parts)


def _segment(text: Any) -> str:
    """One part of a metric name: a slash inside it becomes '-'."""
    return clean_key(str(text).replace("/", "-"))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """A nested config as dotted keys with scalar values (anything else as JSON text)."""
    plain = {
        key: dataclasses.asdict(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type)
        else value
        for key, value in values.items()
    }
    flat: dict[str, Scalar] = {}
    for name, value in dotted_keys(plain, prefix).items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            flat.update(flatten(dataclasses.asdict(value), f"{name}."))
            continue
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()  # numpy scalars, 0-d tensors
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, bool | int | float | str):
            value = json.dumps(value, default=str)  # None → "null", [1, 2] → "[1, 2]"
        flat[clean_key(name)] = value
    return flat


def final_metrics(metrics: list[Mapping[str, Any]]) -> dict[str, int | float]:
    """The scalars of results.json metric records, named for trackers.

    `final/<model>/<metric>[/<of>][/vs_<baseline>][/<at key>_<at value>...]/<field>` for
    field value, low, high (the interval's bounds) and n; None and non-finite numbers are left
    out. A record without a model is filed under `run`.
    """
    scalars: dict[str, int | float] = {}
    for record in metrics:
        parts = [record.get("model") or "run", record["metric"]]
        if record.get("of"):
            parts.append(record["of"])
        if record.get("baseline"):
            parts.append(f"vs_{record['baseline']}")
        parts += [f"{key}_{value}" for key, value in (record.get("at") or {}).items()]
        base = "final/" + "/".join(_segment(part) for part in parts)
        for field in ("value", "low", "high", "n"):
            number = record.get(field)
            if isinstance(number, bool) or not isinstance(number, int | float):
                continue
            if math.isfinite(number):
                scalars[f"{base}/{field}"] = number if field == "n" else float(number)
    return scalars


# ---- tracker runs


@contextlib.contextmanager
def run_group(name: str | None, tags: list[str] | None = None) -> Iterator[None]:
    """Training curves logged inside are named `<name>/<curves name>-<time>` and carry `tags`.

    In W&B they join the group `name`, in MLflow they carry the tag `w2s.group`; a
    `report_run(name, ...)` afterwards lands in the same group.
    """
    token = _group.set(None if name is None else (name, tuple(tags or ())))
    try:
        yield
    finally:
        _group.reset(token)


@contextlib.contextmanager
def training_curves(name: str, settings: dict[str, Any]) -> Iterator[LogValues | None]:
    """`log(values, step)` for one training run, or None when no tracker is asked for.

    Every process gets the logger (accelerate writes from the main process only).
    """
    trackers = requested_trackers()
    if not trackers:
        yield None
        return
    state()  # the process group first, as in every accelerate use here
    group, tags = _group.get() or (None, ())
    label = _unique_label(f"{group}/{name}" if group else name)
    with _tracker_run(trackers, label, settings, list(tags), group, silent=True) as accelerator:
        yield lambda values, step: accelerator.log(
            {clean_key(key): float(value) for key, value in values.items()}, step=step
        )


def report_run(
    run_name: str,
    hyperparameters: Mapping[str, Any],
    metrics: list[Mapping[str, Any]],
    tags: list[str] | None = None,
) -> None:
    """Log one finished w2s run to the requested trackers (a no-op when none is requested).

    A tracker run named `run_name` gets `hyperparameters` flattened to dotted keys (plus
    `tags` as text) and the final `metrics` (results.json records) as the scalars
    `final_metrics` names. MLflow and W&B also get `tags` as their own tags. Main process only.
    """
    trackers = requested_trackers()
    if not trackers or not is_main():
        return
    state()
    config = dict(flatten(hyperparameters))
    if tags:
        config.setdefault("tags", ",".join(tags))
    with _tracker_run(trackers, run_name, config, list(tags or ()), run_name, silent=False) as acc:
        acc.log(final_metrics(metrics))


def _unique_label(name: str) -> str:
    label = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, count = label, 1
    while candidate in _labels_used:  # two training runs of one name in the same second
        count += 1
        candidate = f"{label}-{count}"
    _labels_used.add(candidate)
    return candidate


@contextlib.contextmanager
def _tracker_run(
    trackers: list[str],
    run_name: str,
    config: Mapping[str, Any],
    tags: list[str],
    group: str | None,
    *,
    silent: bool,
) -> Iterator[Accelerator]:
    from accelerate import Accelerator

    make = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}
    instances = [make[name](run_name, tags, group, silent) for name in trackers]
    accelerator = Accelerator(log_with=instances)
    accelerator.init_trackers(PROJECT, config=flatten(config))
    try:
        yield accelerator
    finally:
        # not accelerator.end_training(): that also destroys the process group, which the
        # rest of the command still needs under torchrun
        for tracker in accelerator.trackers:
            tracker.finish()


def _tensorboard(run_name: str, tags: list[str], group: str | None, silent: bool) -> GeneralTracker:
    from accelerate.tracking import TensorBoardTracker

    return TensorBoardTracker(clean_key(run_name), str(tracking_dir()))


def _mlflow(run_name: str, tags: list[str], group: str | None, silent: bool) -> GeneralTracker:
    from accelerate.tracking import MLflowTracker

    if is_main():
        _mlflow_store()
    run_tags = {clean_key(tag): "" for tag in tags}
    if group is not None:
        run_tags["w2s.group"] = group
    return MLflowTracker(PROJECT, run_name=run_name, tags=run_tags or None)


def _mlflow_store() -> None:
    """The file store under the tracking folder (unless MLFLOW_TRACKING_URI says otherwise), with
    the experiment made first so it does not take the first run's tags as its own."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        # MLflow 3.x keeps the file store behind this switch (its default is now SQLite, which
        # needs the full mlflow, not mlflow-skinny)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((tracking_dir() / "mlruns").resolve().as_uri())
    experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
    if mlflow.get_experiment_by_name(experiment) is None:
        with contextlib.suppress(MlflowException):  # another process made it meanwhile
            mlflow.create_experiment(experiment)


def _wandb(run_name: str, tags: list[str], group: str | None, silent: bool) -> GeneralTracker:
    import wandb
    from accelerate.tracking import WandBTracker

    options: dict[str, Any] = {"name": run_name, "group": group}
    if not os.environ.get("WANDB_DIR"):
        options["dir"] = str(tracking_dir())
        if is_main():  # wandb falls back to a temporary folder for one that does not exist
            tracking_dir().mkdir(parents=True, exist_ok=True)
    if tags:
        options["tags"] = [tag[:64] for tag in tags]  # W&B's limit per tag
    if not os.environ.get("WANDB_MODE") and not os.environ.get("WANDB_API_KEY"):
        options["mode"] = "offline"
    if not os.environ.get("WANDB_SILENT") and not os.environ.get("WANDB_QUIET"):
        # a command trains many times: its curves runs say nothing, its result says where
        options["settings"] = wandb.Settings(silent=True) if silent else wandb.Settings(quiet=True)
    return WandBTracker(os.environ.get("WANDB_PROJECT", PROJECT), **options)
