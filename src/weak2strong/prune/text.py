"""The default ticket problem: a small pretrained text encoder with a fresh head.

MiniLM-L6's first `student.layers` pretrained layers with a fresh linear head, fully
fine-tuned on short texts (the "initialisation" that IMP rewinds to is therefore the
pretrained encoder plus the head's random init, as in Chen et al. 2020's BERT tickets).
The embeddings are frozen (never pruned; `train_embeddings` turns them on). The random-
reinitialisation control draws the prunable weights afresh.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from weak2strong.models import load_encoder
from weak2strong.models.adapters import LoraSettings
from weak2strong.prune.config import StudentSettings
from weak2strong.prune.lottery import TicketProblem
from weak2strong.prune.strategies import ScoringInputs
from weak2strong.training import TextClassifier, fit, predict_proba


class TextClassifierProblem:
    """The default ticket problem: a small pretrained encoder + head on a text task."""

    def __init__(
        self,
        settings: StudentSettings,
        train_texts: list[str],
        train_targets: np.ndarray,
        test_texts: list[str],
        test_labels: np.ndarray,
        classes: int,
        curves_name: str = "prune",
    ) -> None:
        self.settings = settings
        self.curves_name = curves_name
        # eager attention: GraSP differentiates twice, which fused CPU attention cannot
        overrides: dict[str, Any] = {"attn_implementation": "eager"}
        if settings.layers:
            overrides["num_hidden_layers"] = settings.layers
        backbone, self.tokenizer = load_encoder(
            settings.encoder, device="cpu", dtype="float32", config_overrides=overrides
        )
        self.pretrained = backbone
        self.classes = classes
        self.train_texts = train_texts
        self.train_targets = train_targets
        self.test_texts = test_texts
        self.test_labels = test_labels

    def _classifier(self, backbone: nn.Module, seed: int) -> TextClassifier:
        torch.manual_seed(seed)  # the head's initialisation
        classifier = TextClassifier(
            backbone,
            self.tokenizer,
            self.classes,
            lora=LoraSettings(rank=0),
            max_length=self.settings.max_length,
        )
        if not self.settings.train_embeddings:
            backbone.get_submodule("embeddings").requires_grad_(False)
        return classifier

    def build(self, seed: int) -> nn.Module:
        return self._classifier(copy.deepcopy(self.pretrained), seed)

    def random_init(self, seed: int) -> nn.Module:
        from transformers import AutoModel

        torch.manual_seed(seed)
        backbone = AutoModel.from_config(self.pretrained.config, attn_implementation="eager")
        return self._classifier(backbone, seed)

    def train(self, model: nn.Module, after_step: Any, seed: int) -> None:
        fit(
            model,
            self.train_texts,
            self.train_targets,
            self.settings,
            seed=seed,
            after_step=after_step,
            curves_name=f"{self.curves_name}/seed{seed}",
        )

    def evaluate(self, model: nn.Module) -> float:
        probs = predict_proba(model, self.test_texts, description="evaluate")
        return float((probs.argmax(1) == self.test_labels).mean())

    def scoring(self, seed: int) -> ScoringInputs:
        batch = self.train_texts[: self.settings.batch_size]
        targets = torch.as_tensor(self.train_targets[: self.settings.batch_size].argmax(1))

        def batch_logits(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            return model(batch), targets

        def ones_output(model: nn.Module) -> torch.Tensor:
            classifier: Any = model
            width = classifier.backbone.config.hidden_size
            dtype = next(model.parameters()).dtype
            ones = torch.ones(1, self.settings.max_length, width, dtype=dtype)
            hidden = classifier.backbone(inputs_embeds=ones).last_hidden_state
            output: torch.Tensor = classifier.head(hidden.mean(1))
            return output

        return ScoringInputs(batch_logits=batch_logits, ones_output=ones_output, seed=seed)

    def problem(self) -> TicketProblem:
        return TicketProblem(
            build=self.build,
            train=self.train,
            evaluate=self.evaluate,
            scoring=self.scoring,
            random_init=self.random_init,
        )
