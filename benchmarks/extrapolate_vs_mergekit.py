"""`w2s extrapolate` against mergekit on the same ExPO merge, side by side, in one run.

    python benchmarks/extrapolate_vs_mergekit.py [--gigabytes 0.4 0.8 1.6] [--repeats 2]
        [--conditions quiet one-thread contended] [--workdir DIR] [--json FILE]

mergekit (arcee-ai, PyPI `mergekit`) expresses ExPO as `task_arithmetic` with the SFT model
as `base_model`, the aligned model at weight 1+α and `normalize: false`; the recipe used is
the one `w2s extrapolate` writes into every model card (`mergekit_recipe`). mergekit is
installed into its own venv (`.venv-mergekit`, made on first use, never a dependency of the
package), with the same torch build as ours.

For each size of a synthetic bf16 Llama pair (the SFT and aligned models sharded at
different boundaries), both tools run as their command-line programs, fp32 compute, bf16
out, 500 MB output shards, best of `--repeats`, alternating which goes first, under each
condition:
- quiet: nothing else runs;
- one-thread: OMP_NUM_THREADS=1 (and MKL's) for both;
- contended: one busy process per core runs beside both.
Printed per size and condition: wall seconds and peak RSS of each and their ratios (ours /
mergekit), and the fraction of the I/O floor each reaches once its start-up (interpreter
plus imports: each tool's --help) is excluded: floor = read both inputs + write one model's
bytes. Before every run the inputs are dropped from the page cache, so each run (and the
floor) reads them from disk. Both outputs are checked against the formula
θ_aligned + α(θ_aligned − θ_sft), every element. At the end, how time and peak RSS grow
with model size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from synthetic import IO_FLOOR_CHILD, child, evict, write_pair

from weak2strong.extrapolate.planning import direction_coefficients
from weak2strong.extrapolate.recipe import mergekit_recipe

ROOT = Path(__file__).resolve().parent.parent
MERGEKIT = "mergekit==0.1.5"
TORCH = os.environ.get("TORCH", "torch==2.13.0")
ALPHA = 0.5
SHARD_BYTES = 500_000_000
W2S = Path(sys.executable).parent / "w2s"

# Runs a command and reports its wall time and the peak RSS of its process tree's largest
# member, from a small process of its own: on Linux a child's ru_maxrss starts at its
# parent's peak, so the tools must not be children of this script, which wrote the models.
MEASURE_CHILD = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - started
if done.returncode:
    sys.exit(done.stderr[-4000:])
print(json.dumps({"seconds": seconds,
                  "peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""

CONDITIONS = {
    "quiet": {},
    "one-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "contended": {},
}


def ensure_mergekit(venv: Path) -> Path:
    program = venv / "bin" / "mergekit-yaml"
    if program.exists():
        return program
    print(f"installing {MERGEKIT} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    pip.append("--disable-pip-version-check")
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, MERGEKIT], check=True)
    return program


def measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_CHILD, *command],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_up(program: list[str], env: dict[str, str]) -> float:
    """A tool's --help: interpreter start plus the imports of its command line."""
    return measure([*program, "--help"], env)["seconds"]


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def ours_command(sft: Path, aligned: Path, out: Path, runs: Path) -> list[str]:
    return [
        str(W2S),
        "extrapolate",
        "--sft",
        str(sft),
        "--aligned",
        str(aligned),
        "--alpha",
        str(ALPHA),
        "--out",
        str(out),
        "--shard-size",
        str(SHARD_BYTES),
        "--runs-dir",
        str(runs),
    ]


def mergekit_command(program: Path, sft: Path, aligned: Path, out: Path) -> list[str]:
    recipe = mergekit_recipe([str(sft), str(aligned)], ALPHA, direction_coefficients(2), "bfloat16")
    recipe_file = out.parent / f"{out.name}.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe, sort_keys=False))
    # mergekit counts shard size in parameters: bf16 has two bytes each
    shard = f"{SHARD_BYTES // 2 // 1_000_000}M"
    return [str(program), str(recipe_file), str(out), "--out-shard-size", shard]


def tensor_files(folder: Path) -> dict[str, Path]:
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    return {name: folder / file for name, file in weight_map.items()}


def read(files: dict[str, Path], name: str) -> torch.Tensor:
    with safe_open(str(files[name]), framework="pt") as handle:
        return handle.get_tensor(name)


