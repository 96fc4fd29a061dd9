"""The α sweep: generate on held-out prompts with every candidate α, with α = 0 (the aligned
model itself) and with the weaker input checkpoints as references, all under the same seed
so that rewards are paired per prompt, and keep the best candidate.

Each candidate's generations and rewards are a cached step; only the best candidate's
weights are kept on disk while the sweep runs.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompts import Prompt, held_out_prompts
from weak2strong.extrapolate.card import command_line, write_model_card
from weak2strong.extrapolate.checkpoint import PROVENANCE_FILE, staged_folder
from weak2strong.extrapolate.config import ALIGNED_LABEL, ExtrapolateConfig, alpha_label
from weak2strong.extrapolate.results import ExtrapolateResults, SweepRow
from weak2strong.extrapolate.summary import metric_records
from weak2strong.extrapolate.writer import Writer
from weak2strong.fileio import read_json
from weak2strong.models import load_causal_lm
from weak2strong.models.generation import sample_completions
from weak2strong.runs import Run
from weak2strong.runs.config import non_default_settings
from weak2strong.runs.exports import export_generations
from weak2strong.runs.results import PROMPTS, absolute
from weak2strong.runs.typed import estimate, optional_estimate, to_json
from weak2strong.scoring.held_out import HeldOutRewards
from weak2strong.scoring.scorers import scorer_description


def input_labels(names: list[str]) -> list[str]:
    if len(names) == 2:
        return ["sft", ALIGNED_LABEL]
    return [f"checkpoint {i + 1}" for i in range(len(names) - 1)] + [ALIGNED_LABEL]


def best_label(rows: dict[str, dict[str, Any]], higher: bool) -> str:
    """The best candidate by mean reward; α = 0 (the aligned model itself) competes."""
    eligible = [label for label in rows if label.startswith("α=") or label == ALIGNED_LABEL]
    sign = 1.0 if higher else -1.0
    return max(eligible, key=lambda label: sign * float(np.mean(rows[label]["rewards"])))


def sweep_prompts(config: ExtrapolateConfig) -> list[Prompt]:
    """The sweep's held-out prompts, read (and a bad file refused) before any run folder."""
    config.prompt_format().check("extrapolate")
    return held_out_prompts(
        config.prompts,
        config.test_prompts,
        seed=config.seed,
        prompt_words=config.prompt_words,
        options=config.prompt_options,
    )


