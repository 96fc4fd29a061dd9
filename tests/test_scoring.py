"""PGR in both metric directions and the degenerate case; metrics and bootstrap on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from weak2strong.scoring import compute_metrics, paired_bootstrap, performance_gap_recovered


def test_pgr_higher_is_better():
    assert performance_gap_recovered(0.80, 0.81, 0.88) == pytest.approx(0.125)
    assert performance_gap_recovered(0.70, 0.70, 0.90) == 0.0
    assert performance_gap_recovered(0.70, 0.90, 0.90) == pytest.approx(1.0)
    assert performance_gap_recovered(0.70, 0.65, 0.90) == pytest.approx(-0.25)


def test_pgr_lower_is_better():
    # a loss: weak 0.50, ceiling 0.20, student 0.30 recovers two thirds of the gap
    assert performance_gap_recovered(0.50, 0.30, 0.20, higher_is_better=False) == pytest.approx(
        2 / 3
    )
    # the same numbers read as higher-is-better have no gap to recover (ceiling below weak)
    assert performance_gap_recovered(0.50, 0.30, 0.20, higher_is_better=True) is None


def test_pgr_undefined_without_a_gap():
    assert performance_gap_recovered(0.80, 0.85, 0.80) is None
    assert performance_gap_recovered(0.80, 0.85, 0.8000001) is None
    assert performance_gap_recovered(0.80, 0.85, float("nan")) is None


def test_metrics_on_a_hand_checked_example():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.6, 0.4]])
    result = compute_metrics(labels, probs)
    assert result["accuracy"] == 0.5
    assert result["balanced_accuracy"] == 0.5
    assert result["f1"] == 0.5  # precision 1/2, recall 1/2
    assert (
        result["auroc"] == 0.75
    )  # positive scores {0.7, 0.4} beat negatives {0.1, 0.6} in 3 of 4 pairs
    assert result["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.4])))


def test_paired_bootstrap_intervals_contain_the_point_and_pgr():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)

    def noisy(accuracy: float) -> np.ndarray:
        correct = rng.random(400) < accuracy
        predicted = np.where(correct, labels, 1 - labels)
        confidence = 0.5 + 0.4 * rng.random(400)
        p1 = np.where(predicted == 1, confidence, 1 - confidence)
        return np.stack([1 - p1, p1], axis=1)

    probs = {"weak": noisy(0.65), "w2s": noisy(0.75), "ceiling": noisy(0.9)}
    result = paired_bootstrap(labels, probs, weak="weak", ceiling="ceiling", samples=200, seed=1)
    accuracy = result["accuracy"]["models"]
    for name in probs:
        assert accuracy[name]["low"] <= accuracy[name]["value"] <= accuracy[name]["high"]
        assert accuracy[name]["n"] == 400
    assert set(result["accuracy"]["pgr"]) == {"w2s"}
    pgr = result["accuracy"]["pgr"]["w2s"]
    assert 0.1 < pgr["value"] < 0.8
    assert pgr["low"] < pgr["value"] < pgr["high"]
    again = paired_bootstrap(labels, probs, weak="weak", ceiling="ceiling", samples=200, seed=1)
    assert again == result
    # gain over the weak model, paired, signed so that + is better (also for log loss)
    gain = result["accuracy"]["gain"]
    assert set(gain) == {"w2s", "ceiling"}
    expected = accuracy["w2s"]["value"] - accuracy["weak"]["value"]
    assert gain["w2s"]["value"] == pytest.approx(expected)
    assert gain["w2s"]["low"] <= gain["w2s"]["value"] <= gain["w2s"]["high"]
    # paired: narrower than the two models' intervals side by side
    assert gain["w2s"]["high"] - gain["w2s"]["low"] < (
        accuracy["w2s"]["high"] - accuracy["w2s"]["low"]
    ) + (accuracy["weak"]["high"] - accuracy["weak"]["low"])
    assert gain["ceiling"]["low"] > 0  # 90% against 65% on 400 items
    losses = paired_bootstrap(
        labels, probs, weak="weak", ceiling="ceiling", metric_names=("log_loss",), samples=200
    )["log_loss"]
    loss_gain = losses["models"]["weak"]["value"] - losses["models"]["ceiling"]["value"]
    assert losses["gain"]["ceiling"]["value"] == pytest.approx(loss_gain)
    assert loss_gain > 0


@pytest.mark.parametrize("classes", [2, 3])
def test_vectorised_metrics_match_scikit_learn(classes):
    from sklearn import metrics as skm

    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 300)
    logits = rng.normal(size=(300, classes)) + 1.5 * np.eye(classes)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs[:20] = probs[0]  # ties
    ours = compute_metrics(labels, probs)
    predicted = probs.argmax(1)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert ours["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, predicted)
    )
    average = "binary" if classes == 2 else "macro"
    assert ours["f1"] == pytest.approx(skm.f1_score(labels, predicted, average=average))
    expected_auc = (
        skm.roc_auc_score(labels, probs[:, 1])
        if classes == 2
        else skm.roc_auc_score(labels, probs, multi_class="ovr")
    )
    assert ours["auroc"] == pytest.approx(expected_auc)
    assert ours["log_loss"] == pytest.approx(skm.log_loss(labels, probs))
