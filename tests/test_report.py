"""`w2s report`: run folders made here by the real commands, rendered, opened in Chromium."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import w2s_in_process
from tests.test_generalize import _small_config
from weak2strong.generalize import Generalize
from weak2strong.runs.results import SCHEMA

ARTIFACTS = Path(os.environ.get("W2S_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
METHOD_PAGES = ("generalize", "search", "extrapolate", "prune")


def w2s(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`w2s report` as a user starts it: a real process (the suite's report smoke test),
    wide enough that no line of the summary wraps."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", COLUMNS="300")
    return subprocess.run(
        [sys.executable, "-m", "weak2strong.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def runs_dir(demo_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """make demo's runs (tests/demo.py), one run made through the API (no plot in its
    folder), and the folders a crash or an old version leaves."""
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    # the tuned model's weights are no part of a report
    shutil.copytree(demo_runs, runs, ignore=shutil.ignore_patterns("*.safetensors"))
    Generalize(_small_config(), str(runs)).run()  # through the API: no plot in the folder
    # what crashes and old versions leave behind
    unfinished = runs / "prune-0123456789"
    (unfinished / "steps").mkdir(parents=True)
    (unfinished / "config.yaml").write_text("seeds: [0]\n")
    (unfinished / "steps" / "seed0-init.safetensors").write_bytes(b"")
    torn = runs / "search-abcdefabcd"
    torn.mkdir()
    (torn / "config.yaml").write_text("test_prompts: 2\n")
    (torn / "results.json").write_text('{"methods": {')
    old = runs / "generalize-fedcba9876"
    old.mkdir()
    (old / "config.yaml").write_text("task: {name: imdb}\n")
    (old / "results.json").write_text(json.dumps({"task": "imdb", "accuracy": 0.7}))
    partial = runs / "generalize-0a0a0a0a0a"
    partial.mkdir()
    (partial / "config.yaml").write_text("task: {name: imdb}\n")
    (partial / "results.json").write_text(json.dumps({"schema": SCHEMA, "metrics": []}))
    (runs / "notes.txt").write_text("not a run\n")
    return runs


EXPECTED_SKIPS = {
    "prune-0123456789": "no results.json",
    "search-abcdefabcd": "unreadable",
    "generalize-fedcba9876": "older layout: rerun the same command",
    "generalize-0a0a0a0a0a": "lacks what the generalize table needs",
    "notes.txt": "not a folder",
}


def _results(runs: Path, command: str) -> dict:
    folder = next(f for f in runs.glob(f"{command}-*") if (f / "env.json").exists())
    return json.loads((folder / "results.json").read_text())


def test_html_report_opens_in_chromium_with_every_table_and_plot(runs_dir, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed: `make test` installs it"
    from playwright.sync_api import sync_playwright

    made = w2s("report", str(runs_dir), "--out", str(tmp_path / "report"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "report"
    for name, reason in EXPECTED_SKIPS.items():  # listed, with the reason, and no crash
        assert re.search(rf"skipped {re.escape(name)}: .*{reason}", made.stdout.replace("\n", " "))
    assert "report: " in made.stdout and str(out / "index.html") in made.stdout.replace("\n", "")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))

        page.goto((out / "index.html").as_uri())
        skipped_rows = page.locator("table.skipped tbody tr").all_inner_texts()
        assert sorted(row.split("\t")[0] for row in skipped_rows) == sorted(EXPECTED_SKIPS)
        links = page.locator("a[href$='.html'], a[href*='.html#']").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
        page.screenshot(path=str(ARTIFACTS / "report-index.png"), full_page=True)
        for method in METHOD_PAGES:
            assert f"{method}.html" in links
            run_links = [link for link in links if link.startswith(f"{method}.html#")]
            assert run_links, method
            page.goto((out / f"{method}.html").as_uri())
            for link in run_links:  # every run the overview links to has its section here
                assert page.locator(f"section[id='{link.split('#')[1]}']").count() == 1
            tables = page.locator("table.results")
            assert tables.count() >= 1, method
            assert page.locator("table.results tbody tr").count() >= 2, method
            images = page.locator("img.plot")
            assert images.count() >= 1, method
            widths = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert all(width and width > 100 for width in widths), (method, widths)
            page.screenshot(path=str(ARTIFACTS / f"report-{method}.png"), full_page=True)
        browser.close()
    assert problems == []

    # the numbers on the page are the run's: the prune table's dense IMP accuracy, per row
    prune = _results(runs_dir, "prune")
    prune_page = (out / "prune.html").read_text()
    dense = prune["curves"]["imp"][0]["metric"]["value"]
    assert f"<td>100.0%</td><td>{dense:.3f}" in prune_page
    search_page = (out / "search.html").read_text()
    for entry in _results(runs_dir, "search")["methods"].values():
        assert f"<td>{entry['label']}</td>" in search_page
    assert "data:image/png;base64," in search_page and 'src="http' not in search_page


def test_every_run_has_a_metrics_csv_with_numbers_in_their_own_columns(runs_dir, tmp_path):
    made = w2s(
        "report", str(runs_dir), "--out", str(tmp_path / "md"), "--format", "markdown", cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr
    markdown = (tmp_path / "md" / "report.md").read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (tmp_path / "md" / image).stat().st_size > 1000, image
    csv_links = re.findall(r"\[metrics CSV\]\(([^)]+)\)", markdown)
    assert len(csv_links) >= 4  # one per run, one run at least per method
    prune = _results(runs_dir, "prune")
    prune_csv = next(link for link in csv_links if "prune-" in link)
    with open(tmp_path / "md" / prune_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(prune["metrics"])  # one row per record of results.json
    imp_last = prune["curves"]["imp"][-1]
    (row,) = [
        r
        for r in rows
        if r["model"] == "imp"
        and r["metric"] == "accuracy"
        and f"round={imp_last['round']}" in r["at"]
    ]
    assert float(row["value"]) == pytest.approx(imp_last["metric"]["value"])
    assert float(row["low"]) == pytest.approx(imp_last["metric"]["low"])
    assert float(row["high"]) == pytest.approx(imp_last["metric"]["high"])
    assert row["n"] == str(len(prune["seeds"])) and row["interval"] == "seeds"
    assert "## Skipped" in markdown and "prune-0123456789" in markdown
    assert "## Reading the numbers" in markdown and "**PGR**" in markdown
    # the search and extrapolate sections show example generations from examples.jsonl
    assert markdown.count("example generations") >= 2
    search = _results(runs_dir, "search")
    first = json.loads(
        (Path(search["run"]["folder"]) / "examples.jsonl").read_text().splitlines()[0]
    )
    assert first["response"].strip()[:20] in markdown


def report_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return w2s_in_process(args, cwd)


def test_report_replaces_its_previous_version_but_never_another_folder(runs_dir, tmp_path):
    foreign = tmp_path / "results"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("mine")
    refused = report_in_process("report", str(runs_dir), "--out", str(foreign), cwd=tmp_path)
    assert refused.returncode == 2 and "paper.tex" in refused.stderr
    assert [p.name for p in foreign.iterdir()] == ["paper.tex"]

    out = tmp_path / "report"
    assert (
        report_in_process("report", str(runs_dir), "--out", str(out), cwd=tmp_path).returncode == 0
    )
    (out / "index.html").unlink()  # a file of the report gone: nothing of the user's at stake
    assert (
        report_in_process("report", str(runs_dir), "--out", str(out), cwd=tmp_path).returncode == 0
    )
    assert (out / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # no staging left
    one_run = next(f for f in runs_dir.glob("prune-*") if (f / "env.json").exists())
    single = report_in_process("report", str(one_run), "--out", str(tmp_path / "one"), cwd=tmp_path)
    assert single.returncode == 0 and "1 run: prune (1)" in single.stdout  # a run folder itself
    missing = report_in_process(
        "report", str(tmp_path / "nowhere"), "--out", str(out), cwd=tmp_path
    )
    assert missing.returncode == 2 and "no runs folder" in missing.stderr


def test_an_effect_is_claimed_only_when_its_interval_clears_zero_on_the_better_side():
    from weak2strong.report.effects import effect_sentence, effect_sentences
    from weak2strong.runs.results import metric_record

    def gain(value, low, high, *, higher=True, kind="bootstrap", at=None):
        estimate = {"value": value, "low": low, "high": high, "n": 50}
        return metric_record(
            "difference", "cbs", estimate, kind=kind, higher_is_better=higher,
            of="reward", baseline="sample", at=at,
        )  # fmt: skip

    assert effect_sentence(gain(1.5, 0.2, 2.9)) == (
        "cbs beats sample by +1.500 [+0.200, +2.900] reward (95% paired bootstrap over 50 items)"
    )
    reaches = effect_sentence(gain(1.5, -0.1, 2.9))
    assert reaches.startswith("cbs does not clearly beat sample: +1.500 [-0.100, +2.900]")
    assert reaches.endswith("; the interval reaches 0)")
    # lower is better: a clear effect is an interval wholly below 0
    assert effect_sentence(gain(-0.3, -0.5, -0.1, higher=False)).startswith("cbs beats sample")
    assert "not clearly" in effect_sentence(gain(0.3, 0.1, 0.5, higher=False))
    seeds = effect_sentence(gain(0.04, 0.01, 0.07, kind="seeds", at={"remaining": 0.343}))
    assert seeds.endswith("reward at 34.3% of weights remaining (mean of 50 seeds, 95% t-interval)")
    no_interval = effect_sentence(gain(0.5, None, None))
    assert "does not clearly beat" in no_interval and "no interval" in no_interval
    # a curve point repeating a method's own difference is said once; plain records never
    plain = metric_record("reward", "cbs", {"value": 3.0, "low": 2.0, "high": 4.0, "n": 50})
    twice = [gain(1.5, 0.2, 2.9), gain(1.5, 0.2, 2.9, at={"N": 4}), plain]
    assert len(effect_sentences(twice)) == 1
