"""Optional experiment tracking: training curves and final results, read back from each tracker.

Every tracker here is the real library writing real files (TensorBoard event files, an MLflow
file store, W&B offline runs); nothing needs the network.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from weak2strong.errors import W2SError
from weak2strong.generalize.config import ProbeConfig
from weak2strong.tracking import final_metrics, flatten, report_run, requested_trackers, run_group
from weak2strong.training import fit

HYPERPARAMETERS: dict[str, Any] = {
    "strong": {"model": "gpt2", "layers": [1, 2]},
    "probe": {"epochs": 2, "weight_decay": None},
    "seed": 0,
}
METRICS: list[dict[str, Any]] = [
    {
        "metric": "accuracy",
        "model": "w2s:naive",
        "value": 0.71,
        "low": 0.66,
        "high": 0.75,
        "n": 400,
        "interval": "bootstrap",
        "higher_is_better": True,
    },
    {
        "metric": "pgr",
        "of": "accuracy",
        "model": "w2s:naive",
        "value": 0.4,
        "low": None,
        "high": None,
        "n": 400,
        "interval": "none",
        "higher_is_better": True,
    },
    {
        "metric": "accuracy",
        "model": "extrapolated",
        "at": {"alpha": 0.5},
        "value": 0.8,
        "low": 0.7,
        "high": 0.9,
        "n": 3,
        "interval": "seeds",
        "higher_is_better": True,
    },
    {
        "metric": "pgr",
        "of": "accuracy",
        "model": "w2s:aux",
        "value": None,
        "low": None,
        "high": None,
        "n": 400,
        "interval": "none",
        "higher_is_better": True,
        "undefined": "the strong ceiling is no better than the weak model",
    },
]
ACCURACY = "final/w2s-naive/accuracy"


def _fit_probe(steps_per_epoch: int = 4, epochs: int = 2) -> None:
    torch.manual_seed(0)
    features = torch.randn(10 * steps_per_epoch, 8)
    labels = (features[:, 0] > 0).long().numpy()
    fit(
        nn.Linear(8, 2),
        features,
        np.eye(2, dtype=np.float32)[labels],
        ProbeConfig(epochs=epochs, batch_size=10, learning_rate=0.1, weight_decay=0.0),
        seed=0,
        curves_name="probe/naive",
    )


def _track(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tracker: str) -> None:
    monkeypatch.setenv("W2S_TRACK", tracker)
    monkeypatch.setenv("W2S_TRACK_DIR", str(tmp_path))


def _demo_run() -> None:
    """One command's worth: a training run inside the run's group, then its result."""
    with run_group("demo", tags=["smoke"]):
        _fit_probe()
    report_run("demo", HYPERPARAMETERS, METRICS, tags=["smoke"])


def test_metric_and_parameter_names():
    scalars = final_metrics(METRICS)
    assert scalars == {
        f"{ACCURACY}/value": 0.71,
        f"{ACCURACY}/low": 0.66,
        f"{ACCURACY}/high": 0.75,
        f"{ACCURACY}/n": 400,
        "final/w2s-naive/pgr/accuracy/value": 0.4,
        "final/w2s-naive/pgr/accuracy/n": 400,
        "final/extrapolated/accuracy/alpha_0.5/value": 0.8,
        "final/extrapolated/accuracy/alpha_0.5/low": 0.7,
        "final/extrapolated/accuracy/alpha_0.5/high": 0.9,
        "final/extrapolated/accuracy/alpha_0.5/n": 3,
        "final/w2s-aux/pgr/accuracy/n": 400,  # undefined: no value, no interval
    }
    odd = final_metrics(
        [{"metric": "kl", "model": "Qwen/Qwen2.5-0.5B", "value": 1.0, "baseline": "sampling"}]
    )
    assert list(odd) == ["final/Qwen-Qwen2.5-0.5B/kl/vs_sampling/value"]
    assert flatten(HYPERPARAMETERS) == {
        "strong.model": "gpt2",
        "strong.layers": "[1, 2]",
        "probe.epochs": 2,
        "probe.weight_decay": "null",
        "seed": 0,
    }


def test_loss_per_step_reaches_tensorboard(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _track(monkeypatch, tmp_path, "tensorboard")
    _fit_probe()
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and all("probe" in str(path.relative_to(tmp_path)) for path in events)
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    losses = accumulator.Scalars("train/loss")
    assert [point.step for point in losses] == list(range(1, 9))
    assert losses[-1].value < losses[0].value  # a separable problem: the curve goes down


def test_final_metrics_reach_tensorboard(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _track(monkeypatch, tmp_path, "tensorboard")
    _demo_run()
    curves = [path for path in (tmp_path / "demo" / "probe").iterdir() if path.is_dir()]
    assert len(curves) == 1 and curves[0].name.startswith("naive-")  # demo/probe/naive-<time>
    accumulator = EventAccumulator(str(tmp_path / "demo"))
    accumulator.Reload()
    scalars = {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}
    assert scalars == pytest.approx(final_metrics(METRICS))
    hparams = list((tmp_path / "demo").glob("*/hparams.yml"))
    assert hparams and "strong.model: gpt2" in hparams[0].read_text()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_file_store_holds_curves_parameters_and_final_metrics(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    _track(monkeypatch, tmp_path, "mlflow")
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TAGS", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")  # recorded, so the test puts it back
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    _demo_run()
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("weak2strong")
    assert experiment is not None and "smoke" not in experiment.tags
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    final = runs.pop("demo")
    assert final.data.params["strong.model"] == "gpt2"
    assert final.data.params["probe.weight_decay"] == "null"
    assert final.data.params["tags"] == "smoke"
    assert final.data.metrics[f"{ACCURACY}/value"] == pytest.approx(0.71)
    assert final.data.metrics[f"{ACCURACY}/low"] == pytest.approx(0.66)
    assert final.data.metrics[f"{ACCURACY}/high"] == pytest.approx(0.75)
    assert final.data.metrics == pytest.approx(final_metrics(METRICS))
    assert "smoke" in final.data.tags and final.data.tags["w2s.group"] == "demo"
    (name, curves), *others = runs.items()
    assert not others and name.startswith("demo/probe/naive-")
    assert curves.data.tags["w2s.group"] == "demo" and curves.data.params["epochs"] == "2"
    losses = client.get_metric_history(curves.info.run_id, "train/loss")
    assert sorted(point.step for point in losses) == list(range(1, 9))
    by_step = {point.step: point.value for point in losses}
    assert by_step[8] < by_step[1]


def _wandb_records(run_dir: Path) -> list[Any]:
    """The records of a W&B offline run, once its `exit` record is on disk.

    The .wandb file is a LevelDB-style log (a 7-byte file header, then 32 KiB blocks of chunks,
    each with a 7-byte header) of `Record` protobufs. wandb-core may still be writing it for a
    moment after `finish()` returns, so this waits for the run's last record.
    """
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("*.wandb")
    deadline = time.monotonic() + 20
    while True:
        data = path.read_bytes()
        records, chunk, position = [], b"", 7
        while position + 7 <= len(data):
            left = 32768 - position % 32768
            if left < 7:  # a block's tail too short for a header is padding
                position += left
                continue
            _, length, kind = struct.unpack("<IHB", data[position : position + 7])
            chunk += data[position + 7 : position + 7 + length]
            position += 7 + length
            if kind in (1, 4):  # a full record, or the last chunk of one
                record = wandb_internal_pb2.Record()
                record.ParseFromString(chunk)
                records.append(record)
                chunk = b""
        if records and records[-1].WhichOneof("record_type") == "exit":
            assert data[:4] == b":W&B"
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record"
        time.sleep(0.05)


def _wandb_run(run_dir: Path) -> dict[str, Any]:
    def items(updates: Any) -> dict[str, Any]:  # W&B files a key with slashes as its parts
        return {
            item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in updates
        }

    run: dict[str, Any] = {"config": {}, "summary": {}, "history": []}
    for record in _wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(
                name=record.run.display_name,
                project=record.run.project,
                group=record.run.run_group,
                tags=list(record.run.tags),
            )
        elif kind == "config":
            run["config"].update(items(record.config.update))
        elif kind == "summary":
            run["summary"].update(items(record.summary.update))
        elif kind == "history":
            run["history"].append(items(record.history.item))
    return run


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_runs_offline_by_default(tmp_path, monkeypatch):
    _track(monkeypatch, tmp_path, "wandb")
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_DIR", "WANDB_SILENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # pytest captures the output already
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    _demo_run()
    run_dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 2  # the training run, then the result
    runs = {run["name"]: run for run in map(_wandb_run, run_dirs)}
    final = runs.pop("demo")
    assert final["project"] == "weak2strong" and final["group"] == "demo"
    assert final["tags"] == ["smoke"]
    assert final["config"]["strong.model"] == "gpt2"
    assert final["config"]["probe.weight_decay"] == "null"
    summary = {key: value for key, value in final["summary"].items() if key.startswith("final/")}
    assert summary[f"{ACCURACY}/value"] == pytest.approx(0.71)
    assert summary[f"{ACCURACY}/low"] == pytest.approx(0.66)
    assert summary[f"{ACCURACY}/high"] == pytest.approx(0.75)
    assert summary == pytest.approx(final_metrics(METRICS))
    (name, curves), *others = runs.items()
    assert not others and name.startswith("demo/probe/naive-") and curves["group"] == "demo"
    assert curves["config"]["epochs"] == 2
    losses = [row["train/loss"] for row in curves["history"] if "train/loss" in row]
    assert [row["_step"] for row in curves["history"]] == list(range(1, 9))
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_no_tracker_writes_nothing_and_bad_names_fail(tmp_path, monkeypatch):
    monkeypatch.delenv("W2S_TRACK", raising=False)
    monkeypatch.setenv("W2S_TRACK_DIR", str(tmp_path))
    _fit_probe(epochs=1)
    report_run("demo", HYPERPARAMETERS, METRICS)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("W2S_TRACK", "tensorboard,neptune")
    with pytest.raises(W2SError, match="unknown tracker 'neptune'"):
        requested_trackers()
    monkeypatch.setenv("W2S_TRACK", "mlflow,wandb")
    expected = [name for name in ("mlflow", "wandb") if importlib.util.find_spec(name)]
    assert requested_trackers() == expected  # not installed: a warning, never a failure


def test_cli_rejects_an_unknown_tracker(run_cli):
    result = run_cli("--track", "neptune", "tasks")
    assert result.returncode == 2 and "unknown tracker 'neptune'" in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_a_cli_run_reports_its_name_settings_curves_and_final_metrics(
    run_cli, tmp_path, monkeypatch
):
    """`--track` after the command: the run's name, its resolved settings, the student's
    training curves and every metric record of results.json (with its interval)."""
    from mlflow.tracking import MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(name, raising=False)

    result = run_cli(
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader",
        "--strong", "minilm-l6", "--strategy", "naive", "--set", "task.max_per_split=40",
        "--set", "features.max_length=24", "--set", "bootstrap_samples=100",
        "--run-name", "tracked", "--tag", "ci", "--track", "mlflow",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs").glob("generalize-*")
    records = json.loads((folder / "results.json").read_text())["metrics"]
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's reader
    client = MlflowClient(tracking_uri=(tmp_path / "tracking" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("weak2strong")
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    final = runs.pop("tracked")
    assert final.data.params["strong"] == "minilm-l6" and "ci" in final.data.tags
    assert final.data.metrics == pytest.approx(final_metrics(records))
    accuracy = next(r for r in records if r["model"] == "ceiling" and r["metric"] == "accuracy")
    assert final.data.metrics["final/ceiling/accuracy/low"] == pytest.approx(accuracy["low"])
    curves = [run for name, run in runs.items() if name.startswith("tracked/")]
    assert len(curves) == 2  # the student on weak labels and the ceiling on gold
    history = client.get_metric_history(curves[0].info.run_id, "train/loss")
    assert len(history) > 1
