"""The seeds' experiments as recipes (configs/paper): each runs here, on CPU, as written, with
tiny random stand-ins of the same architectures for its hub models, small local copies of
its hub datasets and input files, fake servers for its APIs, and a handful of prompts; so a
recipe that would fail on a GPU node fails here first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.completions_server import ServerState, serve
from tests.judge_server import JudgeState, judge_server
from tests.tiny import tiny_stand_in

RECIPES = Path(__file__).parents[1] / "configs" / "paper"

# every hub model a recipe names: the architecture of its stand-in, and a seed (an SFT and
# an aligned checkpoint of one family differ)
MODELS = {
    "openai-community/gpt2": ("gpt2", 0),
    "openai-community/gpt2-large": ("gpt2", 1),
    "openai-community/gpt2-xl": ("gpt2", 2),
    "Qwen/Qwen2.5-7B": ("qwen2", 0),
    "meta-llama/Meta-Llama-3-70B-Instruct": ("llama", 0),
    "HuggingFaceH4/mistral-7b-sft-beta": ("mistral", 0),
    "HuggingFaceH4/zephyr-7b-beta": ("mistral", 1),
    "allenai/tulu-2-70b": ("llama", 2),
    "allenai/tulu-2-dpo-70b": ("llama", 3),
    "lvwerra/distilbert-imdb": ("distilbert-classifier", 0),
    "OpenAssistant/reward-model-deberta-v3-large-v2": ("deberta-v2-reward", 0),
    "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2": ("llama-reward", 0),
}
SERVED = {"gpt-3.5-turbo-instruct", "gpt-4-1106-preview"}  # names on a server, not models
INSTRUCTIONS = [f"Explain idea number {i} in one sentence." for i in range(12)]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), "utf-8")


def _dataset(folder: Path, split: str, rows: list[dict[str, Any]]) -> str:
    """A dataset folder with one named split, as `datasets.load_dataset` reads a hub repo."""
    folder.mkdir(parents=True)
    _jsonl(folder / f"{split}.jsonl", rows)
    card = f"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: {split}\n    path: {split}.jsonl\n---\n"
    (folder / "README.md").write_text(card, "utf-8")
    return str(folder)


def _datasets(root: Path) -> dict[str, str]:
    posts = [
        f"SUBREDDIT: r/advice\nPOST: I have question {i} about my week.\nTL;DR:" for i in range(16)
    ]
    return {
        "trl-lib/tldr": _dataset(
            root / "tldr", "test", [{"prompt": p, "completion": " a week."} for p in posts]
        ),
        "trl-lib/tldr-preference": _dataset(
            root / "tldr-preference",
            "train",
            [{"prompt": p, "chosen": " A short summary.", "rejected": " lol"} for p in posts],
        ),
        "HuggingFaceH4/ultrafeedback_binarized": _dataset(
            root / "ultrafeedback",
            "test_prefs",
            [
                {
                    "prompt": t,
                    "chosen": [
                        {"role": "user", "content": t},
                        {"role": "assistant", "content": "Good."},
                    ],
                    "rejected": [
                        {"role": "user", "content": t},
                        {"role": "assistant", "content": "No."},
                    ],
                }
                for t in INSTRUCTIONS
            ],
        ),
    }


def _input_files(cwd: Path) -> None:
    """The files recipes read by relative path, in the layouts they come in."""
    from tests.test_images import cifar_folder

    cifar_folder(cwd, per_batch=40)  # cifar-10-batches-py, 200 training images
    (cwd / "alpaca_eval.json").write_text(
        json.dumps([{"instruction": t, "dataset": "helpful_base"} for t in INSTRUCTIONS]), "utf-8"
    )
    (cwd / "gpt4_1106_preview_outputs.json").write_text(
        json.dumps(
            [
                {
                    "instruction": t,
                    "output": "A reference answer. " * (i % 3 + 1),
                    "generator": "gpt4_1106_preview",
                }
                for i, t in enumerate(INSTRUCTIONS)
            ]
        ),
        "utf-8",
    )
    legal = cwd / "privacy_policy_qa"
    legal.mkdir()
    for split, count in (("train", 8), ("test", 72)):
        lines = ["index\tquestion\ttext\tanswer"] + [
            f"{i}\tDo you share my data?\tClause {i}: we {'share' if i % 2 else 'store'} data.\t"
            f"{'Relevant' if i % 2 else 'Irrelevant'}"
            for i in range(count)
        ]
        (legal / f"{split}.tsv").write_text("\n".join(lines) + "\n", "utf-8")


def _replaced(value: Any, names: dict[str, str]) -> Any:
    """Every hub id (also as `hf:<id>`) replaced by its stand-in's location."""
    if isinstance(value, dict):
        return {key: _replaced(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, names) for item in value]
    if isinstance(value, str):
        prefix = "hf:" if value.startswith("hf:") else ""
        bare = value.removeprefix("hf:")
        if bare in names:
            return prefix + names[bare]
        assert "/" not in bare or bare.startswith(("http", "/")) or bare in SERVED, (
            f"a recipe names {value!r}: give it a stand-in in tests/test_recipes.py"
        )
    return value


