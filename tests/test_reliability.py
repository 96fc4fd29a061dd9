"""Fault injection on the surfaces a hostile user or a broken machine reaches: folders that
are not ours, fingerprints after a JSON round trip, replicates under torchrun, YAML bombs,
servers that answer nonsense, markup and control characters in names, full and read-only
disks, bad seeds and misleading listings. Each failure is one `error:` line and exit 2, and
nothing of the user's is lost."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import w2s_environment
from tests.test_extrapolate import nudged, save_model, weights
from weak2strong.errors import W2SError
from weak2strong.extrapolate import extrapolate
from weak2strong.manifest import MANIFEST_FILE

MINILM = "minilm-l6"


def _one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> str:
    """Exit 2 and the run's last words one `error:` line (after any progress it showed)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert errors[0].startswith("error: ") and fragment in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    return errors[0]


@pytest.fixture
def tiny_pair(tmp_path: Path) -> tuple[Path, Path]:
    sft = save_model(tmp_path / "sft")
    return sft, save_model(tmp_path / "aligned", nudged(weights(sft), 0.01, seed=1))


# ---- 1. --force replaces only what w2s wrote and can prove it wrote


def test_force_keeps_a_folder_that_only_looks_like_an_output(tiny_pair, tmp_path, run_cli):
    sft, aligned = tiny_pair
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "extrapolation.json").write_text("{}")
    with pytest.raises(W2SError, match=r"extrapolation\.json, notes\.txt"):
        extrapolate([sft, aligned], 0.5, out, force=True, show_progress=False)
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(out), "--force",
    )  # fmt: skip
    _one_error_line(result, "notes.txt")
    assert sorted(p.name for p in out.iterdir()) == ["extrapolation.json", "notes.txt"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".mine.*"))  # no staging left behind


def test_force_replaces_a_real_output_but_never_a_file_added_or_changed_in_it(tiny_pair, tmp_path):
    sft, aligned = tiny_pair
    out = tmp_path / "merged"
    extrapolate([sft, aligned], 0.5, out, show_progress=False)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == {p.name for p in out.iterdir()} - {MANIFEST_FILE}
    (out / "my-eval.jsonl").write_text("{}\n")  # the user's results, kept beside the model
    with pytest.raises(W2SError, match=r"my-eval\.jsonl"):
        extrapolate([sft, aligned], 0.7, out, force=True, show_progress=False)
    assert (out / "my-eval.jsonl").is_file()
    (out / "my-eval.jsonl").unlink()
    (out / "README.md").write_text("my own notes on this model")  # same name, other content
    with pytest.raises(W2SError, match=r"README\.md"):
        extrapolate([sft, aligned], 0.7, out, force=True, show_progress=False)
    assert (out / "README.md").read_text() == "my own notes on this model"
    (out / "README.md").unlink()  # a file of ours gone: nothing of the user's is at stake
    report = extrapolate([sft, aligned], 0.7, out, force=True, show_progress=False)
    assert report["alpha"] == 0.7
    assert json.loads((out / "extrapolation.json").read_text())["alpha"] == 0.7


def test_report_never_replaces_a_file_added_to_an_earlier_report(tiny_pair, tmp_path, run_cli):
    sft, aligned = tiny_pair
    merged = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(tmp_path / "merged"),
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert run_cli("report", "runs", "--out", "report").returncode == 0
    (tmp_path / "report" / "annotations.txt").write_text("mine")
    _one_error_line(run_cli("report", "runs", "--out", "report"), "annotations.txt")
    assert (tmp_path / "report" / "annotations.txt").read_text() == "mine"
    (tmp_path / "report" / "annotations.txt").unlink()
    assert run_cli("report", "runs", "--out", "report").returncode == 0


# ---- 2. fingerprints equal their JSON copies; local-folder models hit the cache


def _copy_model(name: str, target: Path) -> Path:
    from weak2strong.models import resolve

    shutil.copytree(resolve(name).location, target)
    return target


