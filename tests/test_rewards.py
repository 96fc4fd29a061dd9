"""One scorer interface: built-in classifiers, any HF sequence classifier, user functions, lexicons."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from weak2strong.errors import W2SError
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.scorers import ScorerConfig, load_scorer

TEXTS = ["A wonderful, moving film.", "Dull and badly acted.", "It was fine."]


def test_hf_sequence_classifier_gives_the_positive_log_odds(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from weak2strong.models import load_tokenizer

    tokenizer = load_tokenizer("minilm-l6")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    scorer = load_scorer(ScorerConfig(name=f"hf:{tmp_path}"))
    rewards = scorer.score(TEXTS)
    with torch.no_grad():
        logits = model(**tokenizer(TEXTS, return_tensors="pt", padding=True)).logits
    expected = (logits[:, 1] - logits[:, 0]).numpy()  # log-softmax difference = logit difference
    np.testing.assert_allclose(rewards, expected, atol=1e-5)
    assert scorer.higher_is_better


def test_user_function_scorer(tmp_path, monkeypatch):
    (tmp_path / "my_reward.py").write_text(
        "def length(texts):\n    return [len(t) for t in texts]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = load_scorer(ScorerConfig(name="python:my_reward:length"))
    assert scorer.score(TEXTS).tolist() == [float(len(t)) for t in TEXTS]
    with pytest.raises(W2SError, match="has no function"):
        load_scorer(ScorerConfig(name="python:my_reward:missing"))
    with pytest.raises(W2SError, match="cannot import"):
        load_scorer(ScorerConfig(name="python:no_such_module_here:f"))
    sys.modules.pop("my_reward", None)


def test_lexicon_scorer_ranks_sentiment():
    scores = load_scorer(ScorerConfig(name="lexicon:vader")).score(TEXTS)
    assert scores[0] > scores[2] > scores[1]
    with pytest.raises(W2SError, match="unknown lexicon"):
        load_scorer(ScorerConfig(name="lexicon:textblob2"))


def test_bootstrap_means_with_a_baseline_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 200)
    table = paired_bootstrap_means({"sample": base, "cbs": base + 0.5}, baseline="sample")
    assert table["difference"]["cbs"]["value"] == pytest.approx(0.5)
    # paired: a constant shift has (almost) no uncertainty
    assert table["difference"]["cbs"]["high"] - table["difference"]["cbs"]["low"] < 1e-9
    assert set(table) == {"models", "difference"} and table["models"]["cbs"]["n"] == 200


def test_one_gold_scorer_for_every_experiment_seed_with_its_held_out_quality():
    """The toxicity task has no native split, so its split follows a seed: the scorer's own,
    never the experiment's. Its held-out accuracy and AUROC come with it."""
    from weak2strong.runs import seed_everything
    from weak2strong.scoring.classifier import SCORER_SEED
    from weak2strong.scoring.scorers import scorer_description

    config = ScorerConfig(name="toxicity", max_length=64)
    seed_everything(3)
    first = load_scorer(config, show_progress=False).score(TEXTS)
    seed_everything(4)
    second = load_scorer(config, show_progress=False).score(TEXTS)
    assert np.array_equal(first, second)
    description = scorer_description(config)
    assert description["units"].startswith("p(toxic)")
    assert 0.6 < description["heldout_accuracy"] <= 1.0
    assert 0.6 < description["heldout_auroc"] <= 1.0
    from weak2strong.data import TaskConfig, load_task

    data = load_task(TaskConfig(name="toxicity"), seed=SCORER_SEED)
    assert description["test_examples"] == min(config.heldout, len(data.texts("test")))
    assert description["train_examples"] == min(config.max_train, len(data.texts("train")))


def test_imdb_prompts_and_preference_reviews_never_reach_the_gold_scorers_training(
    tmp_path, monkeypatch
):
    """Every IMDB prompt set and `w2s tune`'s review pairs come from reviews the sentiment
    scorer never trains on, whatever the experiment's seed."""
    import torch

    from weak2strong.data.prompt_files import texts_of
    from weak2strong.data.prompts import (
        IMDB_PROMPT_POOL,
        imdb_split,
        load_prompts,
        reserved_for_prompts,
    )
    from weak2strong.scoring.classifier import ClassifierScorer
    from weak2strong.tune import TuneConfig
    from weak2strong.tune.pairs import reviews_by_class

    data = imdb_split()
    pool = reserved_for_prompts(data)
    assert len(pool) == IMDB_PROMPT_POOL
    seen: dict[str, list[str]] = {}

    def train(self, texts, labels, test_texts, test_labels):  # the encoder is not needed
        seen.update(train=texts, test=test_texts)
        size = 384
        head = {"mean": torch.zeros(size), "scale": torch.ones(size)}
        head.update(coef=torch.zeros(size), intercept=torch.zeros(1))
        info = {"test_accuracy": 0.5, "test_auroc": 0.5}
        return head, {**info, "train_size": len(texts), "test_size": len(test_texts)}

    monkeypatch.setattr(ClassifierScorer, "_train", train)
    with monkeypatch.context() as scratch_cache:  # the stub head must not reach the real cache
        scratch_cache.setenv("W2S_CACHE", str(tmp_path))
        scorer = ClassifierScorer(ScorerConfig(name="sentiment", max_train=3000, heldout=200))
    assert len(seen["train"]) == 3000 and len(seen["test"]) == 200
    assert not pool & set(seen["train"])
    assert set(seen["test"]) <= set(data.texts("test"))
    assert "without the reviews prompts come from" in scorer.quality["data"]

    def openings(texts, words=8):
        return {" ".join(text.split()[:words]) for text in texts}

    for seed in (0, 1, 2):
        prompts = load_prompts("imdb", 100, 50, seed=seed)
        assert set(texts_of(prompts.train)) <= openings(pool)
        assert set(texts_of(prompts.test)) <= openings(data.texts("test"))
    tuned_from, _ = reviews_by_class(TuneConfig())
    assert {opening for opening, _ in tuned_from[:50]} <= openings(pool)
