"""`w2s check`: verify the prepared assets, then load the embedded small model and tasks.

Every prepared embedded model is verified file by file against the checksums `w2s assets
prepare` recorded, every installed embedded task is loaded, and the runs folder must be
writable; any damage is an error naming the file (exit 2). Then it exercises the shared
parts end to end: a run folder, an embedded task and model loaded offline, a cached step.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weak2strong.data import TASKS, TaskConfig, load_task
from weak2strong.errors import W2SError
from weak2strong.models import EMBEDDED_MODELS, load_causal_lm, resolve
from weak2strong.models.assets import prepared_dir, verify
from weak2strong.models.loading import model_fingerprint
from weak2strong.report import ResultTable
from weak2strong.runs import Run
from weak2strong.runs.typed import from_json, to_json
from weak2strong.settings import setting


@dataclass
class CheckConfig:
    seed: int = setting(0, help="seed of the task splits")
    model: str = setting("smollm2-135m-instruct", help="the model loaded and sampled greedily")
    tasks: list[str] = setting(help="tasks loaded and counted", factory=lambda: ["imdb", "safety"])
    prompt: str = setting("The capital of France is", help="the prompt the model continues")
    new_tokens: int = setting(8, help="tokens it generates")


def verify_assets(runs_dir: str | Path) -> dict[str, Any]:
    """Prepared models verified, embedded tasks loaded, runs folder writable; W2SError if not."""
    problems: list[str] = []
    models: dict[str, str] = {}
    for name, model in EMBEDDED_MODELS.items():
        if prepared_dir(model) is None:
            models[name] = "not prepared"
            continue
        damaged = verify(model)
        models[name] = "verified" if not damaged else "damaged"
        problems += [f"{line}: run `w2s assets prepare {name}` to repair it" for line in damaged]
    tasks: dict[str, str] = {}
    for name, spec in TASKS.items():
        if not spec.wheels:
            tasks[name] = "user data (task.path)"
        elif all(wheel.is_installed() for wheel in spec.wheels):
            tasks[name] = (
                f"{sum(load_task(TaskConfig(name=name)).counts()['train'].values())} train rows"
            )
        else:
            tasks[name] = "not installed"
    folder = Path(runs_dir).expanduser()
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # nothing is created
    try:
        if not existing.is_dir():
            raise NotADirectoryError(0, f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        problems.append(f"the runs folder {folder} is not writable ({error.strerror or error})")
    if problems:
        raise W2SError("; ".join(problems))
    return {"models": models, "tasks": tasks, "runs_dir": str(folder.resolve())}


@dataclass(kw_only=True)
class ModelCheck:
    model: str
    parameters: int
    load_seconds: float  # the first load in this process, imports included
    prompt: str
    greedy_continuation: str


@dataclass(kw_only=True)
class TaskCheck:
    fingerprint: str
    label_names: list[str]
    counts: dict[str, dict[str, int]]  # split → label → examples


@dataclass(kw_only=True)
class CheckResults:
    assets: dict[str, Any]  # models and tasks → state, and the writable runs folder
    model: ModelCheck
    tasks: dict[str, TaskCheck]


class Check:
    def __init__(self, config: CheckConfig, runs_dir: str = "runs") -> None:
        self.config = config
        self.runs_dir = runs_dir

    def run(self) -> tuple[Run, dict[str, Any]]:
        return run_check(self.config, self.runs_dir)


def run_check(config: CheckConfig, runs_dir: str = "runs") -> tuple[Run, dict[str, Any]]:
    # Validate every input before the run folder exists, so bad input leaves nothing behind.
    task_data = {name: load_task(TaskConfig(name=name), seed=config.seed) for name in config.tasks}
    resolve(config.model)
    assets = verify_assets(runs_dir)
    inputs = {
        "model": model_fingerprint(config.model),
        "tasks": {name: data.fingerprint() for name, data in task_data.items()},
    }
    with Run.open("check", config, runs_dir, inputs) as run:

        def generate() -> dict[str, Any]:
            import torch

            started = time.perf_counter()
            model, tokenizer = load_causal_lm(config.model)
            load_seconds = time.perf_counter() - started
            inputs = tokenizer(config.prompt, return_tensors="pt").to(model.device)
            with torch.no_grad():
                generate_tokens: Any = model.generate
                output = generate_tokens(
                    **inputs, max_new_tokens=config.new_tokens, do_sample=False
                )
            continuation = tokenizer.decode(
                output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
            return {
                "model": config.model,
                "parameters": sum(p.numel() for p in model.parameters()),
                "load_seconds": round(load_seconds, 3),
                "prompt": config.prompt,
                "greedy_continuation": continuation,
            }

        results = from_json(
            CheckResults,
            {
                "assets": assets,
                "model": run.cached_json("model", generate),
                "tasks": {
                    name: {
                        "fingerprint": data.fingerprint(),
                        "label_names": list(data.label_names),
                        "counts": data.counts(),
                    }
                    for name, data in task_data.items()
                },
            },
        )
        payload = to_json(results)
        run.write_results(payload, [])
    return run, payload


def check_tables(results: CheckResults) -> list[ResultTable]:
    """The assets verified, the model's continuation, and each task's counts."""
    assets = results.assets
    rows = [[name, state] for kind in ("models", "tasks") for name, state in assets[kind].items()]
    model = results.model
    tasks = [
        [
            name,
            " / ".join(info.label_names),
            " / ".join(str(n) for n in info.counts["train"].values()),
            " / ".join(str(n) for n in info.counts["test"].values()),
        ]
        for name, info in results.tasks.items()
    ]
    return [
        ResultTable(
            "assets", ["asset", "state"], rows, [f"runs folder writable: {assets['runs_dir']}"]
        ),
        ResultTable(
            f"model {model.model}: {model.parameters:,} parameters, loaded in "
            f"{model.load_seconds:.2f}s (first load in this process, imports included)",
            ["prompt", "greedy continuation"],
            [[model.prompt, model.greedy_continuation]],
        ),
        ResultTable("tasks", ["task", "labels", "train", "test"], tasks),
    ]