def check_outputs(sft: Path, aligned: Path, outputs: dict[str, Path]) -> dict[str, float]:
    """Every element of each output against the formula, computed in fp32, stored in bf16.

    Returns per tool the fraction of elements that differ from the formula's bf16 value
    (fp32 addition in a different order may round the other way) and the largest
    difference in units of the formula value's bf16 spacing, which must stay ≤ 1.
    """
    inputs = tensor_files(sft), tensor_files(aligned)
    opened = {tool: tensor_files(folder) for tool, folder in outputs.items()}
    differing = dict.fromkeys(outputs, 0)
    worst = dict.fromkeys(outputs, 0.0)
    elements = 0
    for name in inputs[1]:
        base, tuned = (read(files, name).float() for files in inputs)
        expected = torch.add(tuned, tuned - base, alpha=ALPHA).to(torch.bfloat16).float()
        spacing = torch.finfo(torch.bfloat16).eps * expected.abs().clamp_min(1e-30)
        elements += expected.numel()
        for tool, files in opened.items():
            got = read(files, name)
            if got.dtype != torch.bfloat16 or got.shape != expected.shape:
                raise SystemExit(f"{tool}: {name} is {got.dtype} {tuple(got.shape)}")
            gap = (got.float() - expected).abs()
            differing[tool] += int((gap > 0).sum())
            worst[tool] = max(worst[tool], float((gap / spacing).max()))
    for tool in outputs:
        if worst[tool] > 1.0:
            raise SystemExit(f"{tool}'s output is off the formula by {worst[tool]:.1f} bf16 steps")
    return {
        **{f"{tool}_differing_fraction": differing[tool] / elements for tool in outputs},
        **{f"{tool}_worst_bf16_steps": worst[tool] for tool in outputs},
    }


def gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[0.4, 0.8, 1.6])
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument(
        "--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS)
    )
    parser.add_argument("--workdir", default=None, help="where the synthetic models go")
    parser.add_argument("--mergekit-venv", default=str(ROOT / ".venv-mergekit"))
    parser.add_argument("--json", default=None, help="also write every measurement here")
    args = parser.parse_args()
    program = ensure_mergekit(Path(args.mergekit_venv))
    cores = os.cpu_count() or 1
    print(f"{cores} cores; α = {ALPHA}; output shards of {SHARD_BYTES / 1e6:.0f} MB; {MERGEKIT}\n")
    rows = []
    for size in args.gigabytes:
        work = Path(tempfile.mkdtemp(prefix="w2s-vs-mergekit-", dir=args.workdir))
        try:
            sft, aligned = write_pair(work, size)
            model_bytes = sum(f.stat().st_size for f in aligned.glob("*.safetensors"))
            print(f"model of {model_bytes / 1e9:.2f} GB (bf16):", flush=True)
            for condition in args.conditions:
                env = CONDITIONS[condition]
                spin = busy_cores(cores) if condition == "contended" else contextlib.nullcontext()
                best: dict[str, dict[str, float]] = {}
                with spin:
                    startup = {
                        "w2s": start_up([str(W2S), "extrapolate"], env),
                        "mergekit": start_up([str(program)], env),
                    }
                    floor = min(
                        child_floor(sft, aligned, work / f"floor-{i}") for i in range(args.repeats)
                    )
                    for repeat in range(args.repeats):
                        order = ["w2s", "mergekit"] if repeat % 2 == 0 else ["mergekit", "w2s"]
                        for tool in order:
                            out = work / f"{tool}-{condition}-{repeat}"
                            command = (
                                ours_command(sft, aligned, out, work / "runs")
                                if tool == "w2s"
                                else mergekit_command(program, sft, aligned, out)
                            )
                            evict(sft, aligned)
                            result = measure(command, env)
                            if tool not in best or result["seconds"] < best[tool]["seconds"]:
                                best[tool] = result
                check = {}
                if condition == args.conditions[0]:
                    check = check_outputs(
                        sft,
                        aligned,
                        {tool: work / f"{tool}-{condition}-0" for tool in ("w2s", "mergekit")},
                    )
                for folder in work.glob(f"*-{condition}-*"):
                    shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
                row = {
                    "gigabytes": model_bytes / 1e9,
                    "condition": condition,
                    "floor_seconds": floor,
                    **{f"{tool}_seconds": best[tool]["seconds"] for tool in best},
                    **{f"{tool}_peak_rss": best[tool]["peak_rss"] for tool in best},
                    **{f"{tool}_startup_seconds": startup[tool] for tool in startup},
                    **check,
                }
                for tool in ("w2s", "mergekit"):
                    working = row[f"{tool}_seconds"] - row[f"{tool}_startup_seconds"]
                    row[f"{tool}_floor_fraction"] = floor / working if working > 0 else None
                rows.append(row)
                print_row(row)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print_growth(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def child_floor(sft: Path, aligned: Path, out: Path) -> float:
    evict(sft, aligned)
    seconds = child(IO_FLOOR_CHILD, str(sft), str(aligned), str(out))["seconds"]
    shutil.rmtree(out)
    return seconds


def print_row(row: dict[str, float]) -> None:
    ours, theirs = row["w2s_seconds"], row["mergekit_seconds"]
    print(
        f"  {row['condition']:<10} wall  w2s {ours:6.1f} s | mergekit {theirs:6.1f} s | "
        f"w2s / mergekit {ours / theirs:.2f}"
    )
    print(
        f"  {'':<10} peak  w2s {gib(row['w2s_peak_rss'])} | mergekit "
        f"{gib(row['mergekit_peak_rss'])} | w2s / mergekit "
        f"{row['w2s_peak_rss'] / row['mergekit_peak_rss']:.2f}"
    )
    print(
        f"  {'':<10} start-up w2s {row['w2s_startup_seconds']:.1f} s, mergekit "
        f"{row['mergekit_startup_seconds']:.1f} s; I/O floor {row['floor_seconds']:.1f} s; "
        f"fraction of the floor reached after start-up: w2s {row['w2s_floor_fraction']:.2f}, "
        f"mergekit {row['mergekit_floor_fraction']:.2f}"
    )
    if "w2s_differing_fraction" in row:
        print(
            f"  {'':<10} output vs formula: elements differing w2s "
            f"{row['w2s_differing_fraction']:.2e}, mergekit {row['mergekit_differing_fraction']:.2e}"
            f" (at most {max(row['w2s_worst_bf16_steps'], row['mergekit_worst_bf16_steps']):.0f}"
            " bf16 step)"
        )
    sys.stdout.flush()


def slope_and_intercept(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope, mean_y - slope * mean_x


def print_growth(rows: list[dict[str, float]]) -> None:
    """Time and peak RSS against model size, per condition, smallest size as the unit.

    Then a straight line through seconds against gigabytes per tool: its intercept is the
    fixed cost (start-up, imports made on the way, run bookkeeping), its slope the cost per
    gigabyte; floor slope / tool slope is the fraction of the I/O floor reached once every
    fixed cost is excluded, which --help alone underestimates.
    """
    print("\ngrowth with model size (smallest = 1):")
    for condition in dict.fromkeys(row["condition"] for row in rows):
        chosen = [row for row in rows if row["condition"] == condition]
        if len(chosen) < 2:
            continue
        sizes = [row["gigabytes"] for row in chosen]
        floor_slope, _ = slope_and_intercept(sizes, [row["floor_seconds"] for row in chosen])
        for tool in ("w2s", "mergekit"):
            slope, fixed = slope_and_intercept(sizes, [row[f"{tool}_seconds"] for row in chosen])
            print(
                f"  {condition:<10} {tool:<8} {fixed:5.1f} s fixed + {slope:5.2f} s/GB; "
                f"floor {floor_slope:.2f} s/GB: fraction of the floor {floor_slope / slope:.2f}"
            )
        first = chosen[0]
        for row in chosen:
            print(
                f"  {condition:<10} size ×{row['gigabytes'] / first['gigabytes']:.1f}: "
                f"time w2s ×{row['w2s_seconds'] / first['w2s_seconds']:.2f}, mergekit "
                f"×{row['mergekit_seconds'] / first['mergekit_seconds']:.2f}; peak RSS w2s "
                f"×{row['w2s_peak_rss'] / first['w2s_peak_rss']:.2f}, mergekit "
                f"×{row['mergekit_peak_rss'] / first['mergekit_peak_rss']:.2f}"
            )


if __name__ == "__main__":
    main()
