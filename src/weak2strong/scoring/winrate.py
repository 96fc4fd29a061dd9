"""Win rate and length-controlled win rate, as AlpacaEval 2.0 defines them.

An annotation compares a model's output (`output_2`) with a baseline's (`output_1`) on one
instruction; `preference` is in [1, 2] (2: the model's output wins; 1.5 or 0: a tie).

- Win rate: mean(preference − 1) × 100.
- Length-controlled win rate (Dubois et al. 2024, `alpaca_eval.metrics.glm_winrate`): a
  logistic GLM of the preference on tanh of the standardised length difference, the
  instruction's difficulty and a model term, fit by L1-regularised logistic regression
  (liblinear, no intercept, regularisation strength by 5-fold cross-validation grouped by
  annotation) with the continuous preference as the target; the LC win rate is its mean
  predicted preference with the length difference set to 0.
  - `length_controlled_v1` (AlpacaEval 2.0's): needs AlpacaEval's `df_gamed.csv`, which
    holds each of its 805 instructions' difficulty and the annotations of two length-gamed
    baselines the fit is regularised towards (weight λ/2 each, λ = 0.2). Annotations are
    matched to difficulties by position, as AlpacaEval does.
  - `length_controlled_minimal`: the length and model terms alone, for prompt sets other
    than AlpacaEval's, where no instruction difficulty exists.

The package's numbers are reproduced exactly (tests compare with `alpaca-eval`); the
intervals are a bootstrap over instructions, the GLM refit on each resample with the
regularisation strength the full data chose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from weak2strong.errors import W2SError
from weak2strong.report import ResultTable, format_interval
from weak2strong.runs.typed import Estimate

GLMName = Literal["length_controlled_v1", "length_controlled_minimal"]
REGULARISE_TO_BASELINE = 0.2  # AlpacaEval 2.0's λ
FOLDS = 5
C_GRID = np.logspace(-4, 4, 10)  # LogisticRegressionCV's default grid
LIBLINEAR_SEED = 123


@dataclass(frozen=True)
class GamedBaselines:
    """AlpacaEval's `df_gamed.csv`: instruction difficulties and the gamed baselines' rows."""

    instruction_difficulty: np.ndarray  # by instruction index
    std_delta_len: np.ndarray
    difficulty: np.ndarray  # per gamed row
    preference: np.ndarray  # in [0, 1]

    @classmethod
    def read(cls, path: str | Path) -> GamedBaselines:
        import pandas as pd

        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as error:
            raise W2SError(f"cannot read AlpacaEval's df_gamed file {path}: {error}") from None
        needed = {"index", "instruction_difficulty", "std_delta_len", "preference"}
        if missing := needed - set(frame.columns):
            raise W2SError(
                f"{path}: not AlpacaEval's df_gamed.csv (no {', '.join(sorted(missing))})"
            )
        by_index = frame.drop_duplicates("index").set_index("index")["instruction_difficulty"]
        difficulty = np.full(int(by_index.index.max()) + 1, np.nan)
        difficulty[by_index.index.to_numpy(int)] = by_index.to_numpy(float)
        return cls(
            difficulty,
            frame["std_delta_len"].to_numpy(float),
            frame["instruction_difficulty"].to_numpy(float),
            frame["preference"].to_numpy(float),
        )


def preference_values(preferences: Sequence[float | None] | np.ndarray) -> np.ndarray:
    """Preferences as floats in [1, 2]: AlpacaEval's 0 (tie) is 1.5; missing ones are NaN."""
    values = np.array([np.nan if p is None else float(p) for p in preferences])
    values[values == 0] = 1.5
    bad = ~np.isnan(values) & ((values < 1) | (values > 2))
    if bad.any():
        raise W2SError(f"preferences must lie in [1, 2] (or 0 for a tie); got {values[bad][0]}")
    return values


def win_rate(preferences: Sequence[float | None] | np.ndarray) -> dict[str, float]:
    """AlpacaEval's head-to-head numbers (missing preferences dropped)."""
    values = preference_values(preferences)
    values = values[~np.isnan(values)] - 1
    n = len(values)
    return {
        "win_rate": float(values.mean() * 100) if n else float("nan"),
        "standard_error": float(values.std(ddof=1) / np.sqrt(n) * 100) if n > 1 else float("nan"),
        "n_wins": int((values > 0.5).sum()),
        "n_wins_base": int((values < 0.5).sum()),
        "n_draws": int((values == 0.5).sum()),
        "n_total": n,
    }


