"""ExPO: the streaming extrapolation, its checks, its atomic output, and the α sweep."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.conftest import assert_results_layout, read_examples
from weak2strong.errors import W2SError
from weak2strong.extrapolate import extrapolate
from weak2strong.extrapolate.checkpoint import ShardWriter, parse_size, plan_shards
from weak2strong.extrapolate.planning import direction_coefficients


def tiny_config(**overrides):
    from transformers import LlamaConfig

    settings = dict(
        vocab_size=128,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=False,
    )
    settings.update(overrides)
    return LlamaConfig(**settings)


def save_model(
    folder: Path,
    state: dict[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    shard: str | None = None,
    **config_overrides,
) -> Path:
    """A tiny Llama saved as Hugging Face saves it; `state` replaces its weights."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config(**config_overrides))
    if state is not None:
        model.load_state_dict(state, strict=False)
    model = model.to(dtype)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(folder, **kwargs)
    return folder


def weights(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


def nudged(state: dict[str, torch.Tensor], scale: float, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: value + scale * torch.randn(value.shape, generator=generator)
        for name, value in state.items()
    }


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """An SFT checkpoint and an 'aligned' one a small step away from it, both fp32."""
    sft = save_model(tmp_path / "sft")
    aligned_state = nudged(weights(sft), 0.01, seed=1)
    aligned_state["model.norm.weight"][0] = -0.0  # a signed zero must survive α = 0 too
    aligned = save_model(tmp_path / "aligned", aligned_state)
    return sft, aligned


def test_alpha_zero_reproduces_the_aligned_weights_bit_for_bit(pair, tmp_path):
    sft, aligned = pair
    extrapolate([sft, aligned], 0.0, tmp_path / "out", show_progress=False)
    produced, expected = weights(tmp_path / "out"), weights(aligned)
    assert produced.keys() == expected.keys()
    for name, value in expected.items():
        assert produced[name].dtype == value.dtype == torch.float32
        assert torch.equal(produced[name].view(torch.int32), value.view(torch.int32)), name


def test_two_checkpoints_follow_the_formula_and_load_as_a_model(pair, tmp_path):
    from transformers import AutoModelForCausalLM

    sft, aligned = pair
    report = extrapolate([sft, aligned], 0.7, tmp_path / "out", show_progress=False)
    theta_sft, theta_aligned = weights(sft), weights(aligned)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    for name, value in model.state_dict().items():
        expected = theta_aligned[name] + 0.7 * (theta_aligned[name] - theta_sft[name])
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
    assert report["coefficients"] == [-1.0, 1.0]
    assert report["cast_survival"]["all"]["survived_fraction"] == 1.0  # fp32: nothing lost
    out_files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors.index.json"} <= out_files
    assert "extrapolation.json" in out_files
    assert not list(tmp_path.glob(".out.partial-*"))


def test_multi_shard_inputs_with_different_boundaries(tmp_path):
    sft = save_model(tmp_path / "sft", shard="9KB")
    aligned = save_model(tmp_path / "aligned", nudged(weights(sft), 0.05, seed=2), shard="20KB")
    sft_files = sorted(p.name for p in sft.glob("*.safetensors"))
    aligned_files = sorted(p.name for p in aligned.glob("*.safetensors"))
    assert len(sft_files) > len(aligned_files) > 1  # the boundaries really differ
    report = extrapolate(
        [sft, aligned], 2.5, tmp_path / "out", shard_size="12KB", show_progress=False
    )
    theta_sft, theta_aligned = weights(sft), weights(aligned)
    produced = weights(tmp_path / "out")
    assert produced.keys() == theta_aligned.keys()
    for name, value in produced.items():
        expected = theta_aligned[name] + 2.5 * (theta_aligned[name] - theta_sft[name])
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    shard_files = sorted(set(index["weight_map"].values()))
    assert len(shard_files) == report["shards"] > 1
    assert shard_files == sorted(p.name for p in (tmp_path / "out").glob("*.safetensors"))
    assert index["metadata"]["total_size"] == sum(v.numel() * 4 for v in produced.values())


def test_n_checkpoints_extrapolate_along_their_least_squares_line(tmp_path):
    first = weights(save_model(tmp_path / "c1"))
    step = nudged({k: torch.zeros_like(v) for k, v in first.items()}, 0.02, seed=3)
    folders = [
        save_model(tmp_path / f"c{i + 1}", {k: first[k] + i * step[k] for k in first})
        for i in range(3)
    ]
    assert direction_coefficients(3) == [-0.5, 0.0, 0.5]
    extrapolate(folders, 1.0, tmp_path / "out", show_progress=False)
    produced = weights(tmp_path / "out")
    for name, value in produced.items():  # one step beyond the strongest: θ_1 + 3·step
        torch.testing.assert_close(value, first[name] + 3 * step[name], rtol=1e-5, atol=1e-6)


def test_bfloat16_cast_losses_are_reported_and_float32_keeps_them(tmp_path):
    sft = save_model(tmp_path / "sft", dtype=torch.bfloat16)
    state = {k: v.float() for k, v in weights(sft).items()}
    aligned = save_model(tmp_path / "aligned", nudged(state, 1e-3, seed=4), dtype=torch.bfloat16)
    lossy = extrapolate([sft, aligned], 0.1, tmp_path / "bf16", show_progress=False)
    assert lossy["out_dtypes"] == ["bfloat16"]
    survived = lossy["cast_survival"]["all"]["survived_fraction"]
    assert survived < 0.9  # a 10% step of a few-ulp update mostly rounds away in bf16
    assert "model.layers.*.mlp.up_proj.weight" in lossy["cast_survival"]
    exact = extrapolate(
        [sft, aligned], 0.1, tmp_path / "fp32", dtype="float32", show_progress=False
    )
    assert exact["cast_survival"]["all"]["survived_fraction"] == 1.0
    assert all(v.dtype == torch.float32 for v in weights(tmp_path / "fp32").values())
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["dtype"] == "float32"


def test_tied_embeddings_stored_once_or_twice(tmp_path):
    sft = save_model(tmp_path / "sft", tie_word_embeddings=True)
    stored = weights(sft)
    assert "lm_head.weight" not in stored  # Hugging Face stores a tied tensor once
    # the same model saved by a tool that writes the tied copy out as well
    twice = tmp_path / "sft-twice"
    twice.mkdir()
    (twice / "config.json").write_text((sft / "config.json").read_text())
    save_file(
        {**stored, "lm_head.weight": stored["model.embed_tokens.weight"].clone()},
        str(twice / "model.safetensors"),
    )
    aligned = save_model(
        tmp_path / "aligned", nudged(stored, 0.01, seed=5), tie_word_embeddings=True
    )
    for source in (sft, twice):
        out = tmp_path / f"out-{source.name}"
        extrapolate([source, aligned], 1.0, out, show_progress=False)
        produced = weights(out)
        assert produced.keys() == weights(aligned).keys()
        embed = "model.embed_tokens.weight"
        expected = 2 * weights(aligned)[embed] - stored[embed]
        torch.testing.assert_close(produced[embed], expected)


def test_shard_planning_and_sizes():
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("500mb") == 500_000_000
    assert parse_size(123) == 123
    for bad in ("lots", "0", "-1GB"):
        with pytest.raises(W2SError):
            parse_size(bad)
    shards = plan_shards(["a", "b", "c", "d"], [40, 70, 200, 10], 100)
    assert [[n for n, _ in s] for s in shards] == [["a"], ["b"], ["c"], ["d"]]
    shards = plan_shards(["a", "b", "c"], [30, 30, 30], 60)
    assert [[n for n, _ in s] for s in shards] == [["a", "b"], ["c"]]


# ---- bad input: exit 2 and no output folder


def corrupt(folder: Path, change) -> Path:
    """Rewrite a single-file checkpoint's tensors through `change`."""
    file = folder / "model.safetensors"
    tensors = dict(load_file(file))
    change(tensors)
    save_file(tensors, str(file), metadata={"format": "pt"})
    return folder


def _set_inf(tensors):
    tensors["model.norm.weight"][1] = float("inf")


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("shape", "tensor shapes or kinds differ: model.norm.weight"),
        ("missing", "tensor model.layers.1.mlp.up_proj.weight of"),
        ("extra", "tensor extra.weight of"),
        ("architecture", "different architectures (num_hidden_layers"),
        ("activation", "different architectures (hidden_act"),
        ("nonfinite", "has non-finite values"),
        ("pickle", "pickled weights"),
    ],
)
def test_bad_checkpoints_exit_2_and_write_nothing(run_cli, tmp_path, case, fragment):
    sft = save_model(tmp_path / "sft")
    aligned = save_model(tmp_path / "aligned", nudged(weights(sft), 0.01, seed=6))
    if case == "shape":
        corrupt(aligned, lambda t: t.update({"model.norm.weight": torch.ones(17)}))
    elif case == "missing":
        corrupt(sft, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    elif case == "extra":
        corrupt(sft, lambda t: t.update({"extra.weight": torch.ones(3)}))
    elif case == "architecture":
        sft = save_model(tmp_path / "sft3", num_hidden_layers=3)
    elif case == "activation":
        sft = save_model(tmp_path / "sft-gelu", hidden_act="gelu")
    elif case == "nonfinite":
        corrupt(aligned, _set_inf)
    elif case == "pickle":
        (sft / "model.safetensors").rename(sft / "pytorch_model.bin")
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))  # no staged leftovers either


