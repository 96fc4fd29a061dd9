"""`w2s check`: load the embedded small model and tasks offline and say what was loaded.

It exercises the shared parts end to end: a run folder, an embedded task and an embedded
model loaded offline, and one cached step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from weak2strong.data import TaskConfig, load_task
from weak2strong.models import load_causal_lm, resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run


@dataclass
class CheckConfig:
    seed: int = 0
    model: str = "smollm2-135m-instruct"
    tasks: list[str] = field(default_factory=lambda: ["imdb", "safety"])
    prompt: str = "The capital of France is"
    new_tokens: int = 8


def run_check(config: CheckConfig, runs_dir: str = "runs") -> tuple[Run, dict[str, Any]]:
    # Validate every input before the run folder exists, so bad input leaves nothing behind.
    task_data = {name: load_task(TaskConfig(name=name), seed=config.seed) for name in config.tasks}
    resolve(config.model)
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

        results = {
            "model": run.cached_json("model", generate),
            "tasks": {
                name: {
                    "fingerprint": data.fingerprint(),
                    "label_names": list(data.label_names),
                    "counts": data.counts(),
                }
                for name, data in task_data.items()
            },
        }
        run.write_results(results)
    return run, results