def _fit(
    features: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    c: float,
    random_state: int | np.random.RandomState = LIBLINEAR_SEED,
) -> np.ndarray:
    """Logistic regression on a continuous target: each row twice, as label 1 with weight
    p·w and label 0 with weight (1 − p)·w (AlpacaEval's construction)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=c,
        l1_ratio=1.0,
        solver="liblinear",
        fit_intercept=False,
        random_state=random_state,
    )
    doubled = np.concatenate([features, features])
    labels = np.concatenate([np.ones(len(target)), np.zeros(len(target))])
    model.fit(
        doubled, labels, sample_weight=np.concatenate([target, 1 - target]) * np.tile(weights, 2)
    )
    return np.asarray(model.coef_[0], dtype=np.float64)


def _log_loss(
    coef: np.ndarray, features: np.ndarray, target: np.ndarray, weights: np.ndarray
) -> float:
    predicted = np.clip(_logistic(features @ coef), 1e-15, 1 - 1e-15)
    loss = target * np.log(predicted) + (1 - target) * np.log(1 - predicted)
    return float(-np.mean(loss * weights))


def _logistic(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.exp(-np.logaddexp(0, -x)))


def _choose_c(
    features: np.ndarray, target: np.ndarray, weights: np.ndarray, weighted: bool
) -> float:
    """The grid's regularisation with the best mean held-out log loss over folds grouped by
    annotation (both copies of a row fall in the same fold)."""
    from sklearn.model_selection import GroupKFold

    rows = np.arange(len(target))
    doubled_groups = np.concatenate([rows, rows])
    losses = np.zeros(len(C_GRID))
    for train, test in GroupKFold(n_splits=FOLDS).split(doubled_groups, groups=doubled_groups):
        train_rows, test_rows = train[train < len(rows)], test[test < len(rows)]
        # as in scikit-learn's CV path: one generator per fold, its draws seed the grid's fits
        state = np.random.RandomState(LIBLINEAR_SEED)
        for i, c in enumerate(C_GRID):
            coef = _fit(features[train_rows], target[train_rows], weights[train_rows], c, state)
            score_weights = weights[test_rows] if weighted else np.ones(len(test_rows))
            losses[i] += _log_loss(coef, features[test_rows], target[test_rows], score_weights)
    return float(C_GRID[int(np.argmin(losses))])


@dataclass(frozen=True)
class Design:
    """The GLM's training rows and the rows it predicts (length difference set to 0)."""

    train: np.ndarray
    target: np.ndarray
    weights: np.ndarray
    predict: np.ndarray
    weighted: bool


def _design(
    preferences: np.ndarray,
    baseline_lengths: np.ndarray,
    model_lengths: np.ndarray,
    difficulty: np.ndarray | None,
    gamed: GamedBaselines | None,
) -> Design:
    """`difficulty` None: the minimal GLM; else each annotation's instruction difficulty,
    with the gamed baselines' rows to regularise towards."""
    delta = baseline_lengths - model_lengths
    scale = delta.std(ddof=1)
    std_delta = delta / scale if scale > 0 else np.zeros_like(delta)
    target = preferences - 1
    ones = np.ones(len(target))
    if difficulty is None or gamed is None:
        train = np.column_stack([np.tanh(std_delta), ones])
        predict = np.column_stack([np.zeros(len(target)), ones])
        return Design(train, target, ones, predict, weighted=False)
    own = np.column_stack([np.tanh(std_delta), difficulty, ones])
    baselines = np.column_stack(
        [np.tanh(gamed.std_delta_len), gamed.difficulty, np.zeros(len(gamed.preference))]
    )
    weights = np.concatenate([np.full(len(gamed.preference), REGULARISE_TO_BASELINE / 2), ones])
    return Design(
        np.concatenate([baselines, own]),
        np.concatenate([gamed.preference, target]),
        weights,
        np.column_stack([np.zeros(len(target)), difficulty, ones]),
        weighted=True,
    )


def instruction_difficulties(
    count: int, glm: GLMName, gamed: GamedBaselines | None
) -> np.ndarray | None:
    """Each annotation's instruction difficulty (v1), matched by position as AlpacaEval does."""
    if glm == "length_controlled_minimal":
        return None
    if gamed is None:
        raise W2SError(
            "length_controlled_v1 needs AlpacaEval's df_gamed.csv (its instruction "
            "difficulties); without it use length_controlled_minimal"
        )
    if count > len(gamed.instruction_difficulty):
        raise W2SError(
            f"{count} annotations but df_gamed has difficulties for "
            f"{len(gamed.instruction_difficulty)} instructions (AlpacaEval's set, in its order)"
        )
    return gamed.instruction_difficulty[:count]


def length_controlled_win_rate(
    preferences: Sequence[float | None] | np.ndarray,
    baseline_lengths: Sequence[int] | np.ndarray,
    model_lengths: Sequence[int] | np.ndarray,
    *,
    glm: GLMName = "length_controlled_minimal",
    gamed: GamedBaselines | None = None,
    difficulty: np.ndarray | None = None,
    c: float | None = None,
) -> tuple[float, float]:
    """(LC win rate in %, the regularisation strength C the fit used); `c` given: no CV;
    `difficulty` given: per annotation, instead of by position."""
    values = preference_values(list(preferences))
    if difficulty is None:
        difficulty = instruction_difficulties(len(values), glm, gamed)
    design = _design(
        values,
        np.asarray(baseline_lengths, dtype=np.float64),
        np.asarray(model_lengths, dtype=np.float64),
        difficulty,
        gamed,
    )
    keep = ~np.isnan(design.target)  # missing preferences train nothing, still predicted
    train, target, weights = design.train[keep], design.target[keep], design.weights[keep]
    chosen = c if c is not None else _choose_c(train, target, weights, design.weighted)
    coef = _fit(train, target, weights, chosen)
    return float(_logistic(design.predict @ coef).mean() * 100), chosen


