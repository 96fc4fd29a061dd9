"""Tiny random models over the real tokenizers, for tests whose subject is bookkeeping.

A test about how work is shared between processes, cached, resumed or written needs a model
of the right kind (a causal LM with SmolLM2's tokenizer and chat template, a BERT encoder
with MiniLM's vocabulary) but not its trained weights: these load in milliseconds and run a
step in a few. Tests of what a real model does (it learns, it prefers, it scores) keep one.
Each folder is a plain Hugging Face checkpoint: every command takes it as a local model.
"""

from __future__ import annotations

from pathlib import Path

import torch

SMOLLM = "smollm2-135m-instruct"
MINILM = "minilm-l6"


def tiny_causal_lm(
    folder: Path, *, tokenizer_of: str = SMOLLM, eos_token: str | None = None, seed: int = 0
) -> Path:
    """A 2-layer Llama with `tokenizer_of`'s tokenizer (vocabulary, special tokens, chat
    template; `eos_token` for a tokenizer without one), saved to `folder` as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from weak2strong.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_of)
    if eos_token is not None:
        tokenizer.eos_token = eos_token
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_reward_model(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer Llama reward model (one logit) with SmolLM2's tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from weak2strong.models import load_tokenizer

    tokenizer = load_tokenizer(SMOLLM)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=1,
    )
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_encoder(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT with MiniLM's WordPiece tokenizer, saved to `folder`."""
    from transformers import BertConfig, BertModel

    from weak2strong.models import load_tokenizer

    tokenizer = load_tokenizer(MINILM)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Tiny random models of the architectures the paper recipes (configs/paper) name: (config
# class, model class, sizes, the local tokenizer that stands in for the hub one).
_LM_SIZES = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
STAND_INS: dict[str, tuple[str, str, dict, str]] = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 2048}, SMOLLM),
    "llama": ("LlamaConfig", "LlamaForCausalLM", _LM_SIZES, SMOLLM),
    "mistral": ("MistralConfig", "MistralForCausalLM", _LM_SIZES, SMOLLM),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", _LM_SIZES, SMOLLM),
    "llama-reward": ("LlamaConfig", "LlamaForSequenceClassification", {**_LM_SIZES, "num_labels": 1}, SMOLLM),
    "distilbert-classifier": (
        "DistilBertConfig",
        "DistilBertForSequenceClassification",
        {"n_layers": 2, "dim": 32, "hidden_dim": 64, "n_heads": 2, "num_labels": 2,
         "id2label": {0: "NEGATIVE", 1: "POSITIVE"}, "label2id": {"NEGATIVE": 0, "POSITIVE": 1}},
        MINILM,
    ),
    "deberta-v2-reward": (
        "DebertaV2Config",
        "DebertaV2ForSequenceClassification",
        {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
         "num_attention_heads": 2, "num_labels": 1},
        MINILM,
    ),
}  # fmt: skip


def tiny_stand_in(folder: Path, architecture: str, *, seed: int = 0) -> Path:
    """A tiny random model of `architecture` (a key of STAND_INS), saved to `folder`."""
    import transformers

    from weak2strong.models import load_tokenizer

    config_name, model_name, sizes, tokenizer_of = STAND_INS[architecture]
    tokenizer = load_tokenizer(tokenizer_of)
    special = {
        key: getattr(tokenizer, key)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        if getattr(tokenizer, key) is not None
    }
    config = getattr(transformers, config_name)(vocab_size=len(tokenizer), **special, **sizes)
    torch.manual_seed(seed)
    getattr(transformers, model_name)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
