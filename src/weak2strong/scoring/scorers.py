"""Gold scorers (rewards): one interface, `score(texts) -> array`, a registry of kinds.

- built-in names (`sentiment`, `toxicity`): a frozen encoder plus a trained logistic head
  (`weak2strong.scoring.classifier`);
- `hf:<model>`: any Hugging Face sequence-classification model (`scoring.hf_reward`);
- `python:<module>:<function>`: a user function (`scoring.function`);
- `lexicon:vader` / `lexicon:afinn`: a sentiment lexicon's raw polarity (`scoring.lexicon`);
- `judge:pairwise` / `judge:grade`: an LLM judge over an OpenAI-compatible API
  (`scoring.judge`), AlpacaEval-style against reference outputs or MT-Bench-style 1–10.

Every command that scores text goes through `load_scorer`; what a command needs to know of a
scorer before loading it (its direction, fingerprint, units) comes from its kind.
"""

from __future__ import annotations

from typing import Any

from weak2strong.scoring import classifier, function, hf_reward, judge, lexicon
from weak2strong.scoring.base import Scorer, ScorerConfig, ScorerKind

__all__ = [
    "KINDS",
    "Scorer",
    "ScorerConfig",
    "check_scorer_name",
    "load_scorer",
    "scorer_description",
    "scorer_fingerprint",
    "scorer_higher_is_better",
    "scorer_kind",
]

# by prefix; a name without one of these prefixes is a built-in name
KINDS: tuple[ScorerKind, ...] = (hf_reward.KIND, function.KIND, lexicon.KIND, judge.KIND)
BUILT_IN = classifier.KIND


def scorer_kind(name: str) -> ScorerKind:
    for kind in KINDS:
        if name.startswith(kind.prefix):
            return kind
    return BUILT_IN


def check_scorer_name(name: str) -> None:
    """Fail fast, before any model loads, on a scorer name that names nothing."""
    scorer_kind(name).check(name)


def scorer_higher_is_better(config: ScorerConfig) -> bool:
    """Which way the named scorer points, known without loading it."""
    return scorer_kind(config.name).higher_is_better(config)


def scorer_fingerprint(config: ScorerConfig) -> dict[str, Any]:
    """What identifies a scorer's behaviour besides its settings, for run inputs: the
    weights of a model scorer, the source of a python: function, a lexicon's version."""
    return scorer_kind(config.name).fingerprint(config)


def scorer_description(config: ScorerConfig, show_progress: bool = False) -> dict[str, Any]:
    """What a result says about its gold scorer: its units and, for a trained one, how well
    it does on held-out labelled data (the trained head is cached: this loads no encoder)."""
    kind = scorer_kind(config.name)
    return {
        "name": config.name,
        "units": kind.units(config.name),
        **kind.quality(config, show_progress),
    }


def load_scorer(config: ScorerConfig, show_progress: bool = True) -> Scorer:
    """The scorer a config names; every command that scores text goes through here."""
    return scorer_kind(config.name).load(config, show_progress)