def _smoke(command: str, config: dict[str, Any], urls: dict[str, str]) -> dict[str, Any]:
    """The recipe at a handful of prompts and tokens; its structure and choices unchanged."""
    config["show_progress"] = False
    if command == "search":
        config |= {"test_prompts": 3, "bon_n": 2, "bootstrap_samples": 50}
        config["curve"] = [1, 2] if config.get("curve") else []
        config["sampling"] |= {"new_tokens": 4, "batch_size": 3}
        config["cbs"]["chunk_length"] = 2
        if config.get("backend") == "vllm":  # no vLLM in CI: the same search on transformers
            config["backend"] = "transformers"
        if config.get("backend") == "api":
            config["api"]["base_url"] = urls["completions"]
        if "tune" in config:
            config["tune"] |= {"train_prompts": 8, "eval_pairs": 4}
            config["tune"]["training"] |= {"batch_size": 4, "max_length": 48}
    if command == "extrapolate":
        config |= {"test_prompts": 3, "bootstrap_samples": 50}
        config["sampling"] |= {"new_tokens": 4, "batch_size": 3}
    if command == "generalize":
        config["task"]["max_per_split"] = 40
        config["finetune"] |= {"epochs": 1, "batch_size": 8, "max_length": 32}
        config["bootstrap_samples"] = 50
    if command == "prune":
        config |= {"seeds": [0]}
        config["lottery"] |= {"rounds": 1}
        if config["lottery"].get("rewind_step"):  # within the smoke run's few steps
            config["lottery"]["rewind_step"] = 2
        config["network"] |= {"epochs": 1, "eval_every": 5}
        config["images"] = config.get("images", {}) | {"validation_examples": 50}
        if config["images"].get("dataset") == "mnist":
            config["images"]["train_limit"] = 150
    judge = config.get("scorer", {}).get("judge")
    if judge:
        judge["api"]["base_url"] = urls["judge"]
    return config


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("stand-ins")
    names = {
        name: str(tiny_stand_in(root / name.replace("/", "--"), architecture, seed=seed))
        for name, (architecture, seed) in MODELS.items()
    }
    return names | _datasets(root)


@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_each_paper_recipe_runs_as_written_on_tiny_stand_ins(recipe, stand_ins, run_cli, tmp_path):
    from weak2strong.models import load_causal_lm

    command = recipe.split("-")[0]
    original = yaml.safe_load((RECIPES / recipe).read_text("utf-8"))
    header = (RECIPES / recipe).read_text("utf-8").split("\n")[0]
    assert header.startswith("# ") and "Hardware:" in (RECIPES / recipe).read_text("utf-8")
    _input_files(tmp_path)
    served_model, served_tokenizer = load_causal_lm(
        stand_ins["meta-llama/Meta-Llama-3-70B-Instruct"], device="cpu"
    )
    completions = serve(ServerState(served_model, served_tokenizer, "gpt-3.5-turbo-instruct"))
    try:
        with judge_server(JudgeState(served_name="gpt-4-1106-preview")) as judge_url:
            urls = {
                "judge": judge_url,
                "completions": f"http://127.0.0.1:{completions.server_address[1]}/v1",
            }
            config = _smoke(command, _replaced(original, stand_ins), urls)
            path = tmp_path / "recipe.yaml"
            path.write_text(yaml.safe_dump(config), "utf-8")
            result = run_cli(command, "-c", str(path))
    finally:
        completions.shutdown()
        completions.server_close()
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "runs").glob(f"{command}-*")
    results = json.loads((folder / "results.json").read_text())
    assert results["command"] == command and results["metrics"]
    if original.get("scorer", {}).get("name") == "judge:pairwise":
        assert results["win_rates"]  # the AlpacaEval numbers of every method or α
