"""`w2s tune`: preference pairs from labelled reviews, and a real (tiny) DPO run via TRL."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from tests.conftest import assert_results_layout
from weak2strong.data import TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm
from weak2strong.runs.typed import from_json
from weak2strong.scoring.lexicon import lexicon_scores
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


def test_filtered_review_pairs_agree_with_the_lexicon_and_leave_the_held_out_pairs_alone(
    tmp_path,
):
    config = TuneConfig(train_prompts=32, eval_pairs=16, review_filter="lexicon:vader")
    unfiltered = dataclasses.replace(config, review_filter="")
    train, held_out = review_pairs(config), held_out_pairs(config)
    assert len(train["prompt"]) == 32
    assert (lexicon_scores("vader", train["chosen"]) > 0).all()
    assert (lexicon_scores("vader", train["rejected"]) < 0).all()
    # many stretches of a positive review read neutral or negative: the filter has work
    assert (lexicon_scores("vader", review_pairs(unfiltered)["chosen"]) <= 0).any()
    assert held_out == held_out_pairs(unfiltered)  # measured on unfiltered pairs
    used = {text for key in ("chosen", "rejected") for text in train[key]}
    assert not used & {text for key in ("chosen", "rejected") for text in held_out[key]}
    with pytest.raises(W2SError, match="not a lexicon"):  # before any run folder
        Tune(dataclasses.replace(config, review_filter="sentiment"), tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


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


def test_preference_files_in_the_fields_layouts(tmp_path):
    from weak2strong.data.preferences import read_preference_pairs

    rows = [
        {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."},  # text
        {  # UltraFeedback-binarized: conversations ending with the response
            "prompt": "Name a colour.",
            "chosen": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."},
            ],
            "rejected": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Seven."},
            ],
        },
        {  # HH-RLHF: transcripts sharing everything before the last assistant turn
            "chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help me?\n\nAssistant: Sure.",
            "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Help me?\n\nAssistant: No.",
        },
    ]
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")
    text, chat, transcript = read_preference_pairs(str(path))
    assert (text.prompt.text, text.chosen, text.rejected) == ("Say hi.", "Hi!", "No.")
    assert (chat.prompt.text, chat.chosen, chat.rejected) == ("Name a colour.", "Blue.", "Seven.")
    assert transcript.prompt.messages == (
        ("user", "Hi"),
        ("assistant", "Hello"),
        ("user", "Help me?"),
    )
    assert (transcript.chosen, transcript.rejected) == ("Sure.", "No.")
    for bad, message in (
        ({"prompt": "x", "chosen": "a"}, "row 1: no 'rejected' field"),
        (
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: c\n\nAssistant: d"},
            "differ before the response",
        ),
        (
            {"prompt": "x", "chosen": [{"role": "user", "content": "x"}], "rejected": []},
            "must end with the assistant",
        ),
    ):
        path.write_text(json.dumps(bad) + "\n", "utf-8")
        with pytest.raises(W2SError, match=message):
            read_preference_pairs(str(path))


def test_dpo_on_a_preference_file_in_the_base_models_chat_template(tmp_path):
    from tests.tiny import tiny_causal_lm

    base = tiny_causal_lm(tmp_path / "tiny")
    pairs = [
        {
            "prompt": [{"role": "user", "content": f"Question {i}?"}],
            "chosen": [{"role": "assistant", "content": f"A helpful answer {i}."}],
            "rejected": [{"role": "assistant", "content": "No."}],
        }
        for i in range(10)
    ]
    path = tmp_path / "ultrafeedback.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in pairs), "utf-8")
    config = TuneConfig(
        base=str(base),
        preferences="file",
        preference_data=str(path),
        template="chat",
        system="Be helpful.",
        train_prompts=6,
        eval_pairs=4,
        training=TuneTraining(batch_size=2, max_length=64, learning_rate=1e-3),
        show_progress=False,
    )
    run, results = Tune(config, tmp_path / "runs").run()
    assert results["pairs"] == 6 and results["heldout_pairs"] == 4 and results["steps"] == 3
    stored = json.loads((run.path / "steps" / "preference-pairs-file.json").read_text())
    assert all(p.startswith("<|im_start|>system\nBe helpful.") for p in stored["prompt"])
    assert all(p.endswith("<|im_start|>assistant\n") for p in stored["prompt"])
    with pytest.raises(W2SError, match="has 10 pairs; train_prompts \\+ eval_pairs asks for 12"):
        Tune(dataclasses.replace(config, train_prompts=8), tmp_path / "runs").run()


def test_teacher_preferences_choose_a_stronger_models_answers_over_the_base_models(tmp_path):
    from tests.tiny import tiny_causal_lm
    from weak2strong.models.generation import SamplingConfig
    from weak2strong.tune.pairs import PAIR_SOURCES

    base = tiny_causal_lm(tmp_path / "base")
    # another family: the teacher's answers reach the base model as text
    teacher = tiny_causal_lm(tmp_path / "teacher", tokenizer_of="minilm-l6", eos_token="[SEP]")
    from transformers import AutoTokenizer  # a chat format of its own, as a teacher has

    tokenizer = AutoTokenizer.from_pretrained(teacher)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    tokenizer.save_pretrained(teacher)
    prompts = tmp_path / "instructions.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": f"Task {i}."}) + "\n" for i in range(12)))
    config = TuneConfig(
        base=str(base),
        prompts=str(prompts),
        preferences="teacher",
        teacher=str(teacher),
        template="chat",
        train_prompts=6,
        eval_pairs=4,
        sampling=SamplingConfig(new_tokens=6, batch_size=6),
        show_progress=False,
    )
    train, held_out = PAIR_SOURCES["teacher"](config), held_out_pairs(config)
    assert len(train["prompt"]) == 6 and len(held_out["prompt"]) == 4
    assert all(p.endswith("<|im_start|>assistant\n") for p in train["prompt"] + held_out["prompt"])
    assert not set(train["prompt"]) & set(held_out["prompt"])
    assert train["chosen"] != train["rejected"]
    # SFT on the same prompts learns the teacher's answers
    examples = sft_examples(dataclasses.replace(config, method="sft"))
    assert examples == {"prompt": train["prompt"], "completion": train["chosen"]}
    # the base's answers are the rejected ones: a teacher that is the base prefers nothing
    same = PAIR_SOURCES["teacher"](dataclasses.replace(config, teacher=str(base)))
    assert same["chosen"] == same["rejected"]
    other = dataclasses.replace(config, teacher=str(base))
    assert Tune(other, tmp_path / "runs").inputs() != Tune(config, tmp_path / "runs").inputs()
