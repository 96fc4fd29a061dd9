"""Synthetic Llama-shaped bf16 checkpoints of a chosen size, and the I/O floor of merging them.

Shared by the ExPO benchmarks: the config is a real `LlamaForCausalLM` one, so any tool that
reads Hugging Face checkpoints (transformers, mergekit) accepts the folder, and the weights
are seeded by tensor name, so an SFT/aligned pair differs only by a small shift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

HIDDEN = 2048
FFN = 5632
VOCAB = 32000
HEADS = 16


def layer_shapes() -> dict[str, tuple[int, ...]]:
    return {
        "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
        "self_attn.k_proj.weight": (HIDDEN, HIDDEN),
        "self_attn.v_proj.weight": (HIDDEN, HIDDEN),
        "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
        "mlp.gate_proj.weight": (FFN, HIDDEN),
        "mlp.up_proj.weight": (FFN, HIDDEN),
        "mlp.down_proj.weight": (HIDDEN, FFN),
        "input_layernorm.weight": (HIDDEN,),
        "post_attention_layernorm.weight": (HIDDEN,),
    }


def layer_count(gigabytes: float) -> int:
    """As many layers as fill `gigabytes` in bf16, beside the embedding and output head."""
    per_layer = sum(torch.Size(s).numel() for s in layer_shapes().values()) * 2
    fixed = 2 * VOCAB * HIDDEN * 2
    return max(1, round((gigabytes * 1e9 - fixed) / per_layer))


def model_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for index in range(layers):
        for name, shape in layer_shapes().items():
            shapes[f"model.layers.{index}.{name}"] = shape
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def llama_config(layers: int) -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
    }


def write_model(folder: Path, gigabytes: float, shard_bytes: int, seed: int, shift: float) -> int:
    """Write the model; returns its weight bytes. Never holds more than one shard."""
    layers = layer_count(gigabytes)
    shapes = model_shapes(layers)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(llama_config(layers), indent=2))
    groups: list[list[str]] = [[]]
    filled = 0
    for name, shape in shapes.items():
        size = torch.Size(shape).numel() * 2
        if groups[-1] and filled + size > shard_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(name)
        filled += size
    weight_map = {}
    total = 0
    for index, group in enumerate(groups):
        tensors = {}
        for name in group:
            # the same base weights in both models (seeded by name), plus a small shift
            generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            base = torch.randn(shapes[name], generator=generator) * 0.02
            if shift:
                noise = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
                base += shift * torch.randn(shapes[name], generator=noise)
            tensors[name] = base.to(torch.bfloat16)
            total += tensors[name].numel() * 2
        file = f"model-{index + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file(tensors, str(folder / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, file))
    index_file = folder / "model.safetensors.index.json"
    index_file.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total


def write_pair(folder: Path, gigabytes: float) -> tuple[Path, Path]:
    """An SFT model and its aligned version, sharded at different boundaries."""
    sft, aligned = folder / "sft", folder / "aligned"
    write_model(sft, gigabytes, 1_000_000_000, seed=1, shift=0.0)
    write_model(aligned, gigabytes, 700_000_000, seed=2, shift=1e-3)
    return sft, aligned


def evict(*folders: Path) -> None:
    """Drop the folders' files from the page cache, so the next run reads them from disk."""
    for folder in folders:
        for file in folder.iterdir():
            descriptor = os.open(file, os.O_RDONLY)
            try:
                os.fsync(descriptor)  # dirty pages cannot be dropped
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)


# The least any merge can do: read both inputs and write one model's bytes (the aligned
# model's, as large as the output), in 64 MiB blocks, through the same page cache.
IO_FLOOR_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
out = Path(sys.argv[3])
out.mkdir()
for folder in sys.argv[1:3]:
    for file in sorted(Path(folder).glob("*.safetensors")):
        with open(file, "rb") as source, open(out / file.name, "ab") as target:
            while block := source.read(64 << 20):
                if folder == sys.argv[2]:
                    target.write(block)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss": peak_rss()}))
"""


# On Linux a child's ru_maxrss starts at its parent's peak (the high-water mark survives the
# fork and the exec), so a child started after the parent wrote a 1 GB shard would report at
# least that. VmHWM is the peak of the child's own address space: children call `peak_rss()`.
PEAK_RSS = """
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM")
"""


def child(code: str, *args: str) -> dict[str, float]:
    """Run `code` (which may call `peak_rss()`) in a fresh Python; returns its last JSON line."""
    output = subprocess.run(
        [sys.executable, "-c", PEAK_RSS + code, *args], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result