def test_every_fingerprint_survives_a_json_round_trip(tmp_path, monkeypatch):
    from weak2strong.models import loading
    from weak2strong.models.loading import model_fingerprint
    from weak2strong.scoring.scorers import ScorerConfig, scorer_fingerprint

    local = _copy_model(MINILM, tmp_path / "local-minilm")
    (tmp_path / "my_reward.py").write_text("def score(texts):\n    return [0.0 for _ in texts]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(loading, "_check_on_hub", lambda repo_id: None)  # no hub here
    fingerprints = [
        model_fingerprint(MINILM),  # embedded
        model_fingerprint(str(local)),  # a local folder: its weight files' stamps
        model_fingerprint("some-org/some-model", revision="v1"),  # a hub id
        scorer_fingerprint(ScorerConfig(name=f"hf:{local}")),
        scorer_fingerprint(ScorerConfig(name="python:my_reward:score")),
        scorer_fingerprint(ScorerConfig(name="lexicon:vader")),
        scorer_fingerprint(ScorerConfig(name="sentiment")),
    ]
    assert fingerprints[1]["weights"], "the local folder's weights are part of its fingerprint"
    for fingerprint in fingerprints:
        assert json.loads(json.dumps(fingerprint)) == fingerprint


def test_an_identical_rerun_with_local_folder_models_reuses_every_step(tmp_path, run_cli):
    local = _copy_model(MINILM, tmp_path / "my-encoder")
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader",
        "--strong", str(local), "--strategy", "naive", "--set", "task.max_per_split=40",
        "--set", "features.max_length=16", "--set", "bootstrap_samples=50",
    ]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "runs").glob("generalize-*")
    before = json.loads((run_dir / "results.json").read_text())
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "inputs changed" not in second.stderr
    rerun_log = (run_dir / "run.log").read_text().split("(resumed")[-1]
    assert "done in" not in rerun_log  # no step computed again
    assert rerun_log.count(": cached") >= 3
    assert json.loads((run_dir / "results.json").read_text())["metrics"] == before["metrics"]


# ---- 3. --seeds under torchrun


def test_seeds_under_two_processes_aggregate_what_the_main_process_read(
    run_cli, run_torchrun, tmp_path
):
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader", "--strong", MINILM,
        "--strategy", "naive", "--set", "task.max_per_split=40", "--set",
        "features.max_length=16", "--set", "bootstrap_samples=50", "--seeds", "0,1",
    ]  # fmt: skip
    single = run_cli(*args, "--runs-dir", "one")
    assert single.returncode == 0, single.stderr
    double = run_torchrun(*args, "--runs-dir", "two")
    assert double.returncode == 0, double.stderr
    assert double.stdout.count("over 2 seeds") == 1  # one table, from the main process

    def replicates(runs: str) -> dict:
        (folder,) = (tmp_path / runs).glob("replicates-*")
        return json.loads((folder / "results.json").read_text())

    one, two = replicates("one"), replicates("two")
    assert one["runs"] == two["runs"] and one["seeds"] == two["seeds"] == [0, 1]
    for a, b in zip(one["metrics"], two["metrics"], strict=True):
        assert a["metric"] == b["metric"] and a["model"] == b["model"]
        assert a["value"] == pytest.approx(b["value"], abs=1e-4)


# ---- 4. YAML that expands without bound


