"""LoRA adapters through peft, one setting block for every command that fine-tunes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weak2strong.settings import setting


@dataclass
class LoraSettings:
    """rank=0 means no adapters: every weight trains."""

    rank: int = setting(8, help="LoRA rank; 0 trains every weight instead")
    alpha: int = setting(16, help="LoRA scaling alpha")
    dropout: float = setting(0.05, help="dropout on the LoRA path")
    target_modules: str = setting("all-linear", help="modules that get adapters (peft's syntax)")


def lora_config(settings: LoraSettings, task_type: str | None = None) -> Any:
    """peft's LoraConfig for these settings (for trainers that wrap the model themselves)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type=task_type,
    )


def with_lora(model: Any, settings: LoraSettings, task_type: str | None = None) -> Any:
    """The model wrapped with trainable LoRA adapters (base weights frozen), or as is for rank 0."""
    if settings.rank == 0:
        return model
    from peft import get_peft_model

    return get_peft_model(model, lora_config(settings, task_type))
