"""Classification metrics, performance gap recovered (PGR), and paired bootstrap intervals.

Every method that compares a weak model, a weak-to-strong model and a ceiling uses these,
so "higher is better" and the degenerate-gap rule live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class Metric:
    """`compute(labels [..., n], probs [..., n, k]) -> [...]`: vectorised over leading axes,
    so a thousand bootstrap resamples are scored in one call."""

    name: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray]


def _accuracy(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.mean(probs.argmax(-1) == labels, axis=-1)


def _recalls(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """[..., classes] recall per class (nan where a class is absent)."""
    recalls = []
    for c in range(classes):
        support = np.sum(labels == c, axis=-1)
        hits = np.sum((labels == c) & (predicted == c), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(support > 0, hits / np.maximum(support, 1), np.nan))
    return np.stack(recalls, axis=-1)


def _balanced_accuracy(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    return np.nanmean(_recalls(labels, probs.argmax(-1), probs.shape[-1]), axis=-1)


def _f1(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Positive-class F1 for two classes, macro F1 otherwise (empty classes score 0)."""
    predicted = probs.argmax(-1)
    classes = probs.shape[-1]
    scores = []
    for c in [1] if classes == 2 else range(classes):
        tp = np.sum((predicted == c) & (labels == c), axis=-1)
        wrong = np.sum((predicted == c) != (labels == c), axis=-1)
        scores.append(np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0))
    return np.mean(np.stack(scores, axis=-1), axis=-1)


def _binary_auroc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC with tied scores counted as half, via average ranks."""
    ranks = rankdata(scores, axis=-1)
    n_pos = positive.sum(-1)
    n_neg = positive.shape[-1] - n_pos
    rank_sum = np.sum(ranks * positive, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _auroc(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    if probs.shape[-1] == 2:
        return _binary_auroc(labels == 1, probs[..., 1])
    per_class = [_binary_auroc(labels == c, probs[..., c]) for c in range(probs.shape[-1])]
    return np.nanmean(np.stack(per_class, axis=-1), axis=-1)


def _log_loss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    chosen = np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]
    return -np.mean(np.log(np.clip(chosen, 1e-7, 1.0)), axis=-1)


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accuracy", True, _accuracy),
        Metric("balanced_accuracy", True, _balanced_accuracy),
        Metric("f1", True, _f1),
        Metric("auroc", True, _auroc),
        Metric("log_loss", False, _log_loss),
    )
}


def compute_metrics(
    labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...] | None = None
) -> dict[str, float]:
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    return {name: float(METRICS[name].compute(labels, probs)) for name in names or tuple(METRICS)}


def performance_gap_recovered(
    weak: float,
    weak_to_strong: float,
    ceiling: float,
    *,
    higher_is_better: bool = True,
    min_gap: float = 1e-3,
) -> float | None:
    """PGR = (w2s − weak) / (ceiling − weak); None when there is no gap to recover.

    The ratio itself needs no sign flip for lower-is-better metrics (both differences flip),
    but the gap must point the right way: if the ceiling is not better than the weak model
    by at least `min_gap` in the metric's own direction, PGR is undefined, not a ratio of
    noise.
    """
    gap = ceiling - weak
    improvement = gap if higher_is_better else -gap
    if not np.isfinite(gap) or improvement < min_gap:
        return None
    return float((weak_to_strong - weak) / gap)


@dataclass(frozen=True)
class Interval:
    """A number with its 95% interval and the count behind it (test items, or seeds)."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def seed_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean over independent runs (seeds) with a Student-t interval; no interval for one run."""
    from scipy import stats

    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, None, None, len(array)).as_dict()
    half = float(stats.t.ppf(0.5 + level / 2, len(array) - 1) * stats.sem(array))
    return Interval(mean, mean - half, mean + half, len(array)).as_dict()


def _quantiles(
    samples: list[float] | list[float | None], level: float
) -> tuple[float | None, float | None]:
    finite = np.asarray([s for s in samples if s is not None and np.isfinite(s)])
    if len(finite) < 0.5 * len(samples):  # mostly undefined: no honest interval
        return None, None
    tail = (1 - level) / 2
    return float(np.quantile(finite, tail)), float(np.quantile(finite, 1 - tail))


