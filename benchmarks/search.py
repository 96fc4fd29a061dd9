"""Search speed: CBS vs best-of-16 wall time, cached vs re-scoring scorer, and peak memory.

    python benchmarks/search.py [--large qwen2.5-coder-0.5b-instruct] [--tuned PATH] [--prompts 4]

All numbers come from this one run, on the same models and prompts:
- CBS(4,4,5) wall time / BoN-16 wall time (both sample 16 candidates of `--new-tokens`);
- our scorer (a KV cache per candidate, only new tokens each chunk) / a scorer that
  re-scores every candidate's whole prompt + response at every chunk, as the reference
  does, measured on the candidate texts of one CBS run at several response lengths;
- growth: BoN-N and CBS with W·K = N (the curve's settings) for N = 1 … 16, and CBS(4,4,5)
  for several numbers of new tokens, on `--growth-prompts` prompts, each time as a
  multiple of the smallest (compute grows as N · tokens, so time should at most follow),
  with the large model's output head timed at 1 … 16 rows (on CPU one row takes torch's
  matrix-vector kernels, ~2.3× faster than the matrix-matrix ones any more rows take);
- peak resident memory (and peak CUDA memory on a GPU);
- with `--vllm` (run it with vLLM installed: `.venv-vllm/bin/python benchmarks/search.py
  --vllm`, see `make test-vllm`): sampling, BoN-16 and CBS with the large model on the
  transformers backend and on vLLM, on the same prompts, wall time with engine start-up
  timed apart, and large-model tokens sampled per second, as vLLM / transformers ratios.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence

import numpy as np
import torch

from weak2strong.data.prompts import load_prompts
from weak2strong.models import load_causal_lm
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.decoders import (
    CBSSettings,
    best_of_n,
    chunk_beam_search,
    curve_cbs_settings,
    sample,
)
from weak2strong.search.lm import LanguageModel
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.transformers_backend import TransformersSampler
from weak2strong.search.vllm_backend import VLLMSampler, VLLMSettings


class RescoringScorer:
    """The reference's way: every chunk, every candidate's full sequence from scratch."""

    def __init__(self, pair: ModelPair) -> None:
        self.pair = pair
        self.prompts: list[str] = []

    def start(self, prompts: Sequence[str]) -> None:
        self.prompts = list(prompts)

    def update(self, parents: Sequence[int], texts: Sequence[str], finished: Sequence[bool]):
        self.prompts = [self.prompts[p] for p in parents]
        fresh = PairScorer(self.pair)  # no state carried between chunks
        fresh.start(self.prompts)
        return fresh.update(range(len(self.prompts)), texts, finished)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def timed(function, *args):
    started = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--tuned", default="smollm2-135m-instruct")
    parser.add_argument("--untuned", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=50)
    parser.add_argument("--growth-prompts", type=int, default=2)
    parser.add_argument("--growth-n", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--growth-tokens", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--vllm", action="store_true", help="also time the vLLM backend")
    args = parser.parse_args()

    def lm(name: str) -> LanguageModel:
        model, tokenizer = load_causal_lm(name)
        return LanguageModel(name, model, tokenizer)

    large = lm(args.large)
    pair = ModelPair(lm(args.tuned), lm(args.untuned))
    prompts = load_prompts("imdb", 1, args.prompts, seed=0).test
    sampling = SamplingConfig(new_tokens=args.new_tokens)
    print(
        f"large {args.large}, pair {args.tuned} / {args.untuned}, {len(prompts)} prompts, "
        f"{args.new_tokens} new tokens, device {large.device}, peak RSS after loading "
        f"{peak_rss_gib():.2f} GiB"
    )

    def per_prompt(decoder, arguments):
        total = 0.0
        for index, prompt in enumerate(prompts):
            sampler = TransformersSampler(large, sampling)
            _, seconds = timed(decoder, sampler, *arguments(index, prompt))
            total += seconds
        return total

    bon_seconds = per_prompt(
        best_of_n, lambda i, p: (PairScorer(pair), [p], 16, args.new_tokens, i)
    )
    cbs_seconds = per_prompt(
        chunk_beam_search,
        lambda i, p: (PairScorer(pair), [p], CBSSettings(4, 4, 5), args.new_tokens, i),
    )
    print(
        f"BoN-16 {bon_seconds:.1f}s, CBS(4,4,5) {cbs_seconds:.1f}s: "
        f"CBS / BoN-16 wall time = {cbs_seconds / bon_seconds:.2f} (target ≤ 1.2)"
    )

    # The scorers alone, on the same sequence of CBS steps: record one search's chunks.
    recorded: list[tuple[list[int], list[str], list[bool]]] = []

    class Recorder(PairScorer):
        def update(self, parents, texts, finished):
            recorded.append((list(parents), list(texts), list(finished)))
            return super().update(parents, texts, finished)

    chunk_beam_search(
        TransformersSampler(large, sampling), Recorder(pair), prompts[:1], CBSSettings(4, 4, 5),
        args.new_tokens, 0,
    )  # fmt: skip
    for label, scorer_type in (("cached", PairScorer), ("re-scoring", RescoringScorer)):
        scorer = scorer_type(pair)
        scorer.start(prompts[:1])
        times, scores = [], []
        for parents, texts, finished in recorded:
            value, seconds = timed(scorer.update, parents, texts, finished)
            times.append(seconds)
            scores.append(value)
        if label == "cached":
            cached_times, cached_scores = times, scores
        else:
            rescoring_times = times
            for ours, reference in zip(cached_scores, scores, strict=True):
                np.testing.assert_allclose(ours, reference, atol=1e-3)
    print("scorer seconds per chunk, cached / re-scoring (ratio), by response length:")
    for step, (ours, theirs) in enumerate(zip(cached_times, rescoring_times, strict=True)):
        print(f"  tokens ≤ {5 * (step + 1):3d}: {ours:.3f}s / {theirs:.3f}s = {ours / theirs:.2f}")
    print(
        f"whole search: cached / re-scoring = {sum(cached_times) / sum(rescoring_times):.2f} "
        "(target well below 1, falling with length)"
    )
    growth(args, large, pair, prompts[: args.growth_prompts])
    print(f"peak RSS {peak_rss_gib():.2f} GiB")
    if torch.cuda.is_available():
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.vllm:
        compare_backends(args.large, large, pair, prompts, sampling)


def growth(
    args: argparse.Namespace, large: LanguageModel, pair: ModelPair, prompts: list[str]
) -> None:
    """Time against N = W·K (at --new-tokens) and against new tokens (at CBS(4,4,5))."""
    sampling = SamplingConfig(new_tokens=args.new_tokens)
    print(f"growth, {len(prompts)} prompts, {args.new_tokens} new tokens (× smallest N):")
    first: dict[str, float] = {}
    for n in args.growth_n:
        bon, bon_s = timed(
            best_of_n, TransformersSampler(large, sampling), PairScorer(pair), prompts, n,
            args.new_tokens, 0,
        )  # fmt: skip
        settings = curve_cbs_settings(n, 5)
        cbs, cbs_s = timed(
            chunk_beam_search, TransformersSampler(large, sampling), PairScorer(pair), prompts,
            settings, args.new_tokens, 0,
        )  # fmt: skip
        first = first or {"bon": bon_s, "cbs": cbs_s}
        print(
            f"  N={n:>2}: BoN {bon_s:6.1f} s (×{bon_s / first['bon']:.2f}, "
            f"{bon.sampled_tokens} tokens) | CBS({settings.width},{settings.successors},5) "
            f"{cbs_s:6.1f} s (×{cbs_s / first['cbs']:.2f}, {cbs.sampled_tokens} tokens)"
        )
    head_rows(large)
    print("growth with new tokens, CBS(4,4,5) (× fewest tokens):")
    fewest = 0.0
    for tokens in args.growth_tokens:
        sampler = TransformersSampler(large, SamplingConfig(new_tokens=tokens))
        cbs, seconds = timed(
            chunk_beam_search, sampler, PairScorer(pair), prompts, CBSSettings(4, 4, 5), tokens, 0
        )
        fewest = fewest or seconds
        print(
            f"  {tokens:>3} tokens: {seconds:6.1f} s (×{seconds / fewest:.2f}, "
            f"{cbs.sampled_tokens} tokens sampled, {seconds / cbs.sampled_tokens * 1000:.0f} ms each)"
        )


def head_rows(large: LanguageModel, rows: Sequence[int] = (1, 2, 4, 8, 16)) -> None:
    """Why one candidate is so much cheaper than two: torch's CPU kernels, shown on the large
    model's output head (its largest matrix), one decoding step's call per row count."""
    weight = large.model.get_output_embeddings().weight.detach()
    timings = {}
    repeats = 10
    with torch.no_grad():
        for count in rows:
            hidden = torch.randn(count, weight.shape[1], dtype=weight.dtype, device=weight.device)
            for _ in range(2):
                torch.nn.functional.linear(hidden, weight)
            started = time.perf_counter()
            for _ in range(repeats):
                torch.nn.functional.linear(hidden, weight)
            timings[count] = (time.perf_counter() - started) / repeats
    print(
        "  output head per call, by rows: "
        + ", ".join(f"{count}: {ms * 1000:.0f} ms" for count, ms in timings.items())
        + f" (2 rows / 1 row ×{timings[rows[1]] / timings[rows[0]]:.1f})"
    )


def compare_backends(
    name: str,
    large: LanguageModel,
    pair: ModelPair,
    prompts: list[str],
    sampling: SamplingConfig,
) -> None:
    """The same decoders over the same prompts with each backend's large model."""
    started = time.perf_counter()
    engine = VLLMSampler(name, "{prompt}", sampling, VLLMSettings())
    start_up = time.perf_counter() - started
    print(
        f"vLLM engine start-up {start_up:.1f}s (not counted below); vLLM computes in {engine.dtype}"
    )
    decoders = {
        "sample": lambda sampler: sample(sampler, prompts, sampling.new_tokens, 0),
        "BoN-16": lambda sampler: best_of_n(
            sampler, PairScorer(pair), prompts, 16, sampling.new_tokens, 0
        ),
        "CBS(4,4,5)": lambda sampler: chunk_beam_search(
            sampler, PairScorer(pair), prompts, CBSSettings(4, 4, 5), sampling.new_tokens, 0
        ),
    }
    print("method: transformers s (tokens/s) | vLLM s (tokens/s) | vLLM / transformers time")
    for label, decode in decoders.items():
        measured = {}
        for backend, make in (
            ("transformers", lambda: TransformersSampler(large, sampling)),
            ("vllm", lambda: engine),
        ):
            decoded, seconds = timed(decode, make())
            measured[backend] = (seconds, decoded.sampled_tokens / seconds)
        (t_s, t_rate), (v_s, v_rate) = measured["transformers"], measured["vllm"]
        print(
            f"  {label}: {t_s:.2f}s ({t_rate:.0f}/s) | {v_s:.2f}s ({v_rate:.0f}/s) | {v_s / t_s:.2f}"
        )


if __name__ == "__main__":
    main()
