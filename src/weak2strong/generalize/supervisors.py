"""Training-free weak supervisors: sentiment lexicons, calibrated on the weak half's gold labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from weak2strong.errors import W2SError
from weak2strong.scoring.lexicon import LEXICONS, lexicon_scores

# Lexicons score sentiment; on other embedded tasks they would be noise dressed as a supervisor.
NON_SENTIMENT_TASKS = ("safety", "toxicity", "legal")


def lexicon_name(weak: str) -> str | None:
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
    """Fit a one-feature logistic regression from lexicon score to label on the weak half."""
    from sklearn.linear_model import LogisticRegression

    regression = LogisticRegression()
    regression.fit(lexicon_scores(name, fit_texts).reshape(-1, 1), np.asarray(fit_labels))
    return {
        split: regression.predict_proba(lexicon_scores(name, texts).reshape(-1, 1))
        for split, texts in predict.items()
    }