class RewardSweep:
    def __init__(
        self, config: ExtrapolateConfig, writer: Writer, out: Path, prompts: list[Prompt]
    ) -> None:
        self.config = config
        self.writer = writer
        self.names = writer.names
        self.out = out
        self.evaluation = HeldOutRewards(
            config.scorer, prompts, config.samples_per_prompt, show_progress=config.show_progress
        )
        self.prompts = list(self.evaluation.prompts)

    def _generate(self, folder: str, description: str) -> list[str]:
        """`samples_per_prompt` completions per prompt, a prompt's samples side by side."""
        cfg = self.config
        model, tokenizer = load_causal_lm(folder)
        prompt_format = cfg.prompt_format()
        prompt_format.check(folder, tokenizer)
        return sample_completions(
            model,
            tokenizer,
            prompt_format.texts(self.evaluation.repeated_prompts(), tokenizer),
            cfg.sampling,
            seed=cfg.seed,
            description=description,
            show_progress=cfg.show_progress,
            add_special_tokens=not prompt_format.is_chat,
        )

    def _scored(self, folder: str, description: str) -> dict[str, Any]:
        responses = self._generate(folder, description)
        scores = self.evaluation.scores(responses)
        means = self.evaluation.per_prompt(scores).mean(1)
        return {"responses": responses, "scores": scores, "rewards": means.tolist()}

    def run(self, run: Run, tune_warning: str | None) -> dict[str, Any]:
        cfg = self.config
        labels = input_labels(self.names)
        candidates = [alpha for alpha in cfg.alphas if alpha != 0]
        run.plan(
            [f"generate and score {label}" for label in labels]
            + [f"merge, generate and score {alpha_label(alpha)}" for alpha in candidates]
            + [f"keep the best α at {self.out}"]
        )
        rows = self._score_inputs(run, labels)
        candidates_dir = run.path / "candidates"
        for alpha in candidates:
            rows[alpha_label(alpha)] = self._score_candidate(run, alpha, candidates_dir)
            self._keep_only_best(rows, candidates_dir)
        for label, row in rows.items():
            export_generations(
                run.path, label, self.prompts, row["responses"], cfg.samples_per_prompt
            )
        table = self.evaluation.table(
            {label: row["rewards"] for label, row in rows.items()},
            baseline=ALIGNED_LABEL,
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        best = best_label(rows, self.evaluation.higher_is_better)
        run.phase(f"keep the best α at {self.out}")
        written = self._keep_best(
            rows[best]["alpha"], candidates_dir, self._selection(rows, table, best)
        )
        results = self._results(rows, table, best, written)
        results.win_rates = self.evaluation.report_win_rates(
            run,
            "judge-win-rates",
            {label: row["responses"] for label, row in rows.items()},
            # one score per response (steps cached before they were kept: the prompt means)
            {label: row.get("scores", row["rewards"]) for label, row in rows.items()},
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        payload = to_json(results)
        run.write_results(
            payload,
            metric_records(results),
            self._examples(rows),
            floor=PROMPTS,
            warnings=[f"the α sweep extrapolates it: {tune_warning}"] if tune_warning else [],
        )
        return payload

    def _score_inputs(self, run: Run, labels: list[str]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        count = len(self.names)
        for index, (name, label) in enumerate(zip(self.names, labels, strict=True)):
            run.phase(f"generate and score {label}")
            step = f"generations-input{index + 1}-{self.writer.inputs_key}"
            scored = run.cached_json(step, functools.partial(self._scored, name, label))
            rows[label] = {"alpha": float(index - (count - 1)), "model": name, **scored}
        return rows

    def _score_candidate(self, run: Run, alpha: float, candidates_dir: Path) -> dict[str, Any]:
        label = alpha_label(alpha)
        run.phase(f"merge, generate and score {label}")
        folder = candidates_dir / f"alpha-{alpha:g}"

        def score() -> dict[str, Any]:
            self.writer.write(alpha, folder, force=True)
            return self._scored(str(folder), label)

        step = f"generations-alpha{alpha:g}-{self.writer.inputs_key}"
        return {"alpha": alpha, "model": str(folder), **run.cached_json(step, score)}

    def _selection(
        self, rows: dict[str, dict[str, Any]], table: dict[str, Any], best: str
    ) -> dict[str, Any]:
        """How the kept α was chosen, for its model card."""
        cfg = self.config
        return {
            "select_by": "reward",
            "scorer": cfg.scorer.name,
            "gold_scorer": scorer_description(cfg.scorer),
            "higher_is_better": self.evaluation.higher_is_better,
            "prompts": cfg.prompts,
            "test_prompts": len(self.prompts),
            "samples_per_prompt": cfg.samples_per_prompt,
            "new_tokens": cfg.sampling.new_tokens,
            "seed": cfg.seed,
            "alphas": cfg.alphas,
            "rows": {
                label: {"alpha": row["alpha"], "reward": table["models"][label]}
                for label, row in rows.items()
            },
            "best": best,
            "best_alpha": rows[best]["alpha"],
            "command": command_line(self.names, cfg.alphas, self.out, non_default_settings(cfg)),
        }

    def _results(
        self,
        rows: dict[str, dict[str, Any]],
        table: dict[str, Any],
        best: str,
        written: dict[str, Any],
    ) -> ExtrapolateResults:
        cfg = self.config
        return ExtrapolateResults(
            checkpoints=[absolute(name) for name in self.names],
            alphas=cfg.alphas,
            select_by="reward",
            scorer=cfg.scorer.name,
            higher_is_better=self.evaluation.higher_is_better,
            prompts=cfg.prompts,
            test_prompts=len(self.prompts),
            samples_per_prompt=cfg.samples_per_prompt,
            new_tokens=cfg.sampling.new_tokens,
            dtype=cfg.dtype,
            rows={
                label: SweepRow(
                    alpha=row["alpha"],
                    kind="candidate" if label.startswith("α=") else "input",
                    model=absolute(row["model"]),
                    reward=estimate(table["models"][label]),
                    reward_minus_aligned=optional_estimate(table.get("difference", {}).get(label)),
                )
                for label, row in rows.items()
            },
            best=best,
            best_alpha=rows[best]["alpha"],
            out=absolute(str(self.out)),
            written=written,
        )

    def _examples(self, rows: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
        k = self.config.samples_per_prompt
        return (
            {
                "model": label,
                "alpha": row["alpha"],
                "prompt": prompt.text,
                "responses": row["responses"][i * k : (i + 1) * k],
                "reward": row["rewards"][i],  # the mean over the prompt's samples
            }
            for label, row in rows.items()
            for i, prompt in enumerate(self.prompts)
        )

    def _keep_only_best(self, rows: dict[str, dict[str, Any]], candidates_dir: Path) -> None:
        best = rows[best_label(rows, self.evaluation.higher_is_better)]["alpha"]
        if not distributed.is_main() or not candidates_dir.is_dir():
            return
        for folder in candidates_dir.iterdir():
            if folder.name != f"alpha-{best:g}":
                shutil.rmtree(folder, ignore_errors=True)

    def _keep_best(
        self, alpha: float, candidates_dir: Path, selection: dict[str, Any]
    ) -> dict[str, Any]:
        """Move the best candidate's weights to `out`, or write them there if not kept."""
        return distributed.main_decides(lambda: self._move_best(alpha, candidates_dir, selection))

    def _move_best(
        self, alpha: float, candidates_dir: Path, selection: dict[str, Any]
    ) -> dict[str, Any]:
        out, writer = self.out, self.writer
        if writer.is_ours(out, alpha):
            report: dict[str, Any] = read_json(out / PROVENANCE_FILE)
            return {**report, "cached": True}
        candidate = candidates_dir / f"alpha-{alpha:g}"
        if alpha != 0 and writer.is_ours(candidate, alpha):
            with staged_folder(out, force=writer.may_replace) as staging:
                staging.rmdir()
                shutil.move(str(candidate), str(staging))
                report = read_json(staging / PROVENANCE_FILE)
                # the sweep's card replaces the candidate's, before `out` appears
                write_model_card(staging, report, out, selection)
        else:
            report = writer.merge(alpha, out, force=writer.may_replace, selection=selection)
        shutil.rmtree(candidates_dir, ignore_errors=True)
        return report
