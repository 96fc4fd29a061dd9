"""Weak-to-strong search: steer a large model at decoding time with a small tuned/untuned pair."""

from weak2strong.search.config import METHODS, PairConfig, SearchConfig
from weak2strong.search.decoders import CBSSettings, Decoded
from weak2strong.search.lm import CachedRows, LanguageModel
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.pipeline import Search

__all__ = [
    "METHODS",
    "CBSSettings",
    "CachedRows",
    "Decoded",
    "LanguageModel",
    "ModelPair",
    "PairConfig",
    "PairScorer",
    "Search",
    "SearchConfig",
]
