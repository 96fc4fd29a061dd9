"""Fault injection: stale inputs, damaged caches, killed and concurrent runs, bad input.

Every bad input is one `error:` line naming its cause, exit code 2, and no run folder; a
changed input or a damaged cache is recomputed, never trusted; a run killed mid-step
resumes to the uninterrupted result.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import w2s_environment
from weak2strong.runs.results import SCHEMA

MINILM = "minilm-l6"


def _csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    lines = [header] + [f'"{text}",{label}' for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reviews(count: int = 48) -> list[tuple[str, str]]:
    good = ["a wonderful, moving film", "great acting and a lovely story", "I loved it"]
    bad = ["a dull, boring mess", "terrible acting and an awful plot", "I hated it"]
    rows = []
    for i in range(count):
        words = (good if i % 2 else bad)[i % 3]
        rows.append((f"{words} (review {i})", "1" if i % 2 else "0"))
    return rows


def _strict_json(path: Path) -> dict:
    def refuse(token: str) -> None:
        raise AssertionError(f"{path} holds {token}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


GENERALIZE = [
    "generalize", "--weak", "lexicon:vader", "--strong", MINILM, "--strategy", "naive",
    "--set", "features.max_length=16", "--set", "bootstrap_samples=50",
]  # fmt: skip


def _assert_refused(result, fragment: str, tmp_path: Path, runs: str = "runs") -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert not (tmp_path / runs).exists() or not any((tmp_path / runs).glob("*-*"))


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (["strategy.confidence_alpha=nan"], "'strategy.confidence_alpha' must be a finite number"),
        (["probe.epochs=0"], "'probe.epochs' must be in [1, ∞]"),
        (["probe.batch_size=0"], "'probe.batch_size' must be in [1, ∞]"),
        (["probe.learning_rate=-1"], "'probe.learning_rate' must be in (0, ∞]"),
        (["strategy.subset_keep=1.5"], "'strategy.subset_keep' must be in (0, 1]"),
        (["task.test_fraction=inf"], "'task.test_fraction' must be a finite number"),
    ],
)
def test_numeric_settings_out_of_range_are_refused(run_cli, tmp_path, settings, fragment):
    args = [*GENERALIZE, "--task", "rotten-tomatoes"]
    for setting in settings:
        args += ["--set", setting]
    _assert_refused(run_cli(*args), fragment, tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("empty-labels.csv", 'text,label\n"good",1\n"bad",\n"fine",0\n', "without a 'label' value"),
        ("train-only.csv", 'text,label,split\n"good",1,train\n"bad",0,train\n', "must name both"),
        ("mixed.csv", 'text,label,split\n"a",1,train\n"b",0,test\n"c",1,\n', "no split value"),
        ("not-objects.jsonl", '{"text": "good", "label": 1}\n[1, 2]\n', "is list, not an object"),
        ("missing-field.jsonl", '{"text": "good", "label": 1}\n{"text": "bad"}\n', "without a"),
    ],
)
def test_malformed_data_files_are_refused(run_cli, tmp_path, name, content, fragment):
    (tmp_path / name).write_text(content, encoding="utf-8")
    _assert_refused(run_cli(*GENERALIZE, "--task", name), fragment, tmp_path)


def test_unreadable_configs_and_unusable_folders_are_refused(run_cli, tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("task:\n  name: caf\xe9\n".encode("latin-1"))
    _assert_refused(run_cli(*GENERALIZE, "--config", "latin1.yaml"), "not UTF-8", tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    result = run_cli(
        *GENERALIZE, "--task", "rotten-tomatoes", "--set", "task.max_per_split=40",
        "--runs-dir", "a-file/runs",
    )  # fmt: skip
    _assert_refused(result, "cannot create the run folder", tmp_path)


def test_models_that_cannot_load_are_refused_before_any_run_folder(run_cli, tmp_path):
    from weak2strong.models import resolve

    pickled = tmp_path / "pickled-model"
    pickled.mkdir()
    source = Path(resolve(MINILM).location)
    shutil.copy(source / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    args = [*GENERALIZE, "--task", "rotten-tomatoes", "--set", "task.max_per_split=40"]
    result = run_cli(*args[:4], str(pickled), *args[5:])
    _assert_refused(result, "holds only pickled weights", tmp_path)
    result = run_cli(*args[:4], "no-such-org/no-such-model", *args[5:])
    _assert_refused(result, "cannot load model 'no-such-org/no-such-model'", tmp_path)


def test_a_truncated_model_is_one_error_naming_it(run_cli, tmp_path):
    from weak2strong.models import resolve

    broken = tmp_path / "truncated-model"
    shutil.copytree(resolve(MINILM).location, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    args = [*GENERALIZE, "--task", "rotten-tomatoes", "--set", "task.max_per_split=40"]
    result = run_cli(*args[:4], str(broken), *args[5:])
    assert result.returncode == 2, result.stderr
    assert "cannot be read" in result.stderr and str(broken) in result.stderr
    assert "Traceback" not in result.stderr


def test_check_verifies_prepared_models_file_by_file(run_cli, tmp_path, monkeypatch):
    """`w2s check` on a damaged prepared copy fails naming the file (a copy of the cache,
    so the real one stays intact)."""
    from weak2strong.models.assets import models_cache

    cache = tmp_path / "cache"
    shutil.copytree(models_cache() / MINILM, cache / "models" / MINILM)
    # the check's own model, intact: linked, not copied (it is never written to)
    smollm = "smollm2-135m-instruct"
    shutil.copytree(models_cache() / smollm, cache / "models" / smollm, copy_function=os.link)
    weights = cache / "models" / MINILM / "model.safetensors"
    monkeypatch.setenv("W2S_CACHE", str(cache))
    ok = run_cli("check", "--set", "tasks=[safety]")
    assert ok.returncode == 0, ok.stderr
    assert "minilm-l6" in ok.stdout and "verified" in ok.stdout
    with open(weights, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)  # same size, different bytes
    damaged = run_cli("check", "--set", "tasks=[safety]")
    assert damaged.returncode == 2
    assert str(weights) in damaged.stderr and "w2s assets prepare minilm-l6" in damaged.stderr


def test_an_edited_data_file_is_recomputed_never_reused(run_cli, tmp_path):
    data = _csv(tmp_path / "reviews.csv", _reviews())
    args = [*GENERALIZE, "--task", "reviews.csv"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs").glob("generalize-*")
    before = _strict_json(run_dir / "results.json")
    # the same rows, labels flipped: same config, same run folder, other data
    _csv(data, [(text, "0" if label == "1" else "1") for text, label in _reviews()])
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "inputs changed" in second.stderr and "task" in second.stderr
    log = (run_dir / "run.log").read_text().split("(resumed")[-1]
    assert "cached" not in log  # every step computed again, from the edited file
    after = _strict_json(run_dir / "results.json")
    assert after["inputs"]["task"] != before["inputs"]["task"]
    fresh = run_cli(*args, "--runs-dir", "fresh")
    assert fresh.returncode == 0, fresh.stderr
    (fresh_dir,) = (tmp_path / "fresh").glob("generalize-*")
    assert after["metrics"] == _strict_json(fresh_dir / "results.json")["metrics"]
    assert after["metrics"] != before["metrics"]


def test_a_damaged_cache_file_is_named_and_recomputed(run_cli, tmp_path):
    args = [*GENERALIZE, "--task", "rotten-tomatoes", "--set", "task.max_per_split=40"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs").glob("generalize-*")
    results = _strict_json(run_dir / "results.json")
    step = run_dir / "steps" / "ceiling-probs.safetensors"
    step.write_bytes(step.read_bytes()[:20])
    (feature,) = (tmp_path / "runs" / "shared").glob("features-*.safetensors")
    feature.write_bytes(b"")
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert f"damaged cache file {step}" in second.stderr
    assert f"damaged cache file {feature}" in second.stderr
    assert _strict_json(run_dir / "results.json")["metrics"] == results["metrics"]


def test_a_busy_run_folder_is_refused_and_concurrent_runs_stay_whole(run_cli, tmp_path):
    from weak2strong.generalize import Generalize
    from weak2strong.generalize.config import GeneralizeConfig
    from weak2strong.runs import Run, load_config

    args = [*GENERALIZE, "--task", "rotten-tomatoes", "--set", "task.max_per_split=40"]
    config = load_config(  # the config those arguments make
        GeneralizeConfig,
        None,
        [
            "weak=lexicon:vader", f"strong={MINILM}", "strategies=[naive]",
            "features.max_length=16", "bootstrap_samples=50", "task.name=rotten-tomatoes",
            "task.max_per_split=40",
        ],
    )  # fmt: skip
    generalize = Generalize(config, str(tmp_path / "runs"))
    with Run.open("generalize", config, tmp_path / "runs", generalize.inputs()):
        busy = run_cli(*args)
    assert busy.returncode == 2 and "is in use by w2s pid" in busy.stderr
    # two real runs started together: one computes, the other waits its turn or is refused
    command = [sys.executable, "-m", "weak2strong.cli", *args]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    env = w2s_environment()
    launched = [subprocess.Popen(command, cwd=tmp_path, env=env, **pipes) for _ in range(2)]
    outcomes = [(p.communicate(timeout=600)[1], p.returncode)[::-1] for p in launched]
    assert any(code == 0 for code, _ in outcomes)
    for code, stderr in outcomes:
        assert code == 0 or (code == 2 and "is in use" in stderr), stderr
    (run_dir,) = (tmp_path / "runs").glob("generalize-*")
    env_record = json.loads((run_dir / "env.json").read_text())
    assert len(env_record["attempts"]) == 1 + sum(code == 0 for code, _ in outcomes)
    _strict_json(run_dir / "results.json")


def _kill_when(command: list[str], cwd: Path, log_glob: str, marker: str) -> None:
    """Start a run, SIGKILL it as soon as its run.log shows `marker`."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    process = subprocess.Popen(command, cwd=cwd, env=w2s_environment(), **quiet)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            logs = list(cwd.glob(log_glob))
            if logs and marker in logs[0].read_text():
                break
            if process.poll() is not None:
                raise AssertionError(f"finished before {marker!r}: {process.stderr.read()}")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)


