"""`w2s tune`'s settings: the base model, the preference data and the optimisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from weak2strong.data.prompts import PROMPT_SET_HELP, PromptOptions
from weak2strong.models.adapters import LoraSettings
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.scoring.scorers import ScorerConfig
from weak2strong.settings import setting
from weak2strong.training.settings import TrainingSettings


@dataclass
class TuneTraining(TrainingSettings):
    """DPO through TRL (its optimiser and weight decay), or SFT through the shared loop."""

    epochs: int = setting(1, help="epochs over the pairs (examples)")
    batch_size: int = setting(
        8, help="pairs per optimiser step, across all processes (DPO: must divide by them)"
    )
    learning_rate: float = setting(5e-4, help="learning rate")
    max_length: int = setting(96, help="tokens per prompt + completion")
    beta: float = setting(0.1, help="dpo: strength of the KL anchor to the base model")


@dataclass
class TuneConfig:
    seed: int = setting(0, help="seed of the data and the training")
    method: Literal["dpo", "sft"] = setting("dpo", help="dpo (TRL) or sft")
    base: str = setting("smollm2-135m-instruct", help="the model to tune")
    prompts: str = setting("imdb", help=PROMPT_SET_HELP)
    prompt_options: PromptOptions = setting(
        help="how a prompt file or dataset is read", factory=PromptOptions
    )
    train_prompts: int = setting(256, help="training pairs (dpo) or examples (sft)")
    prompt_words: int = setting(8, help="words of a review that make its prompt")
    preferences: Literal["reviews", "sampled", "file", "teacher"] = setting(
        "reviews",
        help="dpo pairs: reviews (human labels: a positive continuation over a negative one), "
        "sampled (two samples ranked by the labeler), file (preference_data), or teacher "
        "(the teacher's answer to each prompt over the base model's own)",
    )
    teacher: str = setting(
        "qwen2.5-coder-1.5b-instruct",
        help="preferences=teacher: the stronger model whose answers (in its chat template, "
        "with `system`) are chosen; sft: they are the demonstrations",
    )
    preference_data: str = setting(
        "",
        help="preferences=file: a file (.jsonl, .json, .csv, .tsv) or dataset of prompt, "
        "chosen, rejected (text, chat conversations, or HH-RLHF transcripts)",
    )
    preference_split: str = setting("", help="the split of a preference dataset")
    template: str = setting("{prompt}", help="the base model's prompt: text with {prompt}, or chat")
    system: str = setting("", help="the base model's system prompt")
    labeler: ScorerConfig = setting(
        help="dpo with sampled pairs: ranks the two completions of each prompt",
        factory=lambda: ScorerConfig(name="lexicon:vader"),
    )
    target_label: str = setting("positive", help="the label whose reviews are preferred")
    completion_words: int = setting(24, help="words of a review's continuation")
    review_filter: str = setting(
        "",
        help="reviews: keep only training continuations that a lexicon (lexicon:vader or "
        "lexicon:afinn) reads with their review's label (a review's label is the whole "
        "review's; many 24-word stretches carry no sentiment); held-out pairs stay unfiltered",
    )
    eval_pairs: int = setting(
        64,
        help="held-out review pairs on which log π_tuned − log π_base (the score a search "
        "pair steers by) must prefer the target label's continuation",
    )
    sampling: SamplingConfig = setting(
        help="sampling for sampled pairs", factory=lambda: SamplingConfig(new_tokens=48)
    )
    lora: LoraSettings = setting(help="LoRA adapters (rank 0: every weight)", factory=LoraSettings)
    training: TuneTraining = setting(help="the optimisation", factory=TuneTraining)
    show_progress: bool = setting(True, help="progress bars", hash=False)

    def prompt_format(self) -> PromptFormat:
        return PromptFormat(self.template, self.system)
