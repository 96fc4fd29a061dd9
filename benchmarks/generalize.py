"""Stage times of a small `w2s generalize` run, and batched vs one-at-a-time feature extraction.

    python benchmarks/generalize.py [--model smollm2-135m-instruct] [--texts 64] [--batch-size 16]

Both extraction paths embed the same texts with the same backbone in this process, for
long IMDB reviews (cut at max_length) and short safety prompts; the ratio
(one-at-a-time seconds / batched seconds) is the speed-up from length-sorted batching.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from weak2strong.data import TaskConfig, load_task
from weak2strong.generalize import Generalize, GeneralizeConfig
from weak2strong.models import load_encoder
from weak2strong.models.features import FeatureConfig, extract_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    backbone, tokenizer = load_encoder(args.model, device="cpu")
    for task in ("imdb", "safety"):  # long texts cut at max_length vs short prompts
        texts = load_task(TaskConfig(name=task)).texts("train")[: args.texts]
        extract_features(
            backbone,
            tokenizer,
            texts[:4],
            FeatureConfig(max_length=args.max_length),
            show_progress=False,
        )
        seconds, features = {}, {}
        for label, batch_size in (("batched", args.batch_size), ("one at a time", 1)):
            config = FeatureConfig(max_length=args.max_length, batch_size=batch_size)
            started = time.perf_counter()
            features[label] = extract_features(
                backbone, tokenizer, texts, config, show_progress=False
            )
            seconds[label] = time.perf_counter() - started
        assert torch.allclose(features["batched"], features["one at a time"], atol=1e-3)
        print(
            f"feature extraction, {args.model}, {len(texts)} {task} texts, max_length {args.max_length}:"
        )
        for label in ("batched", "one at a time"):
            print(
                f"  {label:>14}: {seconds[label]:.2f} s  ({len(texts) / seconds[label]:.1f} examples/s)"
            )
        print(
            f"  ratio one-at-a-time / batched: {seconds['one at a time'] / seconds['batched']:.2f}"
        )

    with tempfile.TemporaryDirectory() as runs_dir:
        config = GeneralizeConfig(
            task=TaskConfig(name="imdb", max_per_split=args.texts * 2),
            weak="lexicon:vader",
            strong=args.model,
            strategies=["naive", "confidence", "confident-subset"],
            features=FeatureConfig(max_length=args.max_length, batch_size=args.batch_size),
            show_progress=False,
        )
        started = time.perf_counter()
        generalize = Generalize(config, runs_dir)
        setup = time.perf_counter() - started
        started = time.perf_counter()
        _, results = generalize.run()
        total = time.perf_counter() - started
        print(f"stage times of a generalize run (weak lexicon:vader → strong {args.model}):")
        print(f"  load task and validate: {setup:.2f} s")
        for stage, seconds in results["stage_seconds"].items():
            print(f"  {stage}: {seconds:.2f} s")
        print(f"  whole run (incl. weak labels, metrics, bootstrap): {total:.2f} s")
        started = time.perf_counter()
        Generalize(config, runs_dir).run()
        print(f"  cached rerun: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
