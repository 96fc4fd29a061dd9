"""Sentiment lexicons (VADER, AFINN): training-free polarity scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from weak2strong.errors import W2SError

LEXICONS = ("vader", "afinn")


def lexicon_scores(name: str, texts: Sequence[str]) -> np.ndarray:
    """Raw polarity per text: VADER's compound score, or AFINN's summed word valences."""
    if name == "vader":
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        analyzer = SentimentIntensityAnalyzer()
        return np.array([analyzer.polarity_scores(text)["compound"] for text in texts])
    from afinn import Afinn

    afinn = Afinn()
    return np.array([afinn.score(text) for text in texts], dtype=np.float64)


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
