"""Search speed: CBS vs best-of-16 wall time, cached vs re-scoring scorer, and peak memory.

    python benchmarks/search.py [--large qwen2.5-0.5b-instruct] [--tuned PATH] [--prompts 4]

All numbers come from this one run, on the same models and prompts:
- CBS(4,4,5) wall time / BoN-16 wall time (both sample 16 candidates of `--new-tokens`);
- our scorer (a KV cache per candidate, only new tokens each chunk) / a scorer that
  re-scores every candidate's whole prompt + response at every chunk, as the reference
  does, measured on the candidate texts of one CBS run at several response lengths;
- peak resident memory (and peak CUDA memory on a GPU).
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
from weak2strong.search.decoders import CBSSettings, best_of_n, chunk_beam_search
from weak2strong.search.lm import LanguageModel
from weak2strong.search.pair import ModelPair, PairScorer
from weak2strong.search.samplers import TransformersSampler


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
    parser.add_argument("--large", default="qwen2.5-0.5b-instruct")
    parser.add_argument("--tuned", default="smollm2-135m-instruct")
    parser.add_argument("--untuned", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=50)
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
    print(f"peak RSS {peak_rss_gib():.2f} GiB")
    if torch.cuda.is_available():
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