def test_existing_output_is_refused_unless_forced_and_foreign_folders_never(
    run_cli, pair, tmp_path
):
    sft, aligned = pair
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")

    def merge(alpha: str, out: str, *extra: str):
        return run_cli(
            "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", alpha,
            "--out", str(tmp_path / out), "--runs-dir", str(tmp_path / "runs"), *extra,
        )  # fmt: skip

    refused = merge("0.5", "out")
    assert refused.returncode == 2 and "exists: pass --force" in refused.stderr
    forced = merge("0.5", "out", "--force")  # a folder w2s did not write is never replaced
    assert forced.returncode == 2 and "did not write" in forced.stderr
    assert "notes.txt" in forced.stderr  # named, so the user knows what is at stake
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"
    # a checkpoint w2s wrote (another α) is replaced with --force only
    assert merge("0.5", "merged").returncode == 0
    other = merge("0.7", "merged")
    assert other.returncode == 2 and "exists: pass --force" in other.stderr
    replaced = merge("0.7", "merged", "--force")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads((tmp_path / "merged" / "extrapolation.json").read_text())["alpha"] == 0.7
    rerun = merge("0.7", "merged")  # the same run's own output is a cached result, not a conflict
    assert rerun.returncode == 0, rerun.stderr
    assert "(cached)" in rerun.stdout


