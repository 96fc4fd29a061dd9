"""`w2s extrapolate`: write extrapolated checkpoints, or sweep α and keep the best by reward.

The sweep generates on held-out prompts with every candidate α, with α = 0 (the aligned
model itself) and with the weaker input checkpoints as references, all under the same seed
so that rewards are paired per prompt. Each candidate's generations and rewards are a
cached step; only the best candidate's weights are kept on disk while the sweep runs.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompts import load_prompts
from weak2strong.errors import W2SError
from weak2strong.extrapolate.card import command_line, write_model_card
from weak2strong.extrapolate.checkpoint import (
    PROVENANCE_FILE,
    Checkpoint,
    check_output_folder,
    parse_size,
    staged_folder,
)
from weak2strong.extrapolate.merge import extrapolate, plan_extrapolation
from weak2strong.extrapolate.recipe import apply_recipe
from weak2strong.extrapolate.summary import metric_records
from weak2strong.fileio import check_writable, key_digest, read_json
from weak2strong.models import load_causal_lm
from weak2strong.models.generation import SamplingConfig, sample_completions
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run, config_hash
from weak2strong.runs.config import non_default_settings
from weak2strong.runs.results import PROMPTS, absolute
from weak2strong.scoring import paired_bootstrap_means
from weak2strong.scoring.classifier import (
    ScorerConfig,
    check_scorer_name,
    load_scorer,
    scorer_description,
    scorer_fingerprint,
    scorer_higher_is_better,
)
from weak2strong.settings import setting
from weak2strong.tune import Tune, TuneConfig, chance_warning

SELECTIONS = ("none", "reward")
ALIGNED_LABEL = "aligned (α=0)"


@dataclass
class ExtrapolateConfig:
    seed: int = setting(0, help="seed of the sweep's prompts and samples")
    sft: str = setting("smollm2-135m-instruct", help="the SFT (starting) checkpoint")
    aligned: str = setting(
        "", help="the aligned checkpoint; empty: w2s tune's model with the tune.* settings"
    )
    tune: TuneConfig = setting(help="how the default aligned model is tuned", factory=TuneConfig)
    checkpoints: list[str] = setting(
        help="n-model form: checkpoints weakest → strongest (replaces sft/aligned)",
        factory=list,
    )
    recipe: str | None = setting(
        None,
        help="a mergekit-style YAML recipe (merge_method: task_arithmetic, base_model: the SFT "
        "model, one model, the aligned one, with weight 1+α; or merge_method: expo with "
        "alpha) that sets sft, aligned, alphas and dtype; it is read when the config loads "
        "(and then shows as null), so the run folder is the one the same flags give",
        hash=False,
    )
    alphas: list[float] = setting(help="α, or several to sweep", factory=lambda: [0.3])
    dtype: str = setting(
        "auto", help="output dtype: auto (each tensor keeps the aligned one's), float32, ..."
    )
    select_by: str = setting(
        "none", help="none: write every α; reward: sweep them and keep the best"
    )
    prompts: str = setting("imdb", help="held-out prompts of the sweep: imdb or rtp")
    test_prompts: int = setting(100, help="prompts every candidate generates on")
    samples_per_prompt: int = setting(1, help="samples per prompt, their reward averaged")
    prompt_words: int = setting(8, help="words of each review that make an imdb prompt")
    sampling: SamplingConfig = setting(
        help="sampling of the sweep", factory=lambda: SamplingConfig(new_tokens=48, batch_size=16)
    )
    scorer: ScorerConfig = setting(help="the reward that selects α", factory=ScorerConfig)
    bootstrap_samples: int = setting(1000, help="resamples of the prompts for the intervals")
    out: str = setting("", help="output folder; empty: the run folder's model/", hash=False)
    shard_size: str = setting("2GB", help="largest output shard", hash=False)
    force: bool = setting(
        False, help="replace an existing output (only a checkpoint w2s wrote)", hash=False
    )
    show_progress: bool = setting(True, help="progress bars", hash=False)

    def __post_init__(self) -> None:
        if self.recipe is not None:
            apply_recipe(self)  # before anything is hashed, printed or run


def alpha_label(alpha: float) -> str:
    return ALIGNED_LABEL if alpha == 0 else f"α={alpha:g}"


class Extrapolate:
    def __init__(self, config: ExtrapolateConfig, runs_dir: str | Path = "runs") -> None:
        self.tune_warning: str | None = None  # the default aligned model is at chance
        if config.select_by not in SELECTIONS:
            raise W2SError(
                f"unknown --select-by '{config.select_by}' (known: {', '.join(SELECTIONS)})"
            )
        if not config.alphas:
            raise W2SError("give at least one α (e.g. --alpha 0.3 or --alpha 0.1,0.3,0.5)")
        bad = [a for a in config.alphas if not math.isfinite(a)]
        if bad:
            raise W2SError(f"alpha must be a finite number, got {bad[0]}")
        if len(set(config.alphas)) != len(config.alphas):
            raise W2SError("each α may appear once")
        if len(config.checkpoints) == 1:
            raise W2SError("--checkpoint needs two or more models, weakest → strongest")
        parse_size(config.shard_size)
        if config.select_by == "reward":
            check_scorer_name(config.scorer.name)
            config.sampling.validate()
            if config.test_prompts < 2:
                raise W2SError("test_prompts must be at least 2 for confidence intervals")
            if config.samples_per_prompt < 1:
                raise W2SError("samples_per_prompt must be at least 1")
        self.config = config
        self.runs_dir = runs_dir
        self.run_hash = config_hash(config)

    # ---- inputs

    def checkpoint_names(self) -> list[str]:
        cfg = self.config
        if cfg.checkpoints:
            return list(cfg.checkpoints)
        aligned = cfg.aligned
        if not aligned:
            _, results = Tune(cfg.tune, self.runs_dir).run()
            aligned = str(results["model"])
            self.tune_warning = chance_warning(results)
        return [cfg.sft, aligned]

    def input_labels(self, names: list[str]) -> list[str]:
        if len(names) == 2:
            return ["sft", ALIGNED_LABEL]
        return [f"checkpoint {i + 1}" for i in range(len(names) - 1)] + [ALIGNED_LABEL]

    def outputs(self, base: Path) -> dict[float, Path]:
        """Where each α's checkpoint goes when nothing is selected."""
        alphas = self.config.alphas
        if len(alphas) == 1:
            return {alphas[0]: base}
        return {alpha: base / f"alpha-{alpha:g}" for alpha in alphas}

    def _is_ours(self, folder: Path, alpha: float | None, inputs_key: str) -> bool:
        """A finished output of this very run (same config hash, input weights and α if given)."""
        provenance = folder / PROVENANCE_FILE
        try:
            stored = read_json(provenance)
        except (OSError, ValueError):  # absent or not JSON: not a finished output of ours
            return False
        return (
            isinstance(stored, dict)
            and stored.get("config_hash") == self.run_hash
            and (alpha is None or stored.get("alpha") == alpha)
            and stored.get("inputs_key") == inputs_key
        )

    # ---- run

    def run(self) -> tuple[Run, dict[str, Any]]:
        cfg = self.config
        names = self.checkpoint_names()
        # Every check that reads only headers happens before the run folder exists.
        opened = [Checkpoint.open(name) for name in names]
        plan_extrapolation(opened, cfg.dtype)
        inputs_key = key_digest(
            {"inputs": [model_fingerprint(name) for name in names], "dtype": cfg.dtype}
        )
        out_base = Path(cfg.out).expanduser() if cfg.out else None
        if out_base is not None:
            check_output_folder(out_base, [checkpoint.folder for checkpoint in opened])
            check_writable(out_base, "--out")  # a read-only --out fails before the run folder
        if out_base is not None and not cfg.force:
            if cfg.select_by == "none":
                targets = self.outputs(out_base)
                taken = [
                    path
                    for alpha, path in targets.items()
                    if path.exists() and not self._is_ours(path, alpha, inputs_key)
                ]
                # several α go inside out_base, which may exist if it only holds our outputs
                if len(targets) > 1 and out_base.exists() and not taken:
                    ours = {path.name for path in targets.values()}
                    taken = [p for p in out_base.iterdir() if p.name not in ours][:1]
                if taken:
                    raise W2SError(f"output folder {taken[0]} exists: pass --force to replace it")
            elif out_base.exists() and not self._is_ours(out_base, None, inputs_key):
                raise W2SError(f"output folder {out_base} exists: pass --force to replace it")
        inputs: dict[str, Any] = {"checkpoints": inputs_key}
        if cfg.select_by == "reward":
            inputs["scorer"] = scorer_fingerprint(cfg.scorer)
        with Run.open("extrapolate", cfg, self.runs_dir, inputs) as run:
            base = out_base or run.path / "model"
            if cfg.select_by == "none":
                return run, self._write_all(run, names, inputs_key, base)
            return run, self._sweep(run, names, inputs_key, base)

    @property
    def _may_replace(self) -> bool:
        """Outputs in the run folder (locked by the run) may be replaced; a user's --out
        only with --force, and even then only a checkpoint w2s wrote (see staged_folder)."""
        return self.config.force or not self.config.out

    def _provenance(self, inputs_key: str) -> dict[str, Any]:
        return {"config_hash": self.run_hash, "inputs_key": inputs_key}

    def _write(
        self,
        names: list[str],
        alpha: float,
        target: Path,
        inputs_key: str,
        *,
        force: bool,
        selection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one α's checkpoint to `target`: the main process merges (I/O-bound, it gains
        nothing from more processes); every process gets the report once it is on disk."""
        return distributed.main_decides(
            lambda: self._merge(names, alpha, target, inputs_key, force=force, selection=selection)
        )

    def _merge(
        self,
        names: list[str],
        alpha: float,
        target: Path,
        inputs_key: str,
        *,
        force: bool,
        selection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self._is_ours(target, alpha, inputs_key):
            report: dict[str, Any] = read_json(target / PROVENANCE_FILE)
            report["cached"] = True
            return report
        return extrapolate(
            names,
            alpha,
            target,
            dtype=self.config.dtype,
            shard_size=self.config.shard_size,
            force=force,
            show_progress=self.config.show_progress,
            provenance=self._provenance(inputs_key),
            selection=selection,
        )

    def _write_all(self, run: Run, names: list[str], inputs_key: str, base: Path) -> dict[str, Any]:
        # the model card of each α says how it was chosen: given, alone or beside others
        selection = {"select_by": "none", "alphas": self.config.alphas}
        written = {
            alpha_label(alpha): self._write(
                names, alpha, path, inputs_key, force=self._may_replace, selection=selection
            )
            for alpha, path in self.outputs(base).items()
        }
        results = {
            "checkpoints": [absolute(name) for name in names],
            "alphas": self.config.alphas,
            "select_by": "none",
            "written": written,
        }
        run.write_results(results, [])
        return results

    # ---- the α sweep

    def _generate(self, folder: str, prompts: list[str], description: str) -> list[str]:
        """`samples_per_prompt` completions per prompt, a prompt's samples side by side."""
        cfg = self.config
        model, tokenizer = load_causal_lm(folder)
        repeated = [prompt for prompt in prompts for _ in range(cfg.samples_per_prompt)]
        return sample_completions(
            model,
            tokenizer,
            repeated,
            cfg.sampling,
            seed=cfg.seed,
            description=description,
            show_progress=cfg.show_progress,
        )

    def _sweep(self, run: Run, names: list[str], inputs_key: str, out: Path) -> dict[str, Any]:
        cfg = self.config
        prompts = load_prompts(
            cfg.prompts, 1, cfg.test_prompts, seed=cfg.seed, prompt_words=cfg.prompt_words
        ).test
        scorer_holder: list[Any] = []

        def rewards(responses: list[str]) -> list[float]:
            if not scorer_holder:
                scorer_holder.append(load_scorer(cfg.scorer, show_progress=cfg.show_progress))
            k = cfg.samples_per_prompt
            repeated = [prompt for prompt in prompts for _ in range(k)]
            scores = scorer_holder[0].score(
                [p + r for p, r in zip(repeated, responses, strict=True)]
            )
            return [float(value) for value in np.asarray(scores).reshape(len(prompts), k).mean(1)]

        count = len(names)
        labels = self.input_labels(names)
        rows: dict[str, dict[str, Any]] = {}
        candidates = [alpha for alpha in cfg.alphas if alpha != 0]
        run.plan(
            [f"generate and score {label}" for label in labels]
            + [f"merge, generate and score {alpha_label(alpha)}" for alpha in candidates]
            + [f"keep the best α at {out}"]
        )
        for index, (name, label) in enumerate(zip(names, labels, strict=True)):
            run.phase(f"generate and score {label}")
            step = f"generations-input{index + 1}-{inputs_key}"

            def score_input(name: str = name, label: str = label) -> dict[str, Any]:
                responses = self._generate(name, prompts, label)
                return {"responses": responses, "rewards": rewards(responses)}

            rows[label] = {
                "alpha": float(index - (count - 1)),
                "model": name,
                **run.cached_json(step, score_input),
            }
        candidates_dir = run.path / "candidates"
        higher = scorer_higher_is_better(cfg.scorer)
        for alpha in candidates:
            label = alpha_label(alpha)
            run.phase(f"merge, generate and score {label}")
            folder = candidates_dir / f"alpha-{alpha:g}"

            def score_candidate(alpha: float = alpha, folder: Path = folder) -> dict[str, Any]:
                self._write(names, alpha, folder, inputs_key, force=True)
                responses = self._generate(str(folder), prompts, alpha_label(alpha))
                return {"responses": responses, "rewards": rewards(responses)}

            rows[label] = {
                "alpha": alpha,
                "model": str(folder),
                **run.cached_json(f"generations-alpha{alpha:g}-{inputs_key}", score_candidate),
            }
            self._keep_only_best(rows, candidates_dir, higher)
        table = paired_bootstrap_means(
            {label: np.asarray(row["rewards"]) for label, row in rows.items()},
            baseline=ALIGNED_LABEL,
            samples=cfg.bootstrap_samples,
            seed=cfg.seed,
        )
        best_label = self._best(rows, higher)
        best_alpha = rows[best_label]["alpha"]
        selection: dict[str, Any] = {
            "select_by": "reward",
            "scorer": cfg.scorer.name,
            "gold_scorer": scorer_description(cfg.scorer),
            "higher_is_better": higher,
            "prompts": cfg.prompts,
            "test_prompts": len(prompts),
            "samples_per_prompt": cfg.samples_per_prompt,
            "new_tokens": cfg.sampling.new_tokens,
            "seed": cfg.seed,
            "alphas": cfg.alphas,
            "rows": {
                label: {"alpha": row["alpha"], "reward": table["models"][label]}
                for label, row in rows.items()
            },
            "best": best_label,
            "best_alpha": best_alpha,
            "command": self.sweep_command(names, out),
        }
        run.phase(f"keep the best α at {out}")
        written = self._keep_best(names, best_alpha, candidates_dir, out, inputs_key, selection)
        results: dict[str, Any] = {
            "checkpoints": [absolute(name) for name in names],
            "alphas": cfg.alphas,
            "select_by": "reward",
            "scorer": cfg.scorer.name,
            "higher_is_better": higher,
            "prompts": cfg.prompts,
            "test_prompts": len(prompts),
            "samples_per_prompt": cfg.samples_per_prompt,
            "new_tokens": cfg.sampling.new_tokens,
            "dtype": cfg.dtype,
            "rows": {},
            "best": best_label,
            "best_alpha": best_alpha,
            "out": absolute(str(out)),
            "written": written,
        }
        for label, row in rows.items():
            results["rows"][label] = {
                "alpha": row["alpha"],
                "kind": "candidate" if label.startswith("α=") else "input",
                "model": absolute(row["model"]),
                "reward": table["models"][label],
                "reward_minus_aligned": table.get("difference", {}).get(label),
            }
        k = cfg.samples_per_prompt
        examples = (
            {
                "model": label,
                "alpha": row["alpha"],
                "prompt": prompt,
                "responses": row["responses"][i * k : (i + 1) * k],
                "reward": row["rewards"][i],  # the mean over the prompt's samples
            }
            for label, row in rows.items()
            for i, prompt in enumerate(prompts)
        )
        warning = self.tune_warning
        run.write_results(
            results,
            metric_records(results),
            examples,
            floor=PROMPTS,
            warnings=[f"the α sweep extrapolates it: {warning}"] if warning else [],
        )
        return results

    @staticmethod
    def _best(rows: dict[str, dict[str, Any]], higher: bool) -> str:
        """The best candidate by mean reward; α = 0 (the aligned model itself) competes."""
        eligible = [label for label in rows if label.startswith("α=") or label == ALIGNED_LABEL]
        sign = 1.0 if higher else -1.0
        return max(eligible, key=lambda label: sign * float(np.mean(rows[label]["rewards"])))

    def _keep_only_best(
        self, rows: dict[str, dict[str, Any]], candidates_dir: Path, higher: bool
    ) -> None:
        best = rows[self._best(rows, higher)]["alpha"]
        if not distributed.is_main() or not candidates_dir.is_dir():
            return
        for folder in candidates_dir.iterdir():
            if folder.name != f"alpha-{best:g}":
                shutil.rmtree(folder, ignore_errors=True)

    def sweep_command(self, names: list[str], out: Path) -> str:
        """The `w2s extrapolate` command line of this sweep, inputs as resolved."""
        return command_line(names, self.config.alphas, out, non_default_settings(self.config))

    def _keep_best(
        self,
        names: list[str],
        alpha: float,
        candidates_dir: Path,
        out: Path,
        inputs_key: str,
        selection: dict[str, Any],
    ) -> dict[str, Any]:
        """Move the best candidate's weights to `out`, or write them there if not kept."""
        return distributed.main_decides(
            lambda: self._move_best(names, alpha, candidates_dir, out, inputs_key, selection)
        )

    def _move_best(
        self,
        names: list[str],
        alpha: float,
        candidates_dir: Path,
        out: Path,
        inputs_key: str,
        selection: dict[str, Any],
    ) -> dict[str, Any]:
        if self._is_ours(out, alpha, inputs_key):
            report: dict[str, Any] = read_json(out / PROVENANCE_FILE)
            return {**report, "cached": True}
        candidate = candidates_dir / f"alpha-{alpha:g}"
        if alpha != 0 and self._is_ours(candidate, alpha, inputs_key):
            with staged_folder(out, force=self._may_replace) as staging:
                staging.rmdir()
                shutil.move(str(candidate), str(staging))
                report = read_json(staging / PROVENANCE_FILE)
                # the sweep's card replaces the candidate's, before `out` appears
                write_model_card(staging, report, out, selection)
        else:
            report = self._merge(
                names, alpha, out, inputs_key, force=self._may_replace, selection=selection
            )
        shutil.rmtree(candidates_dir, ignore_errors=True)
        return report
