"""Rewards on (prompt, response): an LLM judge over a local fake server, a reward model through
its chat template, a two-argument python: scorer; and a search judged AlpacaEval-style whose
outputs the field's own loaders read."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import numpy as np
import pytest
import torch

from tests.judge_server import JudgeState, first_wins, judge_server, rating
from tests.tiny import tiny_causal_lm, tiny_reward_model
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.openai_api import ApiSettings
from weak2strong.scoring.base import JudgeSettings, ScorerConfig
from weak2strong.scoring.held_out import HeldOutRewards
from weak2strong.scoring.judge import JudgeScorer
from weak2strong.scoring.scorers import load_scorer

PROMPTS = [Prompt.of_text(f"Write about topic {i}.") for i in range(4)]
REFERENCES = ["short", "a reference of middling length here", "x" * 120, "same length"]
RESPONSES = ["a much longer response than the reference", "tiny", "y" * 60, "equal words"]


@pytest.fixture
def references(tmp_path) -> str:
    path = tmp_path / "reference_outputs.json"  # AlpacaEval's model_outputs.json layout
    rows = [
        {"instruction": p.text, "output": r, "generator": "ref", "dataset": "x"}
        for p, r in zip(PROMPTS, REFERENCES, strict=True)
    ]
    path.write_text(json.dumps(rows), "utf-8")
    return str(path)


def judge(url: str, references: str = "", **settings) -> JudgeScorer:
    mode = settings.pop("mode", "pairwise")
    options = JudgeSettings(
        model="judge", api=ApiSettings(base_url=url), reference=references, **settings
    )
    return JudgeScorer(f"judge:{mode}", options, show_progress=False)


def test_the_pairwise_judge_reads_log_probabilities_and_cancels_its_position_bias(references):
    state = JudgeState(position_bias=0.8)
    with judge_server(state) as url:
        swapped = judge(url, references).score_responses(PROMPTS, RESPONSES)
        one_order = judge(url, references, position_swap=False).score_responses(PROMPTS, RESPONSES)
    bias = state.position_bias
    for i, (reference, response) in enumerate(zip(REFERENCES, RESPONSES, strict=True)):
        shown_second = 1 - first_wins(reference, response, bias)
        shown_first = first_wins(response, reference, bias)
        assert swapped[i] == pytest.approx((shown_second + shown_first) / 2, abs=1e-9)
        assert one_order[i] == pytest.approx(shown_second, abs=1e-9)
    # equal lengths: the judge only favours a position, and swapping cancels it exactly
    assert swapped[3] == pytest.approx(0.5) and one_order[3] < 0.4
    asked = state.requests[0]
    assert asked["logprobs"] is True and asked["top_logprobs"] == 5 and asked["max_tokens"] == 1
    assert asked["messages"][0]["role"] == "system"
    assert any(REFERENCES[0] in r["messages"][1]["content"] for r in state.requests)
    assert len(state.requests) == 2 * 4 + 4  # both orders, then one order


def test_without_log_probabilities_the_verdict_is_parsed(references):
    with judge_server(JudgeState(position_bias=0.0, logprobs=False)) as url:
        scores = judge(url, references).score_responses(PROMPTS, RESPONSES)
    for score, reference, response in zip(scores, REFERENCES, RESPONSES, strict=True):
        second_wins = not first_wins(reference, response, 0.0) > 0.5  # the judge says "M"
        first_is_response_and_wins = first_wins(response, reference, 0.0) > 0.5
        assert score == (second_wins + first_is_response_and_wins) / 2


def test_single_answer_grading_and_bad_judge_settings(references):
    with judge_server(JudgeState()) as url:
        grades = judge(url, mode="grade").score_responses(PROMPTS, RESPONSES)
        assert grades.tolist() == [rating(r) for r in RESPONSES]
        with pytest.raises(W2SError, match="no reference output for 1 instruction"):
            judge(url, references).score_responses([Prompt.of_text("unknown")], ["x"])
        with pytest.raises(W2SError, match="judges a response to a prompt"):
            judge(url, references).score(["text alone"])
    with pytest.raises(W2SError, match="scorer.judge.model"):
        JudgeScorer("judge:pairwise", JudgeSettings(reference=references))
    with pytest.raises(W2SError, match="scorer.judge.reference"):
        JudgeScorer("judge:pairwise", JudgeSettings(model="judge"))
    with pytest.raises(W2SError, match="judge:pairwise or judge:grade"):
        load_scorer(ScorerConfig(name="judge:elo"))


def test_a_reward_model_scores_the_conversation_through_its_chat_template(tmp_path):
    folder = tiny_reward_model(tmp_path / "reward")
    scorer = load_scorer(ScorerConfig(name=f"hf:{folder}"), show_progress=False)
    prompts = [Prompt.of_text("Say something kind."), Prompt.of_text("Name a colour.")]
    responses = ["You are great.", "Blue."]
    rewards = HeldOutRewards(ScorerConfig(name=f"hf:{folder}"), prompts, show_progress=False)
    rewards.scorer = scorer  # the loaded one, as the evaluation would load it
    scores = rewards.scores(responses)
    model, tokenizer = scorer.model, scorer.tokenizer  # type: ignore[attr-defined]
    for prompt, response, score in zip(prompts, responses, scores, strict=True):
        conversation = [
            {"role": "user", "content": prompt.text},
            {"role": "assistant", "content": response},
        ]
        text = tokenizer.apply_chat_template(conversation, tokenize=False)
        assert "<|im_start|>assistant" in text  # SmolLM2's own template
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            expected = float(model(**ids).logits[0, 0])
        assert score == pytest.approx(expected, abs=1e-5)
    plain = scorer.score([p.text + r for p, r in zip(prompts, responses, strict=True)])
    assert not np.allclose(plain, scores)  # the template is what it read


def test_a_python_scorer_with_two_parameters_receives_prompts_and_responses(tmp_path, monkeypatch):
    (tmp_path / "pair_scorer.py").write_text(
        "def overlap(prompts, responses):\n"
        "    return [len(set(p.split()) & set(r.split())) for p, r in zip(prompts, responses)]\n"
        "def length(texts):\n"
        "    return [len(t) for t in texts]\n",
        "utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    prompts = [Prompt.of_text("red green blue"), Prompt.of_text("one two")]
    both = HeldOutRewards(ScorerConfig(name="python:pair_scorer:overlap"), prompts)
    assert both.scores(["red and blue", "three"]) == [2.0, 0.0]
    text = HeldOutRewards(ScorerConfig(name="python:pair_scorer:length"), prompts)
    assert text.scores(["ab", "c"]) == [len("red green blueab"), len("one twoc")]
    sys.modules.pop("pair_scorer", None)


def test_a_search_judged_alpaca_eval_style_writes_what_alpaca_eval_and_fastchat_read(
    run_cli, tmp_path
):
    alpaca_utils = pytest.importorskip("alpaca_eval.utils")
    fastchat_common = pytest.importorskip("fastchat.llm_judge.common")
    model = tiny_causal_lm(tmp_path / "tiny-lm")
    instructions = [f"Give advice number {i}." for i in range(12)]
    eval_set = tmp_path / "alpaca_eval.json"
    eval_set.write_text(
        json.dumps([{"instruction": t, "dataset": "helpful_base"} for t in instructions]), "utf-8"
    )
    reference = tmp_path / "gpt4_turbo_outputs.json"
    reference.write_text(
        json.dumps(
            [
                {"instruction": t, "output": "Some advice. " * (i % 4)}
                for i, t in enumerate(instructions)
            ]
        ),
        "utf-8",
    )
    with judge_server(JudgeState()) as url:
        args = [
            "--large", str(model), "--tuned", str(model), "--untuned", str(model),
            "--method", "sample", "--method", "bon", "--method", "cbs",
            "--set", f"prompts={eval_set}", "--set", "test_prompts=12",
            "--set", "large_template=chat", "--set", "large_system=Answer briefly.",
            "--set", "pair.tuned_template=chat", "--set", "pair.untuned_template=chat",
            "--set", "sampling.new_tokens=5", "--set", "bon_n=2",
            "--set", "cbs.width=1", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=3",
            "--set", "bootstrap_samples=50", "--set", "show_progress=false",
            "--set", "scorer.name=judge:pairwise", "--set", "scorer.judge.model=judge",
            "--set", f"scorer.judge.api.base_url={url}",
            "--set", f"scorer.judge.reference={reference}",
        ]  # fmt: skip
        result = run_cli("search", *args)
    assert result.returncode == 0, result.stderr
    assert "AlpacaEval win rates" in result.stdout
    (folder,) = (tmp_path / "runs").glob("search-*")
    results = json.loads((folder / "results.json").read_text())
    for method in ("sample", "bon", "cbs"):
        rates = results["win_rates"][method]
        reward = results["methods"][method]["reward"]["value"]
        assert rates["win_rate"]["value"] == pytest.approx(100 * reward)
        assert math.isfinite(rates["length_controlled_win_rate"]["value"])
        outputs = alpaca_utils.load_or_convert_to_dataframe(
            folder / "outputs" / "alpaca_eval" / method / "model_outputs.json"
        )
        assert list(outputs["instruction"]) == instructions
        assert set(outputs["dataset"]) == {"helpful_base"} and set(outputs["generator"]) == {method}
        annotations = folder / "outputs" / "alpaca_eval" / method / "annotations.json"
        again = run_cli("winrate", str(annotations), "--json")
        assert json.loads(again.stdout)["win_rate"] == pytest.approx(rates["win_rate"]["value"])
    answers = fastchat_common.load_model_answers(
        str(folder / "outputs" / "mt_bench" / "model_answer")
    )
    assert set(answers) == {"sample", "bon", "cbs"}
    cbs_turns = [answers["cbs"][i]["choices"][0]["turns"][0] for i in range(12)]
    assert cbs_turns == list(outputs["output"])  # outputs: the last method's, cbs


def test_an_in_process_judge_reads_its_next_token_probabilities(tmp_path, references):
    from weak2strong.scoring.judge_backends import LocalJudge
    from weak2strong.scoring.judge_prompts import pairwise_messages

    folder = tiny_causal_lm(tmp_path / "judge")
    settings = JudgeSettings(model=str(folder), backend="transformers", reference=references)
    local = LocalJudge(settings)
    conversation = pairwise_messages("Say hi.", "Hi!", "Hello there.")
    (probability,) = local.first_wins([conversation])
    tokenizer, model = local.tokenizer, local.model
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**ids).logits[0, -1].float().softmax(-1)
    first = probabilities[local.ids["m"]].sum()
    second = probabilities[local.ids["M"]].sum()
    assert local.ids["m"] and local.ids["M"]
    assert probability == pytest.approx(float(first / (first + second)), rel=1e-4)
    scorer = JudgeScorer("judge:pairwise", settings, show_progress=False)
    scores = scorer.score_responses(PROMPTS, RESPONSES)
    assert ((scores > 0) & (scores < 1)).all()
    grades = JudgeScorer(
        "judge:grade", dataclasses.replace(settings, grade_tokens=4), show_progress=False
    ).score_responses(PROMPTS[:2], RESPONSES[:2])
    assert grades.tolist() == [5.5, 5.5]  # a random model writes no [[rating]]: the midpoint
