"""`w2s prune-lm` against llmcompressor (vLLM project, PyPI `llmcompressor`) on the same
one-shot pruning, side by side: same model, same calibration windows, same sparsity.

    python benchmarks/prune_lm_vs_llmcompressor.py [--model smollm2-135m-instruct]
        [--methods wanda sparsegpt] [--sparsities 0.5 2:4] [--venv ../.venv-llmcompressor]
        [--json FILE]

llmcompressor is installed into its own venv (made on first use, never a dependency of the
package) with the same torch build as ours; it installs on CPU without pulling a CUDA torch
(checked with 0.14.0.1). Its `WandaPruningModifier` and `SparseGPTModifier` run through its
`oneshot` entry point with the sequential pipeline (block by block, each block calibrated
on the pruned blocks' outputs, as ours), on every Linear layer but `lm_head`.

Both tools get the calibration windows `w2s prune-lm` draws by default (32 × 256 tokens of
IMDB train reviews); both pruned models are measured by our perplexity on the same 64 held-
out windows. Printed per method and sparsity: the fraction of weights on which the two masks
agree (overall, in the least agreeing layer, in the first block, where both calibrate on
the same dense inputs, and in the last), beside the agreement of ours with itself when the
calibration batches are summed in reverse order (the same data: what float rounding alone
moves, compounded block after block), the largest difference between kept weights, both
perplexities with the paired log-perplexity difference (ours − theirs), and the wall time
of each tool's pruning (llmcompressor's inside its process, model load excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from weak2strong.models import load_causal_lm, resolve
from weak2strong.prune.language import LanguagePrune
from weak2strong.prune.language_config import LanguagePruneConfig, ZeroShotSettings
from weak2strong.prune.oneshot import Sparsity, prune_language_model
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.perplexity import window_losses

LLMCOMPRESSOR = "llmcompressor==0.14.0.1"
TORCH = os.environ.get("TORCH", "torch==2.13.0")

# Runs inside llmcompressor's venv; writes every pruned Linear weight (lm_head excepted).
CHILD = """
import json, sys, time
import torch
from datasets import Dataset
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from llmcompressor import oneshot
from llmcompressor.modifiers.pruning import SparseGPTModifier, WandaPruningModifier

model_dir, windows_file, method, sparsity, out = sys.argv[1:]
windows = load_file(windows_file)["input_ids"]
data = Dataset.from_dict(
    {"input_ids": windows.tolist(), "attention_mask": torch.ones_like(windows).tolist()}
)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
structured = ":" in sparsity
modifier = {"wanda": WandaPruningModifier, "sparsegpt": SparseGPTModifier}[method](
    sparsity=0.5 if structured else float(sparsity),
    mask_structure=sparsity if structured else "0:0",
    targets=["Linear"],
    ignore=["re:.*lm_head"],
)
started = time.perf_counter()
oneshot(model=model, tokenizer=model_dir, dataset=data, recipe=[modifier],
        num_calibration_samples=len(windows), max_seq_length=windows.shape[1],
        shuffle_calibration_samples=False, pipeline="sequential")
seconds = time.perf_counter() - started
save_file({f"{name}.weight": module.weight.detach().contiguous()
           for name, module in model.named_modules()
           if isinstance(module, torch.nn.Linear) and "lm_head" not in name}, out)
