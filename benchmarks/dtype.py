"""float32 against bfloat16 inference on this CPU, in one run: what `dtype="auto"` chooses.

    python benchmarks/dtype.py [--model qwen2.5-coder-0.5b-instruct] [--repeats 3]

On a CPU that multiplies bfloat16 in hardware (AMX-BF16), `auto` loads models for inference
in bf16 (`weak2strong.models.loading.cpu_multiplies_bfloat16`). For each dtype: the median
seconds of a feature pass (16 texts × 32 tokens through the first 12 layers, as
`w2s generalize`'s probes read them) and of a decoding step (16 rows, KV cache of 32),
their ratios (float32 / bfloat16; above 1: bf16 is faster), and how far bf16 moves the
numbers: cosine of the pooled features, and the share of rows whose greedy next token is
the same.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from weak2strong.models import load_causal_lm
from weak2strong.models.loading import cpu_multiplies_bfloat16
from weak2strong.search.lm import cache_keyword


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: oneDNN picks its kernels on the first call
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


@torch.no_grad()
def measure(model_name: str, dtype: str, ids: torch.Tensor, repeats: int) -> dict[str, object]:
    model, _ = load_causal_lm(model_name, dtype=dtype, device="cpu")
    layer = model.config.num_hidden_layers // 2

    def features() -> torch.Tensor:
        hidden = model.model(input_ids=ids, output_hidden_states=True).hidden_states[layer]
        return hidden.float().mean(1)

    keyword = cache_keyword(type(model))
    prefix = model(input_ids=ids, use_cache=True)

    def step() -> torch.Tensor:
        cache = copy.deepcopy(getattr(prefix, keyword))  # the cache grows in place
        return model(input_ids=ids[:, -1:], use_cache=True, **{keyword: cache}).logits

    return {
        "features_s": median_seconds(features, repeats),
        "step_s": median_seconds(step, repeats),
        "features": features(),
        "next_tokens": prefix.logits[:, -1].argmax(-1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (16, 32))
    print(f"this CPU multiplies bfloat16 in hardware: {cpu_multiplies_bfloat16()}")
    full, half = (measure(args.model, d, ids, args.repeats) for d in ("float32", "bfloat16"))
    for key, what in (("features_s", "feature pass"), ("step_s", "decoding step")):
        ratio = full[key] / half[key]  # type: ignore[operator]
        print(
            f"{what}: float32 {full[key]:.3f} s, bfloat16 {half[key]:.3f} s, "
            f"float32 / bfloat16 = {ratio:.2f}"
        )
    cosine = torch.nn.functional.cosine_similarity(full["features"], half["features"], dim=-1)  # type: ignore[arg-type]
    same = (full["next_tokens"] == half["next_tokens"]).float().mean()  # type: ignore[operator]
    print(f"features' cosine float32 vs bfloat16: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    print(f"greedy next token unchanged in {same:.0%} of rows")


if __name__ == "__main__":
    main()
