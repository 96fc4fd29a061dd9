"""Generations in the formats the field's evaluators read, beside a run's results.

- AlpacaEval: `outputs/alpaca_eval/<generator>/model_outputs.json`, a list of
  `{instruction, output, generator, dataset}` (`alpaca_eval --model_outputs` reads it; on
  AlpacaEval's own 805 instructions the instructions match its set exactly).
- MT-Bench (FastChat `llm_judge`): `outputs/mt_bench/model_answer/<generator>.jsonl`, one
  `{question_id, answer_id, model_id, choices: [{index, turns}], tstamp}` per line.

A generator with several samples per prompt exports its first sample of each.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.fileio import key_digest, write_json, write_jsonl

EXPORTS_DIR = "outputs"


def generator_name(label: str) -> str:
    """A label as a file name and generator id: `α=0.3` → `alpha_0.3`."""
    name = label.replace("α", "alpha").replace("=", "_")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def export_annotations(run_folder: Path, label: str, annotations: list[dict[str, object]]) -> str:
    """A judge's annotations of one generator, beside its outputs (`w2s winrate` reads them)."""
    path = run_folder / EXPORTS_DIR / "alpaca_eval" / generator_name(label) / "annotations.json"
    if distributed.is_main():
        write_json(path, annotations)
    return str(path)


def export_generations(
    run_folder: Path,
    label: str,
    prompts: Sequence[Prompt],
    responses: Sequence[str],
    samples_per_prompt: int = 1,
) -> dict[str, str]:
    """Writes one generator's outputs in both formats (main process only); returns the paths."""
    if len(responses) != len(prompts) * samples_per_prompt:
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts")
    generator = generator_name(label)
    first = list(responses[::samples_per_prompt])
    alpaca = run_folder / EXPORTS_DIR / "alpaca_eval" / generator / "model_outputs.json"
    mt_bench = run_folder / EXPORTS_DIR / "mt_bench" / "model_answer" / f"{generator}.jsonl"
    if distributed.is_main():
        write_json(
            alpaca,
            [
                {
                    "instruction": prompt.text,
                    "output": output,
                    "generator": generator,
                    "dataset": prompt.dataset or "weak2strong",
                }
                for prompt, output in zip(prompts, first, strict=True)
            ],
        )
        now = time.time()
        write_jsonl(
            mt_bench,
            (
                {
                    "question_id": prompt.question_id if prompt.question_id is not None else i,
                    "answer_id": key_digest([generator, prompt.key(), output]),
                    "model_id": generator,
                    "choices": [{"index": 0, "turns": [output]}],
                    "tstamp": now,
                }
                for i, (prompt, output) in enumerate(zip(prompts, first, strict=True))
            ),
        )
    return {"alpaca_eval": str(alpaca), "mt_bench": str(mt_bench)}
