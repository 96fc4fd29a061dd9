"""A tuned model saved as a plain checkpoint, LoRA merged in, written atomically."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from weak2strong import distributed


def save_merged(model: Any, tokenizer: Any, model_dir: Path) -> None:
    """LoRA merged into the weights, saved as a plain checkpoint via a temp folder + rename.

    The main process saves; every process returns once the model is on disk, so the
    next step (a search, an extrapolation) can load it anywhere.
    """
    if distributed.is_main():
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model.eval()
        staging = model_dir.with_name(model_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(model_dir, ignore_errors=True)
        staging.rename(model_dir)
    distributed.barrier()
