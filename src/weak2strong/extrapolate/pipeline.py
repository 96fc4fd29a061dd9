"""`w2s extrapolate`: write extrapolated checkpoints, or sweep α and keep the best by reward."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from weak2strong.data.prompts import PROMPT_SETS, prompts_digest
from weak2strong.errors import W2SError
from weak2strong.extrapolate.checkpoint import Checkpoint, check_output_folder, parse_size
from weak2strong.extrapolate.config import ExtrapolateConfig, alpha_label
from weak2strong.extrapolate.planning import plan_extrapolation
from weak2strong.extrapolate.results import ExtrapolateResults
from weak2strong.extrapolate.sweep import RewardSweep, sweep_prompts
from weak2strong.extrapolate.writer import Writer
from weak2strong.fileio import check_writable, key_digest
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run, config_hash
from weak2strong.runs.results import absolute
from weak2strong.runs.typed import to_json
from weak2strong.scoring.scorers import check_scorer_name, scorer_fingerprint
from weak2strong.settings import check_settings
from weak2strong.tune import default_tuned_model


def _check_settings(config: ExtrapolateConfig) -> None:
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


class Extrapolate:
    def __init__(self, config: ExtrapolateConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)  # a config built in Python, as one loaded from YAML
        _check_settings(config)
        self.tune_warning: str | None = None  # the default aligned model is at chance
        self.config = config
        self.runs_dir = runs_dir
        self.run_hash = config_hash(config)
        # read now: a bad prompt file fails before a default model is tuned or a folder made
        self.prompts = sweep_prompts(config) if config.select_by == "reward" else []

    def checkpoint_names(self) -> list[str]:
        cfg = self.config
        if cfg.checkpoints:
            return list(cfg.checkpoints)
        aligned = cfg.aligned
        if not aligned:
            aligned, self.tune_warning = default_tuned_model(cfg.tune, self.runs_dir)
        return [cfg.sft, aligned]

    def run(self) -> tuple[Run, dict[str, Any]]:
        cfg = self.config
        names = self.checkpoint_names()
        # Every check that reads only headers happens before the run folder exists.
        opened = [Checkpoint.open(name) for name in names]
        plan_extrapolation(opened, cfg.dtype)
        inputs_key = key_digest(
            {"inputs": [model_fingerprint(name) for name in names], "dtype": cfg.dtype}
        )
        writer = Writer(cfg, names, self.run_hash, inputs_key)
        out_base = Path(cfg.out).expanduser() if cfg.out else None
        if out_base is not None:
            check_output_folder(out_base, [checkpoint.folder for checkpoint in opened])
            check_writable(out_base, "--out")  # a read-only --out fails before the run folder
            if not cfg.force:
                _check_free(writer, out_base)
        inputs: dict[str, Any] = {"checkpoints": inputs_key}
        if cfg.select_by == "reward":
            inputs["scorer"] = scorer_fingerprint(cfg.scorer)
            if cfg.prompts not in PROMPT_SETS:  # a file or dataset: its content, not its name
                inputs["prompts"] = prompts_digest(self.prompts)
        with Run.open("extrapolate", cfg, self.runs_dir, inputs) as run:
            base = out_base or run.path / "model"
            if cfg.select_by == "none":
                return run, _write_all(run, writer, base)
            return run, RewardSweep(cfg, writer, base, self.prompts).run(run, self.tune_warning)


def _check_free(writer: Writer, out_base: Path) -> None:
    """Without --force, an output may only replace a finished output of this very run."""
    if writer.config.select_by == "none":
        targets = writer.outputs(out_base)
        taken = [
            path
            for alpha, path in targets.items()
            if path.exists() and not writer.is_ours(path, alpha)
        ]
        # several α go inside out_base, which may exist if it only holds our outputs
        if len(targets) > 1 and out_base.exists() and not taken:
            ours = {path.name for path in targets.values()}
            taken = [p for p in out_base.iterdir() if p.name not in ours][:1]
        if taken:
            raise W2SError(f"output folder {taken[0]} exists: pass --force to replace it")
    elif out_base.exists() and not writer.is_ours(out_base, None):
        raise W2SError(f"output folder {out_base} exists: pass --force to replace it")


def _write_all(run: Run, writer: Writer, base: Path) -> dict[str, Any]:
    # the model card of each α says how it was chosen: given, alone or beside others
    alphas = writer.config.alphas
    selection = {"select_by": "none", "alphas": alphas}
    written = {
        alpha_label(alpha): writer.write(alpha, path, force=writer.may_replace, selection=selection)
        for alpha, path in writer.outputs(base).items()
    }
    results = ExtrapolateResults(
        checkpoints=[absolute(name) for name in writer.names],
        alphas=alphas,
        select_by="none",
        written=written,
    )
    payload = to_json(results)
    run.write_results(payload, [])
    return payload
