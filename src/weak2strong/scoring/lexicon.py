"""Sentiment lexicons (VADER, AFINN): training-free polarity scores, as scorers or weak supervisors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.errors import W2SError
from weak2strong.scoring.base import ScorerConfig, ScorerKind, no_quality

LEXICONS = ("vader", "afinn")
# Lexicons score sentiment; on other embedded tasks they would be noise dressed as a supervisor.
NON_SENTIMENT_TASKS = ("safety", "toxicity", "legal")
# texts per batch when scoring is shared between processes
SCORE_BATCH = 256


def lexicon_scores(name: str, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
    """Raw polarity per text: VADER's compound score, or AFINN's summed word valences."""
    if name == "vader":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyzer = SentimentIntensityAnalyzer()

        def polarity(text: str) -> float:
            return float(analyzer.polarity_scores(text)["compound"])
    else:
        from afinn import Afinn

        afinn = Afinn()

        def polarity(text: str) -> float:
            return float(afinn.score(text))

    scores = distributed.map_items(
        lambda batch: [polarity(texts[i]) for i in batch],
        len(texts),
        SCORE_BATCH,
        description=f"lexicon {name}",
        show_progress=show_progress,
    )
    return np.asarray(scores, dtype=np.float64)


def lexicon_name(weak: str) -> str | None:
    """`lexicon:vader` → "vader"; None for anything that is not a lexicon."""
    if not weak.startswith("lexicon:"):
        return None
    name = weak.split(":", 1)[1]
    if name not in LEXICONS:
        raise W2SError(f"unknown lexicon '{name}' (known: {', '.join(LEXICONS)})")
    return name


def check_lexicon_task(task_name: str, label_names: Sequence[str]) -> None:
    if task_name in NON_SENTIMENT_TASKS or len(label_names) != 2:
        raise W2SError(
            f"a lexicon weak supervisor labels sentiment; task '{task_name}' ({' / '.join(label_names)}) "
            "is not a two-class sentiment task"
        )


def calibrated_lexicon_probs(
    name: str,
    fit_texts: Sequence[str],
    fit_labels: Sequence[int],
    predict: dict[str, Sequence[str]],
) -> dict[str, np.ndarray]:
    """A weak supervisor without training: a one-feature logistic regression from lexicon
    score to label, fitted on the weak half's gold labels, gives probabilities."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression()
    regression.fit(lexicon_scores(name, fit_texts).reshape(-1, 1), np.asarray(fit_labels))
    return {
        split: regression.predict_proba(lexicon_scores(name, texts).reshape(-1, 1))
        for split, texts in predict.items()
    }


class LexiconScorer:
    """`lexicon:vader` / `lexicon:afinn` as a scorer: raw polarity, higher is more positive."""

    higher_is_better = True

    def __init__(self, name: str) -> None:
        lexicon = name.removeprefix("lexicon:")
        if lexicon not in LEXICONS:
            raise W2SError(f"unknown lexicon '{lexicon}' (known: {', '.join(LEXICONS)})")
        self.name = name
        self.lexicon = lexicon

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return lexicon_scores(self.lexicon, texts)


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    """The lexicon package's version: its word list is the scorer."""
    from importlib.metadata import PackageNotFoundError, version

    package = "vaderSentiment" if config.name == "lexicon:vader" else "afinn"
    try:
        return {"name": config.name, "version": version(package)}
    except PackageNotFoundError:
        return {"name": config.name, "version": None}


UNITS = {
    "vader": "VADER compound polarity in [−1, 1]",
    "afinn": "AFINN polarity (sum of word scores)",
}

KIND = ScorerKind(
    prefix="lexicon:",
    check=lambda name: None,  # an unknown lexicon is named when the scorer loads
    load=lambda config, show_progress: LexiconScorer(config.name),
    fingerprint=_fingerprint,
    higher_is_better=lambda config: True,
    units=lambda name: UNITS.get(name.removeprefix("lexicon:"), "the lexicon's polarity"),
    quality=no_quality,
)
