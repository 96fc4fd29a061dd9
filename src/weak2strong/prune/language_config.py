"""The settings of `w2s prune-lm`: the model, the pruning methods and sparsities, the text it
is calibrated and measured on, the zero-shot task, and the optional recovery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from weak2strong.data import TaskConfig
from weak2strong.prune.oneshot import OneShotMethod
from weak2strong.prune.recovery import RecoverySettings
from weak2strong.settings import setting


@dataclass
class ZeroShotSettings:
    """A labelled task the model answers zero-shot (`weak2strong.scoring.zero_shot`)."""

    task: TaskConfig = setting(
        help="the task: its test split is answered",
        factory=lambda: TaskConfig(name="rotten-tomatoes"),
    )
    examples: int = setting(200, help="test examples answered, drawn by a fixed seed (0: none)")
    max_text_tokens: int = setting(128, help="tokens of each text kept in the question")


@dataclass
class LanguagePruneConfig:
    RESULTS_VERSION: ClassVar[int] = 2  # zero-shot answers and recovery join every variant

    seed: int = setting(0, help="the draw of calibration sequences")
    model: str = setting(
        "smollm2-135m-instruct", help="the causal LM: an embedded name, a local folder or a hub id"
    )
    methods: list[OneShotMethod] = setting(
        help="magnitude, wanda, sparsegpt", factory=lambda: ["magnitude", "wanda", "sparsegpt"]
    )
    sparsities: list[str] = setting(
        help="unstructured fractions (0.5) and N:M patterns (2:4)", factory=lambda: ["0.5", "2:4"]
    )
    owl: bool = setting(
        False, help="also every method at every unstructured sparsity with OWL's block sparsities"
    )
    owl_multiple: float = setting(5.0, help="OWL: an outlier is above this many times the mean")
    owl_spread: float = setting(0.08, help="OWL: block sparsities within ± this of the target")
    task: TaskConfig = setting(
        help="the text: calibration from its train split, evaluation from its test split",
        factory=lambda: TaskConfig(name="imdb"),
    )
    calibration_sequences: int = setting(32, help="calibration sequences (the papers: 128)")
    eval_windows: int = setting(64, help="held-out windows perplexity is measured on")
    sequence_length: int = setting(256, help="tokens per calibration sequence and window")
    batch_size: int = setting(4, help="sequences per forward pass")
    zero_shot: ZeroShotSettings = setting(
        help="accuracy on a task answered zero-shot", factory=ZeroShotSettings
    )
    recovery: RecoverySettings = setting(
        help="fine-tuning each pruned model with its mask held fixed", factory=RecoverySettings
    )
    dtype: Literal["float32", "bfloat16"] = setting("float32", help="the model's dtype")
    bootstrap_samples: int = setting(1000, help="bootstrap resamples of the windows")
    show_progress: bool = setting(True, help="progress bars", hash=False)