@dataclass(kw_only=True)
class WinRates:
    """A model's win rate and length-controlled win rate against one reference, in %."""

    win_rate: Estimate
    length_controlled_win_rate: Estimate
    glm: str


def win_rate_table(title: str, rates: Mapping[str, WinRates]) -> ResultTable:
    rows = [
        [
            name,
            format_interval(rate.win_rate, 1),
            format_interval(rate.length_controlled_win_rate, 1),
            str(rate.win_rate.n),
        ]
        for name, rate in rates.items()
    ]
    glms = sorted({rate.glm for rate in rates.values()})
    note = f"% against the reference; GLM {', '.join(glms)}; 95% bootstrap over instructions"
    return ResultTable(
        title, ["model", "win rate", "length-controlled win rate", "annotations"], rows, [note]
    )


def win_rates(
    preferences: Sequence[float | None],
    baseline_outputs: Sequence[str],
    model_outputs: Sequence[str],
    *,
    glm: GLMName = "length_controlled_minimal",
    gamed: GamedBaselines | None = None,
    samples: int = 200,
    seed: int = 0,
) -> WinRates:
    """Both win rates with 95% bootstrap intervals over instructions."""
    values = preference_values(preferences)
    base = np.array([len(text) for text in baseline_outputs], dtype=np.float64)
    model = np.array([len(text) for text in model_outputs], dtype=np.float64)
    if not len(values) == len(base) == len(model):
        raise W2SError("one preference, one baseline output and one model output per instruction")
    n = int((~np.isnan(values)).sum())
    rng = np.random.default_rng(seed)
    raw = [
        np.nanmean(values[rng.integers(0, len(values), len(values))]) * 100 - 100
        for _ in range(samples)
    ]
    low, high = np.percentile(raw, [2.5, 97.5])
    rate = Estimate(win_rate(values)["win_rate"], float(low), float(high), n)
    if n < 2 * FOLDS:  # the GLM's 5-fold cross-validation needs more
        undefined = f"a length-controlled win rate needs at least {2 * FOLDS} annotations"
        return WinRates(
            win_rate=rate,
            length_controlled_win_rate=Estimate(float("nan"), n=n, undefined=undefined),
            glm=glm,
        )
    difficulty = instruction_difficulties(len(values), glm, gamed)
    lc, c = length_controlled_win_rate(values, base, model, gamed=gamed, difficulty=difficulty)
    controlled = []
    for _ in range(samples):
        rows = rng.integers(0, len(values), len(values))
        controlled.append(
            length_controlled_win_rate(
                values[rows],
                base[rows],
                model[rows],
                gamed=gamed,
                difficulty=None if difficulty is None else difficulty[rows],
                c=c,
            )[0]
        )
    lc_low, lc_high = np.percentile(controlled, [2.5, 97.5])
    return WinRates(
        win_rate=rate,
        length_controlled_win_rate=Estimate(lc, float(lc_low), float(lc_high), n),
        glm=glm,
    )


def read_annotations(path: str | Path) -> list[Mapping[str, Any]]:
    """An AlpacaEval annotations JSON: a list of {instruction, output_1, output_2,
    preference, generator_1, generator_2, ...}."""
    import json

    location = Path(path).expanduser()
    try:
        rows = json.loads(location.read_text("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise W2SError(f"cannot read annotations {location}: {error}") from None
    if not isinstance(rows, list) or not rows:
        raise W2SError(f"{location}: annotations must be a non-empty JSON list")
    for number, row in enumerate(rows, start=1):
        missing = [
            f
            for f in ("output_1", "output_2", "preference")
            if not isinstance(row, dict) or f not in row
        ]
        if missing:
            raise W2SError(f"{location}: annotation {number} has no {', '.join(missing)}")
    return rows


def annotation_win_rates(
    rows: Sequence[Mapping[str, Any]],
    *,
    glm: GLMName,
    gamed: GamedBaselines | None = None,
    samples: int = 200,
    seed: int = 0,
) -> WinRates:
    """Both win rates of one model's annotations against one baseline."""
    models = {str(row.get("generator_2", "")) for row in rows}
    if len(models) > 1:
        raise W2SError(
            f"annotations of {len(models)} models ({', '.join(sorted(models))}): "
            "give one model's annotations"
        )
    return win_rates(
        [row["preference"] for row in rows],
        [str(row["output_1"]) for row in rows],
        [str(row["output_2"]) for row in rows],
        glm=glm,
        gamed=gamed,
        samples=samples,
        seed=seed,
    )
