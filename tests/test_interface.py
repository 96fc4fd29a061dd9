"""The researcher's interface: a CLI generated from the configs, printed configs that load
back, dry runs, replicates over seeds, named runs listed and compared, 80-column tables."""

from __future__ import annotations

import dataclasses
import json
import re

import click
import pytest
import yaml
from rich.console import Console

from tests.conftest import assert_results_layout
from weak2strong.cli_commands import CLI_COMMANDS, build
from weak2strong.commands import COMMANDS
from weak2strong.report import ResultTable, print_table
from weak2strong.runs.config import leaves
from weak2strong.runs.results import values_by_model


@pytest.mark.parametrize("name", sorted(CLI_COMMANDS))
def test_every_config_setting_has_help_an_option_and_its_default(name):
    command = COMMANDS[name]
    built = build(command)
    flags = {flag for param in built.params for flag in param.opts}
    helps = {flag: param.help or "" for param in built.params for flag in param.opts}
    for leaf in leaves(command.config):
        assert leaf.help, f"{name}: {leaf.key} has no help text"
        shortcut = next((s for s in command.shortcuts if s.key == leaf.key), None)
        flag = f"--{leaf.key}"
        assert flag in flags or shortcut is not None, f"{name}: {leaf.key} unreachable"
        shown = helps.get(flag) or helps[shortcut.flag]  # type: ignore[union-attr]
        assert "default:" in shown, f"{name}: {leaf.key} shows no default"
    for shortcut in command.shortcuts:  # every shortcut names a real key
        assert shortcut.key in {leaf.key for leaf in leaves(command.config)}


def test_help_lists_the_commands_without_importing_a_model_library():
    import subprocess
    import sys

    probe = (
        "import sys; from weak2strong.cli import app\n"
        "try:\n    app.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip().endswith("False False"), result.stdout + result.stderr
    for name in CLI_COMMANDS:
        assert name in result.stdout


def test_print_config_round_trips_and_options_equal_set(run_cli, tmp_path):
    options = [
        "generalize", "--task", "rotten-tomatoes", "--strategy", "naive",
        "--strategy", "confidence", "--probe.epochs", "3", "--features.layer", "-4",
        "--finetune.lora.rank", "0", "--no-show_progress",
    ]  # fmt: skip
    printed = run_cli(*options, "--print-config")
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "resolved.yaml").write_text(printed.stdout)
    again = run_cli("generalize", "-c", "resolved.yaml", "--print-config")
    assert again.stdout == printed.stdout
    with_set = run_cli(
        "generalize", "--set", "task.name=rotten-tomatoes", "--set", "strategies=[naive,confidence]",
        "--set", "probe.epochs=3", "--set", "features.layer=-4", "--set", "finetune.lora.rank=0",
        "--set", "show_progress=false", "--print-config",
    )  # fmt: skip
    assert with_set.stdout == printed.stdout
    assert "epochs: 3" in printed.stdout and "- confidence" in printed.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", ["search", "extrapolate"])
def test_the_automatic_tune_is_configured_the_same_way_everywhere(run_cli, command):
    printed = run_cli(command, "--tune.train_prompts", "8", "--print-config")
    assert printed.returncode == 0, printed.stderr
    assert yaml.safe_load(printed.stdout)["tune"]["train_prompts"] == 8
    same = run_cli(command, "--set", "tune.train_prompts=8", "--print-config")
    assert same.stdout == printed.stdout


def test_dry_run_says_what_would_run_and_what_is_cached(run_cli, tmp_path):
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader",
        "--strong", "minilm-l6", "--set", "task.max_per_split=40",
        "--features.max_length", "16", "--set", "bootstrap_samples=50",
    ]  # fmt: skip
    before = run_cli(*args, "--dry-run")
    assert before.returncode == 0, before.stderr
    assert "new: every step is computed" in before.stdout
    assert "model strong" in before.stdout and "minilm-l6: embedded" in before.stdout
    assert "a lexicon" in before.stdout and "train 40, test 40" in before.stdout
    assert not (tmp_path / "runs").exists()
    assert run_cli(*args).returncode == 0
    after = run_cli(*args, "--dry-run")
    assert "finished" in after.stdout and "ceiling-probs" in after.stdout


