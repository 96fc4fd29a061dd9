"""The demo configs (`make demo`, and the full demos) load, and `make demo`'s run end to end at
tiny size: the same files and commands, with sizes (and the large/strong models) cut down."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_results_layout
from weak2strong.commands import COMMANDS
from weak2strong.runs.config import config_hash, load_config

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"
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
        "--set", "seeds=[0]", "--set", "train_examples=48", "--set", "test_examples=32",
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


@pytest.mark.parametrize(
    "target", ["demo", "demo-generalize", "demo-search", "demo-extrapolate", "demo-prune"]
)
def test_every_demo_config_loads_and_validates(target):
    commands = demo_commands(target)
    assert commands, f"make {target} runs no configured command"
    for command, path, _ in commands:
        config = load_config(COMMANDS[command].config, path, [])
        assert config_hash(config)  # every key in the file is a real setting


def test_make_demo_runs_all_four_methods_and_search_and_expo_share_a_tuned_model():
    assert [command for command, _, _ in demo_commands("demo")] == [
        "generalize",
        "search",
        "extrapolate",
        "prune",
    ]
    tune = {
        command: yaml.safe_load(path.read_text())["tune"]
        for command, path, _ in demo_commands("demo")
        if command in ("search", "extrapolate")
    }
    assert tune["search"] == tune["extrapolate"]


def test_make_demo_at_tiny_size_runs_and_reports(run_cli, tmp_path):
    for command, path, flags in demo_commands("demo"):
        result = run_cli(command, "--config", str(path), *flags, *TINY[command])
        assert result.returncode == 0, f"{command}: {result.stderr[-2000:]}"
    runs = tmp_path / "runs"
    assert len(list(runs.glob("tune-*"))) == 1  # search and ExPO steered by one tuned model
    folders = {command: sorted(runs.glob(f"{command}-*")) for command in TINY}
    assert len(folders["generalize"]) == 2 and all(folders.values())  # seeds 0 and 1
    for command in ("search", "extrapolate", "prune"):
        results = json.loads((folders[command][0] / "results.json").read_text())
        assert_results_layout(results)
    search = json.loads((folders["search"][0] / "results.json").read_text())
    assert set(search["methods"]) == {"sample", "bon", "cbs"}
    prune = json.loads((folders["prune"][0] / "results.json").read_text())
    assert len(prune["curves"]["imp"]) == 1 + 3  # dense + the config's three sparsities
    assert len(prune["curves"]["random"]) == 3
    report = run_cli("report", "runs", "--out", "report")
    assert report.returncode == 0, report.stderr
    pages = {path.stem for path in (tmp_path / "report").glob("*.html")}
    assert {"generalize", "search", "extrapolate", "prune"} <= pages