@pytest.mark.parametrize("where", ["is", "inside", "contains"])
def test_an_output_over_an_input_is_refused(run_cli, pair, tmp_path, where):
    sft, aligned = pair
    out = {"is": aligned, "inside": aligned / "merged", "contains": tmp_path}[where]
    before = sorted(p.name for p in aligned.iterdir())
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(out), "--force", "--runs-dir", str(tmp_path.parent / f"runs-{where}"),
    )  # fmt: skip
    assert result.returncode == 2 and "would overwrite the input checkpoint" in result.stderr
    assert sorted(p.name for p in aligned.iterdir()) == before and sft.is_dir()


def test_concurrent_writers_of_one_output_take_turns(pair, tmp_path):
    """Two writers of the same --out: the second waits, then finds the first's output and
    fails (without --force) instead of silently replacing it."""
    import threading

    sft, aligned = pair
    results: dict[float, object] = {}

    def write(alpha: float) -> None:
        try:
            results[alpha] = extrapolate(
                [sft, aligned], alpha, tmp_path / "out", show_progress=False
            )
        except W2SError as error:
            results[alpha] = error

    threads = [threading.Thread(target=write, args=(a,)) for a in (0.7, 0.9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [a for a, r in results.items() if isinstance(r, W2SError)]
    assert len(failed) == 1 and "exists" in str(results[failed[0]])
    (kept,) = set(results) - set(failed)
    assert json.loads((tmp_path / "out" / "extrapolation.json").read_text())["alpha"] == kept


def test_a_killed_writers_staging_folder_is_removed_by_the_next(pair, tmp_path):
    sft, aligned = pair
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    abandoned = tmp_path / f".out.partial-{int(dead.stdout)}-deadbeef"
    abandoned.mkdir()
    (abandoned / "model-00001-of-00002.safetensors").write_bytes(b"x" * 1000)
    extrapolate([sft, aligned], 0.5, tmp_path / "out", show_progress=False)
    assert not abandoned.exists() and (tmp_path / "out").is_dir()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_an_interrupted_write_leaves_no_output(pair, tmp_path, monkeypatch):
    sft, aligned = pair
    flushed = []

    def interrupt_on_second_shard(self):
        flushed.append(self.current)
        if len(flushed) == 2:
            raise KeyboardInterrupt
        original(self)

    original = ShardWriter._flush
    monkeypatch.setattr(ShardWriter, "_flush", interrupt_on_second_shard)
    with pytest.raises(KeyboardInterrupt):
        extrapolate([sft, aligned], 0.5, tmp_path / "out", shard_size="8KB", show_progress=False)
    assert len(flushed) == 2
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out*"))


def test_a_terminated_process_leaves_no_output(tmp_path):
    """SIGTERM mid-write (as a scheduler sends it): the staged folder goes, `out` never appears."""
    tensors = {f"t{i}": torch.randn(1024, 1024) for i in range(48)}  # 192 MB per model
    folders = []
    for name, shift in (("sft", 0.0), ("aligned", 0.01)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "synthetic"}))
        save_file({k: v + shift for k, v in tensors.items()}, str(folder / "model.safetensors"))
        folders.append(folder)
    del tensors
    script = (
        "import sys; from weak2strong.extrapolate import extrapolate; "
        "extrapolate(sys.argv[1:3], 0.5, sys.argv[3], shard_size='8MB', show_progress=False)"
    )
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(folders[0]), str(folders[1]), str(out)],
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if any(list(staged.glob("*.safetensors")) for staged in tmp_path.glob(".out.partial-*")):
            break
        time.sleep(0.005)
    assert process.poll() is None, "finished before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert process.returncode != 0
    assert not out.exists()
    assert not list(tmp_path.glob(".out*"))