BOMB = "\n".join(
    [f'l0: &l0 ["{"lol" * 4}"]']
    + [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
)


@pytest.mark.parametrize("where", ["recipe", "config", "set"])
def test_a_yaml_alias_bomb_is_refused_at_once_without_echoing_it(tmp_path, where):
    bomb = BOMB + "\nbase_model: *l8\n"
    (tmp_path / "bomb.yaml").write_text(
        bomb if where == "recipe" else BOMB + "\nalphas: *l8\n", encoding="utf-8"
    )
    arguments = {
        "recipe": ["--recipe", "bomb.yaml"],
        "config": ["--config", "bomb.yaml"],
        "set": ["--set", "alphas=" + "[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(["*a"] * 10) + "]"],
    }[where]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "weak2strong.cli", "extrapolate", *arguments, "--dry-run"],
        cwd=tmp_path, env=w2s_environment(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert time.perf_counter() - started < 30
    if where == "set":  # 110 values: small enough to read, refused as a list of numbers
        line = _one_error_line(result, "alphas")
    else:
        line = _one_error_line(result, "expands to more than 100,000 values")
    assert len(line) < 400


def test_an_oversized_config_is_refused(tmp_path, run_cli):
    (tmp_path / "huge.yaml").write_text("# " + "x" * (2 << 20) + "\nseed: 1\n")
    _one_error_line(run_cli("check", "--config", "huge.yaml"), "larger than 1 MiB")


# ---- 5. a completions server that answers nonsense


@contextlib.contextmanager
def _answering(body: bytes, delay: float = 0.0) -> Iterator[str]:
    """A local server that answers every POST with `body` (status 200) after `delay`."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _answer(text: object = "ok", **fields: object) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": "length"}
    answer = {"choices": [choice], "usage": {"completion_tokens": 1}}
    for key, value in fields.items():
        if key in choice:
            choice[key] = value
        else:
            answer[key] = value
    return json.dumps(answer).encode()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[1, 2, 3]", "not an object"),
        (json.dumps({"choices": "none"}).encode(), "without a list of choices"),
        (json.dumps({"choices": []}).encode(), "returned 0 completions for n=1"),
        (_answer(text=None), "text is not a string"),
        (_answer(index="first"), "index is not an integer"),
        (_answer(finish_reason=3), "finish_reason that is not a string"),
        (_answer(usage={"completion_tokens": "many"}), "completion_tokens that is not a count"),
        (_answer(text="x" * 50_000), "50,000 characters for max_tokens=1"),
        (b'{"pad": "' + b"x" * (5 << 20) + b'"}', "more than the request allows"),
    ],
)
def test_bad_answers_are_refused_in_the_start_up_probe(body, fragment):
    from weak2strong.models.openai_api import ApiSettings, CompletionsClient

    with _answering(body) as url:
        client = CompletionsClient(ApiSettings(base_url=url, max_retries=0), "served")
        with pytest.raises(W2SError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
            client.check()


def test_completions_longer_than_max_tokens_allow_and_slow_servers_are_named():
    from weak2strong.models.formatting import PromptFormat
    from weak2strong.models.generation import SamplingConfig
    from weak2strong.models.openai_api import ApiSettings, CompletionsClient, parse_completions
    from weak2strong.search.api_backend import ApiSampler

    # 10,000 characters for the probe's 1 token
    with _answering(_answer(text="word " * 2000)) as url, pytest.raises(W2SError, match="ignores"):
        ApiSampler("served", PromptFormat(), SamplingConfig(), ApiSettings(base_url=url))
    with _answering(_answer(text="x" * 200)) as url:
        client = CompletionsClient(ApiSettings(base_url=url, max_retries=0), "served")
        answer = client.complete_all([{"prompt": "p", "n": 1, "max_tokens": 8}])[0]
        (completion,), tokens = parse_completions(answer, 1, 8, url)  # 25 characters a token
        assert completion.text == "x" * 200 and tokens == 1
        with pytest.raises(W2SError, match="200 characters for max_tokens=2"):
            parse_completions(answer, 1, 2, url)
    with _answering(_answer(), delay=2.0) as url:
        slow = CompletionsClient(ApiSettings(base_url=url, max_retries=0, timeout=0.3), "served")
        with pytest.raises(W2SError, match=r"did not answer within 0\.3 s .* slow"):
            slow.check()


def test_a_bad_server_fails_search_before_any_run_folder(tmp_path, run_cli):
    with _answering(b"not json at all") as url:
        result = run_cli(
            "search", "--backend", "api", "--large", "served", "--set", f"api.base_url={url}",
            "--set", "api.max_retries=0",
        )  # fmt: skip
    _one_error_line(result, "not JSON")
    assert not (tmp_path / "runs").exists()


# ---- 6. user text is plain text everywhere


def test_markup_and_control_characters_in_names_are_shown_as_plain_text(
    tiny_pair, tmp_path, run_cli
):
    sft, aligned = tiny_pair
    names = ["[/]broken[red]x", "esc\x1b[31mred\x00nul"]
    for alpha, name in zip(("0.5", "0.7"), names, strict=True):
        merged = run_cli(
            "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", alpha,
            "--run-name", name,
        )  # fmt: skip
        assert merged.returncode == 0, merged.stderr
    listing = run_cli("runs")
    assert listing.returncode == 0, listing.stderr
    assert "[/]broken[red]x" in listing.stdout
    assert "esc[31mrednul" in listing.stdout and "\x1b" not in listing.stdout
    compared = run_cli("compare", *(p.name for p in (tmp_path / "runs").glob("extrapolate-*")))
    assert compared.returncode == 0, compared.stderr
    assert "[/]broken[red]x" in compared.stdout and "\x1b" not in compared.stdout
    for fmt in ("html", "markdown"):
        report = run_cli("report", "runs", "--out", f"report-{fmt}", "--format", fmt)
        assert report.returncode == 0, report.stderr
        for page in (tmp_path / f"report-{fmt}").rglob("*.*"):
            if page.suffix in (".html", ".md", ".csv"):
                text = page.read_text("utf-8")
                assert "\x00" not in text and "\x1b" not in text, page


# ---- 7. full and read-only disks


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 KB tmpfs: a real full disk (needs root, as CI and this project's machines are)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_under_the_output_is_one_error_and_leaves_nothing(
    tiny_pair, small_disk, tmp_path, run_cli
):
    sft, aligned = tiny_pair
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(small_disk / "merged"), "--set", "dtype=float32",
    )  # fmt: skip
    _one_error_line(result, "No space left on device")
    assert list(small_disk.iterdir()) == []  # no half-written checkpoint, no staging folder


def test_a_full_disk_under_the_runs_folder_is_one_error(small_disk, run_cli):
    result = run_cli(
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader", "--strong", MINILM,
        "--strategy", "naive", "--set", "task.max_per_split=40", "--set",
        "features.max_length=16", "--runs-dir", str(small_disk / "runs"),
    )  # fmt: skip
    _one_error_line(result, "No space left on device")
    assert not [p for p in small_disk.rglob("*.tmp")] and not list(small_disk.rglob(".*.tmp"))


def test_a_read_only_out_is_refused_before_the_run_folder(tiny_pair, small_disk, run_cli, tmp_path):
    sft, aligned = tiny_pair
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(small_disk / "merged"),
    )  # fmt: skip
    _one_error_line(result, "cannot be written: Read-only file system")
    assert not (tmp_path / "runs").exists()
    refused = run_cli("report", "runs", "--out", str(small_disk / "report"))
    _one_error_line(refused, "cannot be written: Read-only file system")


# ---- 8. seeds


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seed", "-1"], "'seed' must be in [0, 4294967295]"),
        (["--seeds", "-1"], "--seeds must be in [0, 4294967295], got -1"),
        (["--seeds", "0,-2"], "got -2"),
        (["--seeds", ""], "--seeds needs at least one seed"),
        (["--seeds", " , "], "--seeds needs at least one seed"),
    ],
)
def test_bad_seeds_are_one_error_line(run_cli, tmp_path, args, fragment):
    result = run_cli("generalize", "--weak", "lexicon:vader", "--strong", MINILM, *args)
    _one_error_line(result, fragment)
    assert not (tmp_path / "runs").exists()


# ---- 9. listings that do not mislead


def test_listings_name_damaged_results_shared_names_and_only_real_changes(
    tiny_pair, tmp_path, run_cli
):
    sft, aligned = tiny_pair
    for alpha in ("0.5", "0.7", "0.9"):
        merged = run_cli(
            "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", alpha,
            "--run-name", "twin" if alpha != "0.9" else "damaged",
        )  # fmt: skip
        assert merged.returncode == 0, merged.stderr
    folders = {
        json.loads((f / "meta.json").read_text())["name"] + str(i): f
        for i, f in enumerate(sorted((tmp_path / "runs").glob("extrapolate-*")))
    }
    damaged = next(f for name, f in folders.items() if name.startswith("damaged"))
    results = damaged / "results.json"
    results.write_text(results.read_text()[:40])  # truncated mid-write by something else
    listing = run_cli("runs")
    assert listing.returncode == 0, listing.stderr
    block = listing.stdout.split(damaged.name)[1].split("extrapolate-")[0]
    assert "damaged results.json" in block and "unfinished" not in block
    # settings the user did not change are not listed as changed (ExPO samples 48 tokens)
    assert "new_tokens" not in listing.stdout and "alphas=0.5" in listing.stdout
    ambiguous = run_cli("compare", "twin", damaged.name)
    _one_error_line(ambiguous, "2 runs are named 'twin'")
    twins = [f.name for name, f in folders.items() if name.startswith("twin")]
    compared = run_cli("compare", twins[0], damaged.name)
    assert compared.returncode == 0, compared.stderr
    assert f"{damaged.name} is damaged results.json" in " ".join(compared.stdout.split())
