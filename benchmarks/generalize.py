"""Stage times of a small `w2s generalize` run, batched vs one-at-a-time feature extraction,
and middle-layer features from a model cut above that layer vs the whole model.

    python benchmarks/generalize.py [--model smollm2-135m-instruct] [--texts 64] [--batch-size 16]

Both extraction paths embed the same texts with the same backbone in this process, for
long IMDB reviews (cut at max_length) and short safety prompts; the ratio
(one-at-a-time seconds / batched seconds) is the speed-up from length-sorted batching.
The middle-layer comparison embeds the same texts at `--layer` (default: half the model's
depth) with both backbones and checks that the features agree. Growth: whole generalize
runs with ×1, ×2 and ×4 the training examples, each in a fresh run folder (features are
the bulk of the work, so time should grow at most linearly).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from weak2strong.data import TaskConfig, load_task
from weak2strong.generalize import Generalize, GeneralizeConfig
from weak2strong.models import load_encoder
from weak2strong.models.features import FeatureConfig, extract_features, load_feature_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--layer", type=int, default=None, help="default: half the depth")
    parser.add_argument("--growth", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    backbone, tokenizer = load_encoder(args.model, device="cpu")
    middle_layer(args, backbone, tokenizer)
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
    growth(args, config)


def growth(args: argparse.Namespace, config: GeneralizeConfig) -> None:
    """Whole-run wall time against the number of examples per split."""
    print(f"growth with examples (whole generalize runs, {args.model}):")
    first = None
    for factor in args.growth:
        size = args.texts * 2 * factor
        sized = dataclasses.replace(
            config, task=dataclasses.replace(config.task, max_per_split=size)
        )
        with tempfile.TemporaryDirectory() as runs_dir:  # features are cached per runs folder
            started = time.perf_counter()
            Generalize(sized, runs_dir).run()
            seconds = time.perf_counter() - started
        first = first or (size, seconds)
        print(
            f"  {size:>5} examples per split: {seconds:6.1f} s "
            f"(×{seconds / first[1]:.2f} for ×{size / first[0]:.0f} examples)"
        )


def middle_layer(args: argparse.Namespace, whole: torch.nn.Module, tokenizer: object) -> None:
    """Features per second at a middle layer: the model cut above it against the whole model."""
    layer = args.layer if args.layer is not None else whole.config.num_hidden_layers // 2
    config = FeatureConfig(max_length=args.max_length, batch_size=args.batch_size, layer=layer)
    cut, _ = load_feature_backbone(args.model, config, device="cpu")
    texts = load_task(TaskConfig(name="rotten-tomatoes")).texts("train")[: args.texts * 2]
    extract_features(cut, tokenizer, texts[:4], config, show_progress=False)  # warm-up
    seconds, features = {}, {}
    for label, model in (("whole model", whole), ("cut at the layer", cut)):
        started = time.perf_counter()
        features[label] = extract_features(model, tokenizer, texts, config, show_progress=False)
        seconds[label] = time.perf_counter() - started
    assert torch.allclose(features["whole model"], features["cut at the layer"], atol=1e-4)
    print(
        f"middle-layer features, {args.model}, layer {layer} of {whole.config.num_hidden_layers}, "
        f"{len(texts)} rotten-tomatoes sentences:"
    )
    for label, value in seconds.items():
        print(f"  {label:>16}: {value:.2f} s  ({len(texts) / value:.1f} examples/s)")
    print(f"  ratio whole / cut: {seconds['whole model'] / seconds['cut at the layer']:.2f}")


if __name__ == "__main__":
    main()
