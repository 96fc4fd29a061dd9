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