def test_seeds_run_replicates_and_aggregate_them(run_cli, tmp_path):
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader",
        "--strong", "minilm-l6", "--set", "task.max_per_split=40",
        "--features.max_length", "16", "--set", "bootstrap_samples=50",
        "--seeds", "0,1,2", "--run-name", "replicated", "--tag", "demo",
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    runs = sorted(p.name for p in (tmp_path / "runs").glob("generalize-*"))
    assert len(runs) == 3
    (folder,) = (tmp_path / "runs").glob("replicates-*")
    aggregate = json.loads((folder / "results.json").read_text())
    per_seed = [
        json.loads((tmp_path / "runs" / name / "results.json").read_text())
        for name in aggregate["runs"]
    ]
    assert sorted(aggregate["runs"]) == runs and aggregate["seeds"] == [0, 1, 2]
    assert_results_layout(aggregate)
    values = [values_by_model(r)["ceiling"]["accuracy"] for r in per_seed]
    (interval,) = [
        r
        for r in aggregate["metrics"]
        if r["model"] == "ceiling" and r["metric"] == "accuracy" and "of" not in r
    ]
    assert interval["n"] == 3 and interval["interval"] == "seeds"
    assert interval["value"] == pytest.approx(sum(values) / 3)
    assert interval["low"] <= interval["value"] <= interval["high"]
    assert "over 3 seeds" in result.stdout
    # each student's gain over its weak supervisor, aggregated over the seeds and in words
    (gain,) = [
        r
        for r in aggregate["metrics"]
        if r["model"] == "w2s:naive" and r["metric"] == "gain" and r.get("baseline") == "weak"
    ]
    per_seed_gain = [
        values_by_model(r)["w2s:naive"]["accuracy"] - values_by_model(r)["weak"]["accuracy"]
        for r in per_seed
    ]
    assert gain["value"] == pytest.approx(sum(per_seed_gain) / 3)
    said = "beats weak by" if gain["low"] > 0 else "does not clearly beat weak:"
    assert f"w2s:naive {said} {gain['value']:+.3f}" in " ".join(result.stdout.split())
    listing = run_cli("runs")
    assert "replicated (seed 1)" in listing.stdout and "#demo" in listing.stdout
    compared = run_cli("compare", "replicated (seed 0)", "replicated (seed 2)")
    assert compared.returncode == 0, compared.stderr
    assert "seed" in compared.stdout and "ceiling accuracy" in compared.stdout


def test_tables_stay_readable_at_80_columns():
    console = Console(width=80, record=True)
    interval = "0.718 [0.672, 0.762]"
    rows = [
        [name, interval, interval, interval, interval, "0.500 [-0.678, 1.064]"]
        for name in ("weak", "w2s:naive", "w2s:confidence", "w2s:confident-subset", "ceiling")
    ]
    columns = ["model", "accuracy", "balanced_accuracy", "f1", "auroc", "PGR (accuracy)"]
    print_table(console, ResultTable("a results table", columns, rows))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "w2s:confident-subset" in text  # names whole, never folded
    assert "balanced" in text and "ccuracy\n" not in text  # headers wrap at words
    # every interval whole, on the line under its value
    assert len(re.findall(r"0\.67–0\.76|0\.672–0\.762", text)) == 20


def test_a_typo_in_an_option_is_one_line_naming_the_fix(run_cli):
    result = run_cli("generalize", "--probe.epoch", "3")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--probe.epochs" in lines[0] and "--help" in lines[0]


def test_track_is_accepted_after_the_command_and_before(run_cli, tmp_path, monkeypatch):
    for args in (["--track", "nope", "tasks"], ["generalize", "--track", "nope", "--dry-run"]):
        result = run_cli(*args)
        assert result.returncode == 2 and "unknown tracker 'nope'" in result.stderr


def test_generated_options_are_typed_by_the_config(run_cli):
    result = run_cli("prune", "--lottery.rounds", "two", "--print-config")
    assert result.returncode == 2 and "'lottery.rounds' must be a number" in result.stderr
    all_baselines = run_cli("prune", "--baseline", "all", "--print-config")
    assert "synflow" in all_baselines.stdout and "- all" not in all_baselines.stdout


def test_configs_are_plain_dataclasses_of_settings():
    for command in COMMANDS.values():
        for field in dataclasses.fields(command.config):
            assert "help" in field.metadata, (command.name, field.name)
    assert isinstance(build(COMMANDS["search"]), click.Command)