def paired_bootstrap(
    labels: np.ndarray,
    probs: Mapping[str, np.ndarray],
    *,
    weak: str,
    ceiling: str,
    metric_names: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "auroc"),
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Metrics and PGR with percentile intervals from one shared resampling of the test set.

    The same resampled indices score every model, so the intervals of differences (and of
    PGR) reflect paired, not independent, uncertainty. Returns
    {metric: {"models": {model: interval}, "pgr": {model: interval}}}, PGR for every
    non-weak, non-ceiling model.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(labels), (samples, len(labels)))
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for metric_name in metric_names:
        metric = METRICS[metric_name]
        point: dict[str, float] = {}
        boot: dict[str, list[float]] = {}
        for name, p in probs.items():
            p = np.asarray(p, dtype=np.float64)
            point[name] = float(metric.compute(labels, p))
            boot[name] = metric.compute(labels[indices], p[indices]).tolist()
        out[metric_name] = _intervals_with_pgr(
            point, boot, weak, ceiling, metric.higher_is_better, level, len(labels)
        )
    return out


def paired_bootstrap_means(
    scores: Mapping[str, np.ndarray],
    *,
    weak: str | None = None,
    ceiling: str | None = None,
    baseline: str | None = None,
    higher_is_better: bool = True,
    samples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean per-item score of each model (e.g. a reward per prompt), paired by item.

    Returns {"models": {model: interval}}; with `weak` and `ceiling` also "pgr": {model:
    interval} for every other model; with `baseline` also "difference": {model: interval of
    mean(model − baseline)} for every other model.
    """
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in scores.items()}
    length = len(next(iter(arrays.values())))
    indices = np.random.default_rng(seed).integers(0, length, (samples, length))
    point = {name: float(values.mean()) for name, values in arrays.items()}
    boot = {name: values[indices].mean(axis=1).tolist() for name, values in arrays.items()}
    if weak is not None and ceiling is not None:
        table = _intervals_with_pgr(point, boot, weak, ceiling, higher_is_better, level, length)
    else:
        table = {
            "models": {
                name: Interval(point[name], *_quantiles(boot[name], level), length).as_dict()
                for name in point
            }
        }
    if baseline is not None:
        table["difference"] = {}
        for name in (n for n in point if n != baseline):
            differences = [s - b for s, b in zip(boot[name], boot[baseline], strict=True)]
            table["difference"][name] = Interval(
                point[name] - point[baseline], *_quantiles(differences, level), length
            ).as_dict()
    return table


def _intervals_with_pgr(
    point: dict[str, float],
    boot: dict[str, list[float]],
    weak: str,
    ceiling: str,
    higher_is_better: bool,
    level: float,
    n: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    models = {
        name: Interval(point[name], *_quantiles(boot[name], level), n).as_dict() for name in point
    }
    # how much better than the weak model, in the metric's direction (+ is better)
    sign = 1.0 if higher_is_better else -1.0
    gain = {
        name: Interval(
            sign * (point[name] - point[weak]),
            *_quantiles(
                [sign * (s - w) for s, w in zip(boot[name], boot[weak], strict=True)], level
            ),
            n,
        ).as_dict()
        for name in point
        if name != weak
    }
    pgr: dict[str, dict[str, Any]] = {}
    for name in (n for n in point if n not in (weak, ceiling)):
        samples_pgr = [
            performance_gap_recovered(w, s, c, higher_is_better=higher_is_better)
            for w, s, c in zip(boot[weak], boot[name], boot[ceiling], strict=True)
        ]
        low, high = _quantiles(samples_pgr, level)
        value = performance_gap_recovered(
            point[weak], point[name], point[ceiling], higher_is_better=higher_is_better
        )
        entry: dict[str, Any] = Interval(value, low, high, n).as_dict()
        if value is None:
            entry["undefined"] = (
                f"the ceiling ({point[ceiling]:.4g}) is not {'above' if higher_is_better else 'below'}"
                f" the weak model ({point[weak]:.4g}) by at least 0.001: no gap to recover"
            )
        pgr[name] = entry
    return {"models": models, "pgr": pgr, "gain": gain}
