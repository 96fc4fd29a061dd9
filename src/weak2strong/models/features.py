"""Frozen-backbone text features, batched by length, pooled with the attention mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from weak2strong import distributed
from weak2strong.models.loading import load_encoder, load_model_config
from weak2strong.settings import setting


@dataclass
class FeatureConfig:
    """Frozen-backbone features for probes, cached by model weights, settings and texts."""

    max_length: int = setting(256, help="tokens per text; longer texts are cut")
    batch_size: int = setting(16, help="texts per forward pass (one process each)")
    pooling: Literal["mean", "last"] = setting(
        "mean", help="mean over real tokens, or the last real token"
    )
    layer: int = setting(-1, help="hidden-state index; -1 is the final layer")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """Mean over real tokens, or the last real token, found from the mask (never from token ids)."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = (attention_mask * positions).argmax(1)  # works for left and right padding
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def layers_to_load(layer: int, num_layers: int) -> int | None:
    """How many transformer layers `layer`'s features need, or None for the whole model.

    Hidden state k (k ≥ 1) is the output of layer k; the model's last hidden state may be
    normalised (Llama, Qwen, ...), so a model cut to k + 1 layers still gives hidden state k
    exactly as the whole model does, without computing the layers above it.
    """
    if layer < 0 or layer + 1 >= num_layers:
        return None
    return layer + 1


def load_feature_backbone(
    name: str,
    config: FeatureConfig,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str | None = None,
) -> tuple[Any, Any]:
    """The backbone and tokenizer for `config`'s features, cut above the layer they read."""
    model_config = load_model_config(name, revision=revision, trust_remote_code=trust_remote_code)
    num_layers = getattr(model_config, "num_hidden_layers", None)
    keep = layers_to_load(config.layer, num_layers) if isinstance(num_layers, int) else None
    return load_encoder(
        name,
        revision=revision,
        trust_remote_code=trust_remote_code,
        device=device,
        config_overrides=None if keep is None else {"num_hidden_layers": keep},
    )


@torch.no_grad()
def extract_features(
    backbone: Any,
    tokenizer: Any,
    texts: Sequence[str],
    config: FeatureConfig,
    *,
    description: str = "features",
    show_progress: bool = True,
) -> torch.Tensor:
    """[len(texts), hidden] float32 features, in the order of `texts`.

    Texts are processed longest-first so each batch pads to similar lengths; batches are
    shared between processes (`distributed.map_rows`), each computed once.
    """
    if not texts:
        raise ValueError("no texts to embed")
    device = next(backbone.parameters()).device

    def embed(indices: list[int]) -> torch.Tensor:
        batch = tokenizer(
            [texts[i] for i in indices],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=config.max_length,
        ).to(device)
        result = backbone(**batch, output_hidden_states=config.layer != -1)
        hidden = (
            result.last_hidden_state if config.layer == -1 else result.hidden_states[config.layer]
        )
        return pool(hidden.float(), batch["attention_mask"], config.pooling)

    return distributed.map_rows(
        embed,
        len(texts),
        config.batch_size,
        order=sorted(range(len(texts)), key=lambda i: -len(texts[i])),
        description=description,
        show_progress=show_progress,
    )
