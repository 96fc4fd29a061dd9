"""DPO through TRL: the tuned member of a search pair, from preference pairs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from weak2strong import distributed
from weak2strong.models import load_causal_lm
from weak2strong.models.adapters import lora_config
from weak2strong.tracking import training_curves
from weak2strong.tune.config import TuneConfig
from weak2strong.tune.saving import save_merged


def _arguments(cfg: TuneConfig, scratch: Path) -> Any:
    from trl import DPOConfig

    settings = cfg.training
    return DPOConfig(
        output_dir=str(scratch),
        beta=settings.beta,
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size // distributed.num_processes(),
        learning_rate=settings.learning_rate,
        max_length=settings.max_length,
        seed=cfg.seed,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=not cfg.show_progress,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=False,  # small models: recomputation costs more than it saves
        # every weight of a causal LM (or its LoRA adapters) reaches the loss
        ddp_find_unused_parameters=False,
    )


def _quiet_progress(trainer: Any) -> None:
    """The loss curve goes to the trackers and results.json, not as raw dicts between bars."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class ProgressWithoutLogs(ProgressCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            return None

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(ProgressWithoutLogs)


def _track(logs: list[dict[str, Any]], cfg: TuneConfig, name: str) -> None:
    settings = cfg.training
    curves = {"beta": settings.beta, "learning_rate": settings.learning_rate}
    with training_curves(name, curves) as log_values:
        for entry in logs:
            if log_values is None:
                break
            numbers = {
                f"train/{key}": value
                for key, value in entry.items()
                if isinstance(value, int | float) and key != "step"
            }
            log_values(numbers, int(entry["step"]))


def _summary(logs: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    return {
        "final_loss": logs[-1]["loss"] if logs else None,
        "final_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "final_reward_margin": logs[-1].get("rewards/margins") if logs else None,
        "steps": steps,
        "curve": [
            {
                "step": int(entry["step"]),
                "loss": float(entry["loss"]),
                "reward_accuracy": entry.get("rewards/accuracies"),
                "reward_margin": entry.get("rewards/margins"),
            }
            for entry in logs
        ],
    }


def train_dpo(cfg: TuneConfig, pairs: dict[str, list[str]], model_dir: Path) -> dict[str, Any]:
    """Tune `cfg.base` on the pairs, save it merged at `model_dir`; the training summary."""
    from datasets import Dataset
    from trl import DPOTrainer

    model, tokenizer = load_causal_lm(cfg.base, training=True)
    scratch = model_dir.with_name("trainer-scratch")
    trainer = DPOTrainer(
        model=model,
        args=_arguments(cfg, scratch),
        train_dataset=Dataset.from_dict(pairs),
        processing_class=tokenizer,
        peft_config=lora_config(cfg.lora, "CAUSAL_LM") if cfg.lora.rank > 0 else None,
    )
    _quiet_progress(trainer)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    _track(logs, cfg, f"{model_dir.parent.name}/dpo")
    save_merged(trainer.model, tokenizer, model_dir)
    if distributed.is_main():
        shutil.rmtree(scratch, ignore_errors=True)
    return _summary(logs, int(trainer.state.global_step))
