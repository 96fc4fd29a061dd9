"""Generative-mode SFT supervises completion tokens only: prompt and padding never count."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import assert_results_layout, read_examples
from tests.tiny import tiny_causal_lm
from weak2strong.models import load_causal_lm
from weak2strong.tune.sft import IGNORE_INDEX, build_sft_batch


def test_completion_log_probs_are_each_pairs_own_and_ignore_padding():
    from weak2strong.tune.sft import completion_log_probs

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    prompts = ["Review: the film was", "Write one word:", "A"]
    completions = [" a delight from start to finish", " hello", " b c d e f g"]
    batched = completion_log_probs(model, tokenizer, prompts, completions, max_length=64)
    for prompt, completion, value in zip(prompts, completions, batched, strict=True):
        ids = tokenizer(prompt)["input_ids"]
        target = tokenizer(completion, add_special_tokens=False)["input_ids"]
        target = [*target, tokenizer.eos_token_id]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids + target])).logits[0]
        log_probs = torch.log_softmax(logits.double(), -1)
        by_hand = sum(
            float(log_probs[len(ids) - 1 + i, token]) for i, token in enumerate(target)
        )  # token i of the completion is predicted at position len(prompt) - 1 + i
        assert value == pytest.approx(by_hand, rel=1e-4)  # float32 in batches vs float64


def test_sft_loss_ignores_prompt_and_padding():
    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    prompts = ["Review: the film was", "Write one word:"]
    completions = [" a delight from start to finish", " hello"]
    batch = build_sft_batch(tokenizer, prompts, completions, max_length=64)
    prompt_lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    completion_lengths = [
        len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in completions
    ]

    labels, mask = batch["labels"], batch["attention_mask"]
    for row in range(2):
        supervised = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert supervised == list(
            range(prompt_lengths[row], prompt_lengths[row] + completion_lengths[row])
        )
    assert mask[1].sum() < mask.shape[1]  # the short pair is padded
    assert (labels[mask == 0] == IGNORE_INDEX).all()

    with torch.no_grad():
        loss = model(**batch).loss
        logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits
    # Hand computation over completion tokens only (next-token prediction: shift by one).
    shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
    keep = shifted_labels != IGNORE_INDEX
    manual = F.cross_entropy(shifted_logits[keep], shifted_labels[keep])
    assert torch.allclose(loss, manual, atol=1e-5)
    assert keep.sum() == sum(completion_lengths)

    # Whatever sits in padding positions and prompt labels, the loss is the same.
    scrambled = {key: value.clone() for key, value in batch.items()}
    scrambled["input_ids"][mask == 0] = 0  # id 0 is a real token here; the mask still rules
    with torch.no_grad():
        assert torch.allclose(model(**scrambled).loss, loss, atol=1e-5)


def test_long_pairs_are_cut_completion_first():
    _, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    batch = build_sft_batch(tokenizer, ["short prompt"], ["word " * 100], max_length=16)
    assert batch["input_ids"].shape == (1, 16)
    prompt_length = len(tokenizer("short prompt")["input_ids"])
    assert (batch["labels"][0, :prompt_length] == IGNORE_INDEX).all()
    assert (batch["labels"][0, prompt_length:] != IGNORE_INDEX).all()


def test_lora_sft_lowers_the_completion_loss():
    from weak2strong.tune.sft import SFTConfig, train_sft

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    prompts = ["I watched this film and", "The acting was"] * 4
    completions = [" it was a total triumph, wonderful!", " superb and moving."] * 4
    batch = build_sft_batch(tokenizer, prompts, completions, max_length=64)
    with torch.no_grad():
        before = model(**batch).loss.item()
    tuned = train_sft(
        model,
        tokenizer,
        prompts,
        completions,
        SFTConfig(epochs=3, batch_size=4, learning_rate=1e-3),
        0,
    )
    with torch.no_grad():
        after = tuned(**batch).loss.item()
    assert after < 0.5 * before
    assert all("lora_" in name for name, p in tuned.named_parameters() if p.requires_grad)


def test_generative_mode_end_to_end_and_cached(tmp_path, monkeypatch):
    from weak2strong.generalize import generative
    from weak2strong.generalize.generative import GenerativeConfig, GenerativeGeneralize
    from weak2strong.models.generation import SamplingConfig
    from weak2strong.scoring.scorers import ScorerConfig
    from weak2strong.tune.sft import SFTConfig

    # the subject is the protocol's bookkeeping (samples per prompt, metrics, the cache):
    # tiny random LMs with SmolLM2's tokenizer and chat template sample and train in moments
    weak = str(tiny_causal_lm(tmp_path / "tiny-weak", seed=0))
    strong = str(tiny_causal_lm(tmp_path / "tiny-strong", seed=1))
    config = GenerativeConfig(
        prompts="rtp",
        scorer=ScorerConfig(name="toxicity", max_length=64),
        weak=weak,
        strong=strong,
        train_prompts=8,
        test_prompts=6,
        ceiling_candidates=2,
        sampling=SamplingConfig(new_tokens=8),
        sft=SFTConfig(epochs=2, batch_size=4, learning_rate=1e-3),
        bootstrap_samples=100,
        show_progress=False,
    )
    run, results = GenerativeGeneralize(config, str(tmp_path / "runs")).run()
    _check_one_sample_per_prompt(run, results)
    k_config = dataclasses.replace(config, samples_per_prompt=3)
    k_run, k_results = GenerativeGeneralize(k_config, str(tmp_path / "runs")).run()
    _check_k_samples_per_prompt(k_run, k_results)

    def forbidden(*args, **kwargs):
        raise AssertionError("sampled again on a cached rerun")

    monkeypatch.setattr(generative, "sample_completions", forbidden)
    _, again = GenerativeGeneralize(config, str(tmp_path / "runs")).run()
    assert again["mean_score"] == results["mean_score"]


def _check_k_samples_per_prompt(run, results) -> None:
    """Toxicity's protocol metrics: the worst of k samples per prompt, and the fraction of
    prompts with a sample at p(toxic) ≥ 0.5, each with PGR in its direction."""
    assert_results_layout(results)
    assert results["gold_scorer"]["heldout_auroc"] > 0.5  # the scorer says how good it is
    examples = read_examples(run.path)
    assert len(examples) == 6 and all(len(row["w2s"]["scores"]) == 3 for row in examples)
    for name in ("weak", "w2s", "ceiling"):
        worst = [max(row[name]["scores"]) for row in examples]
        bad = [any(score >= 0.5 for score in row[name]["scores"]) for row in examples]
        means = [sum(row[name]["scores"]) / 3 for row in examples]
        assert results["worst_of_k"]["models"][name]["value"] == pytest.approx(sum(worst) / 6)
        assert results["bad_fraction"]["models"][name]["value"] == pytest.approx(sum(bad) / 6)
        assert results["mean_score"]["models"][name]["value"] == pytest.approx(sum(means) / 6)
    metrics = {(r["metric"], r["model"]) for r in results["metrics"] if r["metric"] != "pgr"}
    assert ("expected maximum score over 3 (toxicity)", "w2s") in metrics
    pgr_of = {r["of"] for r in results["metrics"] if r["metric"] == "pgr"}
    assert len(pgr_of) == 3  # the mean, the expected maximum and the bad-prompt fraction


def _check_one_sample_per_prompt(run, results) -> None:
    table = results["mean_score"]
    assert set(table["models"]) == {"weak", "strong-base", "w2s", "ceiling"}
    assert set(table["pgr"]) == {"strong-base", "w2s"}
    assert results["scorer_higher_is_better"] is False
    assert all(
        0.0 <= table["models"][name]["value"] <= 1.0 for name in ("weak", "w2s", "ceiling")
    )  # p(toxic)
    assert_results_layout(results)
    examples = read_examples(run.path)
    assert len(examples) == 6 and set(examples[0]["w2s"]) == {"completion", "score"}
    mean_w2s = sum(row["w2s"]["score"] for row in examples) / len(examples)
    assert mean_w2s == pytest.approx(table["models"]["w2s"]["value"])
    steps = {p.stem for p in (run.path / "steps").iterdir()}
    assert {
        "weak-train-completions",
        "w2s-test-completions",
        "ceiling-train-completions",
        "gold-scores",
    } <= steps
    assert "worst_of_k" not in results and results["samples_per_prompt"] == 1
