"""Wall time of 2 processes against 1: feature extraction and one fine-tuning epoch.

    python benchmarks/scale.py [--model smollm2-135m-instruct] [--texts 256] [--processes 2]

Runs the same work once as one process and once under torchrun with `--processes`
processes (gloo on a CPU machine, NCCL on GPUs), in this one invocation, and prints
seconds and the ratio (N processes / 1 process) for each stage. Model loading is outside
the timed part; every process starts a stage together (barrier) and the stage ends when
the last one is done.

On a 2-core CPU machine the ratio is expected near 1: one process already uses both cores
(two threads), two processes use one each, and the gathers add a little. On a machine
with one GPU per process the ratio shows the data-parallel speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> None:
    import torch

    from weak2strong import distributed
    from weak2strong.data import TaskConfig, load_task
    from weak2strong.generalize import FinetuneConfig
    from weak2strong.models import load_encoder
    from weak2strong.models.adapters import LoraSettings
    from weak2strong.models.features import FeatureConfig, extract_features
    from weak2strong.training import TextClassifier, fit, one_hot

    distributed.state()
    examples = load_task(TaskConfig(name="imdb")).split("train")[: args.texts]
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    backbone, tokenizer = load_encoder(args.model)
    timings: dict[str, float] = {}

    distributed.barrier()
    started = time.perf_counter()
    features = extract_features(
        backbone,
        tokenizer,
        texts,
        FeatureConfig(max_length=args.max_length, batch_size=16),
        show_progress=False,
    )
    distributed.barrier()
    timings["feature extraction"] = time.perf_counter() - started

    torch.manual_seed(0)
    settings = FinetuneConfig(
        lora=LoraSettings(rank=8), epochs=1, batch_size=16, max_length=args.max_length
    )
    student = TextClassifier(
        backbone, tokenizer, 2, lora=settings.lora, max_length=settings.max_length
    )
    distributed.barrier()
    started = time.perf_counter()
    fit(
        student,
        texts[: args.finetune_texts],
        one_hot(labels[: args.finetune_texts], 2),
        settings,
        seed=0,
    )
    distributed.barrier()
    timings["fine-tune epoch (LoRA)"] = time.perf_counter() - started

    if distributed.is_main():
        record = {
            "processes": distributed.num_processes(),
            "device": str(distributed.device()),
            "threads": torch.get_num_threads(),
            "rows": int(features.shape[0]),
            "timings": timings,
        }
        Path(args.out).write_text(json.dumps(record))


def launch(args: argparse.Namespace, processes: int, out: Path) -> dict:
    common = [
        str(HERE), "--worker", "--out", str(out), "--model", args.model,
        "--texts", str(args.texts), "--finetune-texts", str(args.finetune_texts),
        "--max-length", str(args.max_length),
    ]  # fmt: skip
    if processes == 1:
        command = [sys.executable, *common]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", *common,
        ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--finetune-texts", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        single = launch(args, 1, Path(scratch) / "one.json")
        multi = launch(args, args.processes, Path(scratch) / "many.json")
    n = args.processes
    print(
        f"{args.model}, {args.texts} IMDB reviews for features, {args.finetune_texts} for one "
        f"fine-tuning epoch, max_length {args.max_length}; device {single['device']} "
        f"(1 process: {single['threads']} threads; {n} processes: {multi['threads']} each)"
    )
    for stage, seconds in single["timings"].items():
        many = multi["timings"][stage]
        print(
            f"  {stage}: 1 process {seconds:.2f} s, {n} processes {many:.2f} s, ratio {many / seconds:.2f}"
        )


if __name__ == "__main__":
    main()
