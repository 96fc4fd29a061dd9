"""`w2s extrapolate`'s settings: the checkpoints, α, and how α is chosen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from weak2strong.data.prompts import PROMPT_SET_HELP, PromptOptions
from weak2strong.extrapolate.recipe import apply_recipe
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.scoring.scorers import ScorerConfig
from weak2strong.settings import setting
from weak2strong.tune import TuneConfig

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
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting(
        "auto", help="output dtype: auto (each tensor keeps the aligned one's), float32, ..."
    )
    select_by: Literal["none", "reward"] = setting(
        "none", help="none: write every α; reward: sweep them and keep the best"
    )
    prompts: str = setting("imdb", help="held-out prompts of the sweep: " + PROMPT_SET_HELP)
    prompt_options: PromptOptions = setting(
        help="how a prompt file or dataset is read", factory=PromptOptions
    )
    template: str = setting(
        "{prompt}", help="the sweep's prompt format: text with {prompt}, or chat"
    )
    system: str = setting("", help="the sweep's system prompt")
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

    def prompt_format(self) -> PromptFormat:
        return PromptFormat(self.template, self.system)

    def __post_init__(self) -> None:
        if self.recipe is not None:
            apply_recipe(self)  # before anything is hashed, printed or run


def alpha_label(alpha: float) -> str:
    return ALIGNED_LABEL if alpha == 0 else f"α={alpha:g}"
