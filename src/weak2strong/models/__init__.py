"""Models: the registry of embedded models and the one loader for any model."""

from weak2strong.models.loading import (
    ResolvedModel,
    checkpoint_folder,
    load_causal_lm,
    load_encoder,
    load_tokenizer,
    resolve,
)
from weak2strong.models.registry import EMBEDDED_MODELS, EmbeddedModel, embedded, get_embedded

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "ResolvedModel",
    "checkpoint_folder",
    "embedded",
    "get_embedded",
    "load_causal_lm",
    "load_encoder",
    "load_tokenizer",
    "resolve",
]
