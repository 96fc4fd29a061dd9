"""ExPO memory and speed on synthetic checkpoints of a few GB, made on the fly.

    python benchmarks/extrapolate.py [--gigabytes 1 3] [--shard-size 500MB] [--workdir DIR]

For each size (of one model, bf16, transformer-shaped tensors; the SFT and aligned models
sharded at different boundaries), in fresh subprocesses so that each peak is its own:
- peak RSS of `extrapolate` (streaming) vs the whole-model approach (load both state dicts,
  compute, save), against the target of 3 output shards + 1 GiB, whatever the size;
- throughput of `extrapolate` as a ratio of a plain read of the same input files
  (bytes of both inputs / second; both runs read through the page cache when it holds them),
  and as a ratio of the I/O floor (read both inputs, write one model's worth of bytes).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from synthetic import IO_FLOOR_CHILD, child, write_pair

from weak2strong.extrapolate.checkpoint import parse_size

CHILD_STREAMING = """
import json, sys, time
from weak2strong.extrapolate import extrapolate
started = time.perf_counter()
extrapolate([sys.argv[1], sys.argv[2]], 0.5, sys.argv[3], shard_size=sys.argv[4], show_progress=False)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss": peak_rss()}))
"""

CHILD_WHOLE = """
import json, sys, time
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
started = time.perf_counter()
def load(folder):
    state = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(file))
    return state
sft, aligned = load(sys.argv[1]), load(sys.argv[2])
result = {k: (v.float() + 0.5 * (v.float() - sft[k].float())).to(v.dtype) for k, v in aligned.items()}
Path(sys.argv[3]).mkdir()
save_file(result, sys.argv[3] + "/model.safetensors")
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_rss": peak_rss()}))
"""

CHILD_READ = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
total = 0
for folder in sys.argv[1:3]:
    for file in sorted(Path(folder).glob("*.safetensors")):
        with open(file, "rb") as handle:
            while block := handle.read(64 << 20):
                total += len(block)
print(json.dumps({"seconds": time.perf_counter() - started, "bytes": total,
                  "peak_rss": peak_rss()}))
"""

CHILD_BASELINE = """
import json
import torch, weak2strong.extrapolate
print(json.dumps({"peak_rss": peak_rss()}))
"""


def gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--shard-size", default="500MB", help="output shard size")
    parser.add_argument("--workdir", default=None, help="where the synthetic models go")
    args = parser.parse_args()
    shard = parse_size(args.shard_size)
    target = 3 * shard + 2**30
    base = child(CHILD_BASELINE)["peak_rss"]
    print(f"python + torch + weak2strong after import: {gib(base)}")
    print(f"target for streaming: 3 × {args.shard_size} shards + 1 GiB = {gib(target)}\n")
    rows = []
    for size in args.gigabytes:
        work = Path(tempfile.mkdtemp(prefix="w2s-expo-bench-", dir=args.workdir))
        try:
            started = time.perf_counter()
            write_pair(work, size)
            made = time.perf_counter() - started
            read = child(CHILD_READ, str(work / "sft"), str(work / "aligned"))
            copy = child(
                IO_FLOOR_CHILD, str(work / "sft"), str(work / "aligned"), str(work / "copy")
            )
            streaming = child(
                CHILD_STREAMING,
                str(work / "sft"),
                str(work / "aligned"),
                str(work / "out-streaming"),
                args.shard_size,
            )
            whole = child(
                CHILD_WHOLE, str(work / "sft"), str(work / "aligned"), str(work / "out-whole")
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        input_bytes = read["bytes"]
        rows.append((size, input_bytes, read, streaming, whole))
        print(f"model of {input_bytes / 2 / 1e9:.2f} GB (bf16), made in {made:.0f} s:")
        print(
            f"  peak RSS   streaming {gib(streaming['peak_rss'])} "
            f"({'within' if streaming['peak_rss'] <= target else 'OVER'} target) | "
            f"whole-model {gib(whole['peak_rss'])} | "
            f"streaming / whole = {streaming['peak_rss'] / whole['peak_rss']:.2f}"
        )
        read_speed = input_bytes / read["seconds"]
        stream_speed = input_bytes / streaming["seconds"]
        whole_speed = input_bytes / whole["seconds"]
        copy_speed = input_bytes / copy["seconds"]
        print(
            f"  throughput (input bytes / s) plain read {read_speed / 1e9:.2f} GB/s | "
            f"streaming {stream_speed / 1e9:.2f} GB/s (ratio {stream_speed / read_speed:.2f}) | "
            f"whole-model {whole_speed / 1e9:.2f} GB/s (ratio {whole_speed / read_speed:.2f})"
        )
        print(
            f"  I/O floor: read both inputs + write one model's bytes {copy_speed / 1e9:.2f} GB/s;"
            f" streaming / floor = {stream_speed / copy_speed:.2f}\n"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(
            f"size ×{last[1] / first[1]:.1f}: streaming peak ×"
            f"{last[3]['peak_rss'] / first[3]['peak_rss']:.2f}, whole-model peak ×"
            f"{last[4]['peak_rss'] / first[4]['peak_rss']:.2f}"
        )


if __name__ == "__main__":
    main()
