"""The demo configs (`make demo`, and the full demos) load, and `make demo`'s run end to end at
tiny size: the same files and commands, with sizes (and the large/strong models) cut down."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.conftest import assert_results_layout
from tests.demo import TINY, demo_commands
from weak2strong.commands import COMMANDS
from weak2strong.runs.config import config_hash, load_config


@pytest.mark.parametrize(
    "target",
    ["demo", "demo-generalize", "demo-search", "demo-extrapolate", "demo-prune", "demo-lottery"],
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


def test_make_demo_at_tiny_size_runs_and_reports(demo_runs, run_cli, tmp_path):
    runs = demo_runs  # the Makefile's demo commands, each with its TINY flags (tests/demo.py)
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
    report = run_cli("report", str(runs), "--out", "report")
    assert report.returncode == 0, report.stderr
    said = " ".join(report.stdout.split())  # each effect in words, at the end of the run
    for command in ("replicates", "search", "extrapolate", "prune"):
        assert f"effects of {command}-" in said, command
    assert "effects of generalize-" not in said  # each seed's run is left to their aggregate
    for effect in (
        r"w2s:confidence (beats weak by|does not clearly beat weak:) [+-]\S+ \[\S+, \S+\] "
        r"accuracy \(mean of 2 seeds, 95% t-interval",
        r"cbs (beats sample by|does not clearly beat sample:) [+-]\S+ \[",
        r"α=8 (beats|does not clearly beat) aligned \(α=0\)",
        r"imp (beats random by|does not clearly beat random:) .{0,40}accuracy at \d+\.\d% of "
        r"weights remaining \(mean of 2 seeds",
    ):
        assert re.search(effect, said), effect
    pages = {path.stem for path in (tmp_path / "report").glob("*.html")}
    assert {"generalize", "search", "extrapolate", "prune"} <= pages