@pytest.mark.parametrize("command", ["generalize", "prune", "extrapolate"])
def test_a_run_killed_mid_step_resumes_to_the_uninterrupted_result(
    run_cli, tmp_path, command, monkeypatch
):
    if command == "generalize":
        args = [
            "generalize", "--weak", "lexicon:vader", "--strong", "smollm2-135m-instruct",
            "--strategy", "naive", "--strategy", "confidence", "--task", "rotten-tomatoes",
            "--set", "task.max_per_split=120", "--set", "features.max_length=24",
            "--set", "bootstrap_samples=50",
        ]  # fmt: skip
        marker = "step weak-probs: done"  # killed while the strong model's features run
    elif command == "prune":
        args = [
            "prune", "--rounds", "2", "--baseline", "random", "--set", "seeds=[0]",
            "--set", "train_examples=32", "--set", "test_examples=24",
            "--set", "student.max_length=16", "--set", "student.batch_size=16",
        ]  # fmt: skip
        marker = "step seed0-round1-trained: done"
    else:
        from tests.test_extrapolate import make_word_tokenized_pair

        sft, aligned = make_word_tokenized_pair(tmp_path)
        (tmp_path / "reward.py").write_text(
            "def length(texts):\n    return [float(len(t)) for t in texts]\n"
        )
        monkeypatch.setenv(
            "PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        )
        args = [
            "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "1,2,3",
            "--select-by", "reward", "--set", "scorer.name=python:reward:length",
            "--set", "test_prompts=6", "--set", "sampling.new_tokens=6",
        ]  # fmt: skip
        marker = "step generations-alpha1-"
    _kill_when(
        [sys.executable, "-m", "weak2strong.cli", *args, "--runs-dir", "killed"],
        tmp_path,
        f"killed/{command}-*/run.log",
        marker,
    )
    (killed_dir,) = (tmp_path / "killed").glob(f"{command}-*")
    assert not (killed_dir / "results.json").exists()
    resumed = run_cli(*args, "--runs-dir", "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert "cached" in (killed_dir / "run.log").read_text()  # the finished steps were kept
    whole = run_cli(*args, "--runs-dir", "whole")
    assert whole.returncode == 0, whole.stderr
    (whole_dir,) = (tmp_path / "whole").glob(f"{command}-*")
    assert _outcome(command, _strict_json(killed_dir / "results.json")) == _outcome(
        command, _strict_json(whole_dir / "results.json")
    )


def _outcome(command: str, results: dict) -> object:
    """What a run found (not where its files went)."""
    if command == "generalize":
        return results["metrics"]
    if command == "prune":
        return results["curves"]
    return results["best_alpha"], {label: row["reward"] for label, row in results["rows"].items()}


def test_the_markdown_report_escapes_user_text(tmp_path):
    from weak2strong.report import ResultTable
    from weak2strong.report.pages import Report, RunSection, write_markdown

    payload = "<img src=x onerror=alert(1)> ![p](http://evil.example/x.png) [l](javascript:x) |"
    table = ResultTable(f"task {payload}", ["model", "label"], [[payload, "**bold**"]], [payload])
    section = RunSection(f"generalize-{'0' * 10}", "generalize", [table], [], "", "{}")
    report = Report("runs", str(tmp_path), {"generalize": [section]}, [])
    text = write_markdown(report, tmp_path / "out").read_text()
    assert "<img" not in text and "](http" not in text and "](javascript" not in text
    assert "**bold**" not in text and "&lt;img" in text


def test_the_report_marks_runs_of_an_older_results_version_stale(tmp_path):
    from weak2strong.finished_runs import collect

    results = {
        "large": "l", "tuned": "t", "untuned": "u", "prompts": "imdb", "test_prompts": 2,
        "new_tokens": 4, "scorer": "lexicon:vader", "skipped": {},
        "schema": SCHEMA, "metrics": [],
        "methods": {
            "sample": {
                "label": "sample", "reward": {"value": 0.1, "low": 0.0, "high": 0.2},
                "reward_minus_sample": None, "tokens_per_prompt": 4.0, "seconds": 1.0,
            }
        },
    }  # fmt: skip
    for name, version in (("search-0000000001", 1), ("search-0000000002", 2)):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text("seed: 0\n")
        (folder / "results.json").write_text(json.dumps({**results, "results_version": version}))
    report = collect(tmp_path / "runs", tmp_path / "scratch")
    notes = {section.name: section.notes for section in report.pages["search"]}
    assert any("stale" in note for note in notes["search-0000000001"])
    assert not any("stale" in note for note in notes["search-0000000002"])