# ---- the α sweep


@pytest.fixture
def word_tokenized_pair(tmp_path: Path) -> tuple[Path, Path]:
    return make_word_tokenized_pair(tmp_path)


def make_word_tokenized_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Tiny Llamas over MiniLM's vocabulary, with the tokenizer files a sweep generates with."""
    from weak2strong.models import load_tokenizer

    tokenizer = load_tokenizer("minilm-l6")
    tokenizer.eos_token = "[SEP]"
    overrides = {
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    sft = save_model(tmp_path / "sft", **overrides)
    aligned = save_model(tmp_path / "aligned", nudged(weights(sft), 0.05, seed=7), **overrides)
    for folder in (sft, aligned):
        tokenizer.save_pretrained(folder)
    return sft, aligned


def test_alpha_sweep_scores_every_candidate_and_keeps_the_best(
    run_cli, word_tokenized_pair, tmp_path, monkeypatch
):
    sft, aligned = word_tokenized_pair
    (tmp_path / "my_reward.py").write_text(
        "def vowels(texts):\n    return [sum(c in 'aeiou' for c in t) / (1 + len(t)) for t in texts]\n"
    )
    args = [
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "1,3",
        "--select-by", "reward", "--prompts", "imdb", "--out", str(tmp_path / "best"),
        "--runs-dir", str(tmp_path / "runs"), "--set", "scorer.name=python:my_reward:vowels",
        "--set", "test_prompts=6", "--set", "sampling.new_tokens=6", "--set", "samples_per_prompt=2",
    ]  # fmt: skip
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    run_dir = next((tmp_path / "runs").glob("extrapolate-*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["rows"]) == ["sft", "aligned (α=0)", "α=1", "α=3"]
    assert [row["alpha"] for row in results["rows"].values()] == [-1.0, 0.0, 1.0, 3.0]
    means = {label: row["reward"]["value"] for label, row in results["rows"].items()}
    candidates = {label: means[label] for label in ("aligned (α=0)", "α=1", "α=3")}
    assert results["best"] == max(candidates, key=candidates.__getitem__)
    assert results["rows"]["α=1"]["reward_minus_aligned"]["value"] == pytest.approx(
        means["α=1"] - means["aligned (α=0)"]
    )
    assert_results_layout(results)
    examples = read_examples(run_dir)  # 4 models × 6 prompts, 2 responses each
    assert len(examples) == 24 and all(len(row["responses"]) == 2 for row in examples)
    alpha3 = [row["reward"] for row in examples if row["alpha"] == 3.0]
    assert sum(alpha3) / len(alpha3) == pytest.approx(means["α=3"])
    assert all(Path(path).is_absolute() for path in results["checkpoints"])
    # the kept checkpoint is exactly the best α's extrapolation
    extrapolate([sft, aligned], results["best_alpha"], tmp_path / "check", show_progress=False)
    kept, check = weights(tmp_path / "best"), weights(tmp_path / "check")
    assert all(torch.equal(kept[name], check[name]) for name in check)
    assert not (run_dir / "candidates").exists()  # the others were deleted
    # its model card says how α was chosen, with the sweep's reward table
    card = (tmp_path / "best" / "README.md").read_text()
    assert front_matter(card)["base_model"] == [str(sft.resolve()), str(aligned.resolve())]
    best = results["best_alpha"]
    assert f"**α = {best:g}**" in card and "python:my_reward:vowels" in card
    assert "6 held-out `imdb` prompts" in card and "{1, 3}" in card
    lines = card.splitlines()
    header = lines.index("| model | α | mean reward | 95% interval | |")
    table = lines[header + 2 : header + 2 + len(results["rows"])]
    assert [line.split(" | ")[0] for line in table] == [f"| {label}" for label in results["rows"]]
    for line, (label, row) in zip(table, results["rows"].items(), strict=True):
        low, high = row["reward"]["low"], row["reward"]["high"]
        assert f"{row['reward']['value']:.4f} | [{low:.4f}, {high:.4f}]" in line
        assert ("**chosen**" in line) == (label == results["best"])
    assert fenced_yaml(card)["models"][0]["parameters"]["weight"] == pytest.approx(1 + best)
    assert "--select-by reward" in card and "--alpha 1,3" in card
    assert (run_dir / "plots" / "extrapolate.png").is_file()
    assert "mean reward" in first.stdout
    log = (run_dir / "run.log").read_text()
    assert log.count("step generations-alpha1-") == 2 and "cached" in log.split("resumed")[-1]


def test_alpha_sweep_under_two_processes_equals_one(
    run_cli, run_torchrun, word_tokenized_pair, tmp_path, monkeypatch
):
    """The main process merges each candidate; both processes generate and score their share
    of the prompts; the texts, rewards and kept checkpoint are those of one process."""
    sft, aligned = word_tokenized_pair
    (tmp_path / "my_reward.py").write_text(
        "def vowels(texts):\n    return [sum(c in 'aeiou' for c in t) / (1 + len(t)) for t in texts]\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    outputs = {}
    for name, launch in (("one", run_cli), ("two", run_torchrun)):
        result = launch(
            "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "1,3",
            "--select-by", "reward", "--out", str(tmp_path / f"best-{name}"),
            "--runs-dir", str(tmp_path / name), "--set", "scorer.name=python:my_reward:vowels",
            "--set", "test_prompts=6", "--set", "sampling.new_tokens=6",
            "--set", "sampling.batch_size=4",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        (run_dir,) = (tmp_path / name).glob("extrapolate-*")
        outputs[name] = (run_dir, json.loads((run_dir / "results.json").read_text()))
    (one, first), (two, second) = outputs["one"], outputs["two"]
    assert second["distributed"]["processes"] == 2
    assert read_examples(one) == read_examples(two)
    for label, row in first["rows"].items():
        assert row["reward"]["value"] == pytest.approx(second["rows"][label]["reward"]["value"])
    assert first["best_alpha"] == second["best_alpha"]
    kept_one, kept_two = weights(tmp_path / "best-one"), weights(tmp_path / "best-two")
    assert all(torch.equal(kept_one[name], kept_two[name]) for name in kept_one)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert "over 2 processes (4 + 2 rows each)" in (two / "run.log").read_text()


# ---- the model card and mergekit recipes


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def fenced_yaml(card: str) -> dict:
    (block,) = re.findall(r"```yaml\n(.*?)```", card, re.DOTALL)
    return yaml.safe_load(block)


def test_a_written_checkpoint_carries_a_model_card_and_its_mergekit_recipe(run_cli, pair, tmp_path):
    sft, aligned = pair
    (aligned / "README.md").write_text("the aligned model's own card\n")
    result = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.3",
        "--out", str(tmp_path / "out"), "--runs-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    card = (tmp_path / "out" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == [str(sft.resolve()), str(aligned.resolve())]
    assert meta["tags"] == ["weak2strong", "expo", "merge"]
    assert meta["library_name"] == "transformers"
    assert "the aligned model's own card" not in card  # replaced, not copied
    assert "θ = θ_aligned + α(θ_aligned − θ_sft)" in card
    assert "Given by the user (`--alpha 0.3`)" in card
    assert "computed in: float32" in card and "stored as: float32" in card
    assert "w2s extrapolate" in card and f"--aligned {aligned.resolve()}" in card
    (run_dir,) = (tmp_path / "runs").glob("extrapolate-*")
    results = json.loads((run_dir / "results.json").read_text())
    assert_results_layout(results)  # a plain write: no metrics, no examples, the one layout
    assert results["metrics"] == [] and results["examples"] is None
    recipe = fenced_yaml(card)
    assert recipe == yaml.safe_load((tmp_path / "out" / "merge_recipe.yaml").read_text())
    assert recipe["merge_method"] == "task_arithmetic"
    assert recipe["base_model"] == str(sft.resolve())
    assert recipe["models"] == [{"model": str(aligned.resolve()), "parameters": {"weight": 1.3}}]
    assert recipe["parameters"] == {"normalize": False}
    assert recipe["dtype"] == "float32" and "out_dtype" not in recipe
    # mergekit's task_arithmetic: base + Σ w_i (m_i − base) is the ExPO checkpoint written
    theta_sft, theta_aligned, produced = weights(sft), weights(aligned), weights(tmp_path / "out")
    weight = recipe["models"][0]["parameters"]["weight"]
    for name, value in produced.items():
        expected = theta_sft[name] + weight * (theta_aligned[name] - theta_sft[name])
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


def test_a_bfloat16_card_names_the_stored_dtype_as_mergekit_out_dtype(pair, tmp_path):
    sft, aligned = pair
    extrapolate([sft, aligned], 0.25, tmp_path / "out", dtype="bfloat16", show_progress=False)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "stored as: bfloat16 (dtype setting `bfloat16`)" in card
    recipe = fenced_yaml(card)
    assert recipe["dtype"] == "float32" and recipe["out_dtype"] == "bfloat16"
    assert recipe["models"][0]["parameters"]["weight"] == 1.25


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_a_recipe_gives_the_weights_and_run_folder_of_the_same_flags(run_cli, pair, tmp_path):
    sft, aligned = pair
    recipe = write_recipe(
        tmp_path / "merge.yaml",
        {
            "merge_method": "task_arithmetic",
            "base_model": str(sft),
            "models": [{"model": str(aligned), "parameters": {"weight": 1.5}}],
            "parameters": {"normalize": False},
        },
    )
    by_flags = run_cli(
        "extrapolate", "--sft", str(sft), "--aligned", str(aligned), "--alpha", "0.5",
        "--out", str(tmp_path / "flags"), "--runs-dir", str(tmp_path / "runs-flags"),
    )  # fmt: skip
    by_recipe = run_cli(
        "extrapolate", "--recipe", str(recipe), "--out", str(tmp_path / "recipe"),
        "--runs-dir", str(tmp_path / "runs-recipe"),
    )  # fmt: skip
    assert by_flags.returncode == 0, by_flags.stderr
    assert by_recipe.returncode == 0, by_recipe.stderr
    (flags_run,) = (tmp_path / "runs-flags").glob("extrapolate-*")
    (recipe_run,) = (tmp_path / "runs-recipe").glob("extrapolate-*")
    assert flags_run.name == recipe_run.name  # the same settings hash
    expected, produced = weights(tmp_path / "flags"), weights(tmp_path / "recipe")
    assert produced.keys() == expected.keys()
    assert all(torch.equal(produced[name], expected[name]) for name in expected)
    # the recipe a card carries reads back as the same extrapolation
    again = run_cli(
        "extrapolate", "--recipe", str(tmp_path / "flags" / "merge_recipe.yaml"),
        "--out", str(tmp_path / "again"), "--runs-dir", str(tmp_path / "runs-again"),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    stored = json.loads((tmp_path / "again" / "extrapolation.json").read_text())
    assert stored["alpha"] == 0.5 and stored["dtype"] == "float32"
    produced = weights(tmp_path / "again")
    assert all(torch.equal(produced[name], expected[name]) for name in expected)


def test_recipe_forms_and_conflicts_resolve_into_the_config():
    from weak2strong.extrapolate.config import ExtrapolateConfig
    from weak2strong.extrapolate.recipe import parse_recipe
    from weak2strong.runs import config_hash

    base = {"base_model": "s", "models": [{"model": "a"}]}
    expo = parse_recipe({**base, "merge_method": "expo", "alpha": [0.1, 0.3], "dtype": "bf16"})
    assert (expo.sft, expo.aligned, expo.alphas, expo.dtype) == ("s", "a", [0.1, 0.3], "bfloat16")
    tuned = parse_recipe(
        {
            "merge_method": "task_arithmetic",
            "base_model": "s",
            "models": [{"model": "a", "parameters": {"weight": 1.3}}],
            "dtype": "float32",
            "out_dtype": "float16",
        }
    )
    assert tuned.alphas == [0.3] and tuned.dtype == "float16"  # 1.3 − 1 is 0.3 exactly

    def config(tmp: Path, recipe: dict, **settings) -> ExtrapolateConfig:
        return ExtrapolateConfig(recipe=str(write_recipe(tmp, recipe)), **settings)

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "r.yaml"
        recipe = {**base, "merge_method": "expo", "alpha": 0.5}
        resolved = config(file, recipe)
        assert resolved.recipe is None and resolved.alphas == [0.5]
        flags = ExtrapolateConfig(sft="s", aligned="a", alphas=[0.5])
        assert config_hash(resolved) == config_hash(flags)
        assert config(file, recipe, alphas=[0.5], sft="s").alphas == [0.5]  # agreeing: fine
        with pytest.raises(W2SError, match="sets alphas to 0.5, but alphas is also set to 0.7"):
            config(file, recipe, alphas=[0.7])
        with pytest.raises(W2SError, match="sets aligned to 'a'"):
            config(file, recipe, aligned="other")
        with pytest.raises(W2SError, match="cannot be given with it"):
            config(file, recipe, checkpoints=["x", "y", "z"])


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"models": [{"model": "a", "parameters": {"weight": 1.5}}] * 2},
            "models must list exactly one model",
        ),
        ({"parameters": {"normalize": True}}, "parameters.normalize: true"),
        ({"tokenizer_source": "base"}, "unknown key 'tokenizer_source'"),
        ({"parameters": {"rescale": True}}, "unknown key 'parameters.rescale'"),
        ({"merge_method": "ties"}, "merge_method 'ties' is not ExPO"),
        ({"models": [{"model": "a", "parameters": {"weight": [1, 2]}}]}, "must be one number"),
        ({"dtype": "int8"}, "dtype must be one of"),
        ("not a mapping", "a recipe is a mapping"),
        ({"flags": ["--alpha", "0.7"]}, "sets alphas to 0.5, but alphas is also set to 0.7"),
    ],
)
def test_a_bad_recipe_exits_2_with_one_line_before_any_run_folder(
    run_cli, pair, tmp_path, change, fragment
):
    sft, aligned = pair
    good = {
        "merge_method": "task_arithmetic",
        "base_model": str(sft),
        "models": [{"model": str(aligned), "parameters": {"weight": 1.5}}],
    }
    flags: list[str] = []
    recipe = change
    if isinstance(change, dict):
        change = dict(change)
        flags = change.pop("flags", [])
        recipe = {**good, **change}
    file = tmp_path / "merge.yaml"
    file.write_text(yaml.safe_dump(recipe))
    result = run_cli(
        "extrapolate", "--recipe", str(file), *flags, "--out", str(tmp_path / "out"),
        "--runs-dir", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert fragment in lines[0] and str(file) in lines[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