print(json.dumps({"seconds": seconds}))
"""


def ensure_llmcompressor(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if python.exists():
        found = subprocess.run([str(python), "-c", "import llmcompressor"], capture_output=True)
        if found.returncode == 0:
            return python
    print(f"installing {LLMCOMPRESSOR} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, LLMCOMPRESSOR], check=True)
    return python


def theirs(
    python: Path, model_dir: str, windows: Path, method: str, sparsity: str, out: Path
) -> tuple[dict[str, torch.Tensor], float]:
    done = subprocess.run(
        [str(python), "-c", CHILD, model_dir, str(windows), method, sparsity, str(out)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"llmcompressor failed:\n{done.stderr[-4000:]}")
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return load_file(out), seconds


def linear_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.weight": module.weight.detach().clone()
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and "lm_head" not in name
    }


def block_of(name: str) -> int:
    """The transformer block a weight belongs to (its first number: `model.layers.3.…`)."""
    found = re.search(r"\.(\d+)\.", name)
    return int(found.group(1)) if found else -1


def compare(ours: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mask agreement overall, in the least agreeing layer, in the first block (where both
    tools calibrate on the same dense inputs) and in the last; the largest gap between
    weights both kept."""
    agree: dict[int, int] = {}
    total: dict[int, int] = {}
    least = 1.0
    largest = 0.0
    for name, weight in ours.items():
        kept_ours, kept_theirs = weight != 0, other[name] != 0
        same = int((kept_ours == kept_theirs).sum())
        block = block_of(name)
        agree[block] = agree.get(block, 0) + same
        total[block] = total.get(block, 0) + weight.numel()
        least = min(least, same / weight.numel())
        both = kept_ours & kept_theirs
        if both.any():
            gap = (weight[both] - other[name][both].to(weight.dtype)).abs().max()
            largest = max(largest, float(gap))
    first, last = min(agree), max(agree)
    return {
        "mask_agreement": sum(agree.values()) / sum(total.values()),
        "least_layer_agreement": least,
        "first_block_agreement": agree[first] / total[first],
        "last_block_agreement": agree[last] / total[last],
        "kept_gap": largest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    parser.add_argument("--sparsities", nargs="+", default=["0.5", "2:4"])
    parser.add_argument("--venv", default=str(Path(__file__).parents[1] / ".venv-llmcompressor"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    python = ensure_llmcompressor(Path(args.venv))
    config = LanguagePruneConfig(model=args.model, zero_shot=ZeroShotSettings(examples=0))
    texts = LanguagePrune(config).texts()
    model_dir = resolve(args.model).location
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        windows = Path(scratch) / "calibration.safetensors"
        save_file({"input_ids": torch.cat(texts.calibration).contiguous()}, windows)
        for method in args.methods:
            for text in args.sparsities:
                model, _ = load_causal_lm(args.model, dtype="float32", device="cpu")
                started = time.perf_counter()
                prune_language_model(model, texts.calibration, method, Sparsity.parse(text))
                ours_seconds = time.perf_counter() - started
                ours = linear_weights(model)
                # the same data summed in another order: how far numerics alone move masks
                floor_model, _ = load_causal_lm(args.model, dtype="float32", device="cpu")
                calibration = list(reversed(texts.calibration))
                prune_language_model(floor_model, calibration, method, Sparsity.parse(text))
                floor = compare(ours, linear_weights(floor_model))
                del floor_model
                ours_losses = window_losses(model, texts.evaluation, config.batch_size)
                other, their_seconds = theirs(
                    python, model_dir, windows, method, text, Path(scratch) / "theirs.safetensors"
                )
                model.load_state_dict(other, strict=False)
                their_losses = window_losses(model, texts.evaluation, config.batch_size)
                paired = paired_bootstrap_means(
                    {"ours": ours_losses, "theirs": their_losses}, baseline="theirs"
                )
                row = {
                    "method": method,
                    "sparsity": text,
                    **compare(ours, other),
                    "self_agreement": floor["mask_agreement"],
                    "self_last_block_agreement": floor["last_block_agreement"],
                    "perplexity_ours": float(torch.tensor(ours_losses).mean().exp()),
                    "perplexity_theirs": float(torch.tensor(their_losses).mean().exp()),
                    "log_ppl_ours_minus_theirs": paired["difference"]["ours"],
                    "seconds_ours": ours_seconds,
                    "seconds_theirs": their_seconds,
                }
                rows.append(row)
                d = row["log_ppl_ours_minus_theirs"]
                print(
                    f"{method:9} {text:4}  masks agree {row['mask_agreement']:.4f} "
                    f"(least layer {row['least_layer_agreement']:.4f}, first block "
                    f"{row['first_block_agreement']:.4f}, last {row['last_block_agreement']:.4f}), "
                    f"ours with calibration reversed {row['self_agreement']:.4f} (last block "
                    f"{row['self_last_block_agreement']:.4f}); kept weights within "
                    f"{row['kept_gap']:.2e}; perplexity ours {row['perplexity_ours']:.2f} "
                    f"theirs {row['perplexity_theirs']:.2f}, log-ppl ours − theirs "
                    f"{d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]; pruning "
                    f"{ours_seconds:.0f} s ours, {their_seconds:.0f} s theirs "
                    f"(ratio {ours_seconds / their_seconds:.2f})",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
