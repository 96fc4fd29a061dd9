"""`w2s tune`: preference pairs from labelled reviews, and a real (tiny) DPO run via TRL."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import assert_results_layout
from weak2strong.data import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm
from weak2strong.runs.typed import from_json
from weak2strong.tune import Tune, TuneConfig, TuneTraining
from weak2strong.tune.pairs import held_out_pairs, review_pairs, sft_examples
from weak2strong.tune.results import TuneResults
from weak2strong.tune.summary import plot_tune


def test_review_pairs_prefer_the_target_label_and_balance_the_prompts(tmp_path):
    config = TuneConfig(train_prompts=20, completion_words=10)
    pairs = review_pairs(config)
    data = load_task(TaskConfig(name="imdb"))
    positive = data.label_names.index("positive")
    label_of, openings = {}, set()
    for text, label in zip(data.texts("train"), data.labels("train"), strict=True):
        words = text.split()
        label_of[" " + " ".join(words[8:18])] = label
        openings.add(" ".join(words[:18]))
    assert len(pairs["prompt"]) == 20
    assert all(label_of[c] == positive for c in pairs["chosen"])
    assert all(label_of[r] != positive for r in pairs["rejected"])
    # half the prompts open the chosen review, half the rejected one: fit is no cue
    triples = list(zip(pairs["prompt"], pairs["chosen"], pairs["rejected"], strict=True))
    assert sum(p + c in openings for p, c, _ in triples) == 10
    assert sum(p + r in openings for p, _, r in triples) == 10
    # held-out pairs: the same construction from reviews no training pair (nor SFT) used
    held_out = TuneConfig(train_prompts=20, completion_words=10, eval_pairs=12)
    evaluation = held_out_pairs(held_out)
    assert len(evaluation["prompt"]) == 12
    assert all(label_of[c] == positive for c in evaluation["chosen"])
    trained = set(pairs["chosen"]) | set(pairs["rejected"])
    trained |= set(sft_examples(held_out)["completion"])
    for side in ("chosen", "rejected"):  # continuations identify reviews (openings may repeat)
        assert not trained & set(evaluation[side]), side


def test_unknown_method_and_preferences_are_refused(tmp_path):
    with pytest.raises(W2SError, match="config key 'method' must be one of dpo, sft, got 'ppo'"):
        Tune(TuneConfig(method="ppo"), tmp_path)  # type: ignore[arg-type]
    with pytest.raises(W2SError, match="config key 'preferences' must be one of reviews, sampled"):
        Tune(TuneConfig(preferences="oracle"), tmp_path)


def test_tiny_dpo_run_saves_a_merged_checkpoint_and_caches_it(tmp_path):
    config = TuneConfig(
        train_prompts=8,
        eval_pairs=6,
        completion_words=8,
        training=TuneTraining(batch_size=4, max_length=40, learning_rate=1e-3),
        show_progress=False,
    )
    run, results = Tune(config, tmp_path).run()
    assert results["pairs"] == 8 and results["steps"] == 2
    assert [point["step"] for point in results["curve"]] == [1, 2]  # the training curve
    assert all(np.isfinite(point["loss"]) for point in results["curve"])
    typed = from_json(TuneResults, results)
    assert plot_tune(typed, tmp_path / "tune.png").stat().st_size > 0
    assert results["heldout_pairs"] == 6 and 0.0 <= results["heldout_accuracy"]["value"] <= 1.0
    assert_results_layout(results)
    assert [r["metric"] for r in results["metrics"]] == [
        "held-out preference accuracy",
        "held-out reward margin",
    ]
    tuned, _ = load_causal_lm(results["model"], device="cpu")
    base, _ = load_causal_lm("smollm2-135m-instruct", device="cpu")
    assert not any("lora" in name for name, _ in tuned.named_parameters())  # merged
    changed = [
        name
        for (name, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters(), strict=True)
        if not torch.equal(a, b)
    ]
    assert any("q_proj" in name for name in changed)
    # a rerun finds the saved model and trains nothing
    stamp = (run.path / "model" / "model.safetensors").stat().st_mtime_ns
    _, again = Tune(config, tmp_path).run()
    assert again == results
    assert (run.path / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.loads((run.path / "results.json").read_text())["method"] == "dpo"
