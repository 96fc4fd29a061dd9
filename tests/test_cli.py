"""The command line: `w2s check` runs and caches; bad input is one line on stderr, exit 2, no run folder."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_results_layout


def _assert_clean_failure(result, fragment: str, tmp_path) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_check_runs_then_reruns_from_cache(run_cli, run_cli_process, tmp_path):
    # the smoke test of the real entry point: a new interpreter, as a user starts it
    first = run_cli_process("check", "--set", "tasks=[rotten-tomatoes]")
    assert first.returncode == 0, first.stderr
    assert "Paris" in first.stdout
    (folder,) = (tmp_path / "runs").iterdir()
    assert {p.name for p in folder.iterdir()} >= {
        "config.yaml",
        "env.json",
        "results.json",
        "run.log",
        "steps",
    }
    results = json.loads((folder / "results.json").read_text())
    assert_results_layout(results)
    assert results["tasks"]["rotten-tomatoes"]["counts"]["test"] == {
        "negative": 853,
        "positive": 853,
    }
    second = run_cli("check", "--set", "tasks=[rotten-tomatoes]")
    assert second.returncode == 0, second.stderr
    assert "step model: cached" in (folder / "run.log").read_text()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["check", "--set", "model=./no-such-model"], "model not found: './no-such-model'"),
        (["check", "--set", "tasks=[no-such-task]"], "unknown task 'no-such-task'"),
        (["check", "--set", "tasks=[missing.csv]"], "data file not found"),
        (["check", "--set", "tasks=[bad.csv]"], "bad.csv has no column 'text'"),
        (["check", "--set", "modle=x"], "unknown config key 'modle'"),
        (["check", "--set", "seed"], "malformed override"),
        (["check", "--config", "missing.yaml"], "config file not found"),
        (["assets", "prepare", "no-such-asset"], "unknown asset 'no-such-asset'"),
        (["prune", "--fraction", "1.5"], "'lottery.fraction' must be in (0, 1)"),
        (["prune", "--baseline", "magic"], "'lottery.baselines' must be one of random,"),
        (["prune", "--weak", "vader"], "use lexicon:vader or lexicon:afinn"),
        (
            ["prune", "--weak", "lexicon:vader", "--set", "task.name=safety"],
            "not a two-class sentiment",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, args, fragment):
    (tmp_path / "bad.csv").write_text("sentence,label\nhello,1\nbye,0\n")
    _assert_clean_failure(run_cli(*args), fragment, tmp_path)


def test_assets_lists_registry(run_cli):
    result = run_cli("assets")
    assert result.returncode == 0, result.stderr
    for name in (
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "gemma3-270m",
        "minilm-l6",
        "imdb",
    ):
        assert name.split("-")[0] in result.stdout
