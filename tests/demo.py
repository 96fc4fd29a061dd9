"""`make demo` at tiny size: the Makefile's own commands and config files, sizes (and the
large and strong models) cut down. Run once per test session (`demo_runs` in conftest): the
demo, report, runs and compare tests all read the same run folders."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
MAKEFILE = (ROOT / "Makefile").read_text()

# The tiny tune block both search and extrapolate get: they must still share one run.
TINY_TUNE = [
    "--set", "tune.train_prompts=8", "--set", "tune.eval_pairs=4",
    "--set", "tune.completion_words=8", "--set", "tune.training.batch_size=4",
    "--set", "tune.training.max_length=40",
]  # fmt: skip
TINY = {
    "generalize": [
        "--seeds", "0,1",
        "--set", "task.max_per_split=60", "--set", "task.test_fraction=0.2",
        "--strong", "smollm2-135m-instruct",  # keeps the config's middle layer (12 of 30)
        "--set", "features.max_length=24",
    ],
    "search": [
        *TINY_TUNE,
        "--large", "smollm2-135m-instruct",
        "--set", "test_prompts=2", "--set", "sampling.new_tokens=6", "--set", "bon_n=4",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=3",
        "--set", "scorer.name=lexicon:vader",  # the MiniLM gold scorer trains for minutes
        "--set", "bootstrap_samples=100",
    ],
    "extrapolate": [
        *TINY_TUNE,
        "--set", "alphas=[2,8]", "--set", "test_prompts=2", "--set", "sampling.new_tokens=6",
        "--set", "scorer.name=lexicon:vader", "--set", "bootstrap_samples=100",
    ],
    "prune": [
        "--set", "seeds=[0,1]", "--set", "train_examples=48", "--set", "test_examples=32",
        "--set", "student.max_length=16", "--set", "student.epochs=1",
    ],
}  # fmt: skip


def demo_commands(target: str) -> list[tuple[str, Path, list[str]]]:
    """(command, config file, extra flags) of each `w2s` line of a Makefile target."""
    body = MAKEFILE.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    found = []
    for line in body.splitlines():
        match = re.search(r"w2s (\w+) --config (\S+)(.*)", line)
        if match:
            found.append((match[1], ROOT / match[2], match[3].split()))
    return found
