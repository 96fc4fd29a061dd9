"""Optional training curves: TensorBoard event files from the shared training loop."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from weak2strong.errors import W2SError
from weak2strong.generalize.config import ProbeConfig
from weak2strong.tracking import requested_trackers
from weak2strong.training import fit


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


def test_loss_per_step_reaches_tensorboard(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("W2S_TRACK", "tensorboard")
    monkeypatch.setenv("W2S_TRACK_DIR", str(tmp_path))
    _fit_probe()
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events and all("probe" in str(path.relative_to(tmp_path)) for path in events)
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    losses = accumulator.Scalars("train/loss")
    assert [point.step for point in losses] == list(range(1, 9))
    assert losses[-1].value < losses[0].value  # a separable problem: the curve goes down


def test_no_tracker_writes_nothing_and_bad_names_fail(tmp_path, monkeypatch):
    monkeypatch.delenv("W2S_TRACK", raising=False)
    monkeypatch.setenv("W2S_TRACK_DIR", str(tmp_path))
    _fit_probe(epochs=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("W2S_TRACK", "tensorboard,wandb")
    with pytest.raises(W2SError, match="unknown tracker 'wandb'"):
        requested_trackers()
    monkeypatch.setenv("W2S_TRACK", "mlflow")
    expected = ["mlflow"] if importlib.util.find_spec("mlflow") else []
    assert requested_trackers() == expected  # not installed: a warning, never a failure


def test_cli_rejects_an_unknown_tracker(run_cli):
    result = run_cli("--track", "wandb", "tasks")
    assert result.returncode == 2 and "unknown tracker 'wandb'" in result.stderr
