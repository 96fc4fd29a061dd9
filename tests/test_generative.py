"""Generative-mode SFT supervises completion tokens only: prompt and padding never count."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from weak2strong.generalize.generative import IGNORE_INDEX, build_sft_batch
from weak2strong.models import load_causal_lm


def test_sft_loss_ignores_prompt_and_padding():
    model, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    prompts = ["Review: the film was", "Write one word:"]
    completions = [" a delight from start to finish", " hello"]
    batch = build_sft_batch(tokenizer, prompts, completions, max_length=64)
    prompt_lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    completion_lengths = [
        len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in completions
    ]

    labels, mask = batch["labels"], batch["attention_mask"]
    for row in range(2):
        supervised = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert supervised == list(
            range(prompt_lengths[row], prompt_lengths[row] + completion_lengths[row])
        )
    assert mask[1].sum() < mask.shape[1]  # the short pair is padded
    assert (labels[mask == 0] == IGNORE_INDEX).all()

    with torch.no_grad():
        loss = model(**batch).loss
        logits = model(input_ids=batch["input_ids"], attention_mask=mask).logits
    # Hand computation over completion tokens only (next-token prediction: shift by one).
    shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
    keep = shifted_labels != IGNORE_INDEX
    manual = F.cross_entropy(shifted_logits[keep], shifted_labels[keep])
    assert torch.allclose(loss, manual, atol=1e-5)
    assert keep.sum() == sum(completion_lengths)

    # Whatever sits in padding positions and prompt labels, the loss is the same.
    scrambled = {key: value.clone() for key, value in batch.items()}
    scrambled["input_ids"][mask == 0] = 0  # id 0 is a real token here; the mask still rules
    with torch.no_grad():
        assert torch.allclose(model(**scrambled).loss, loss, atol=1e-5)


def test_long_pairs_are_cut_completion_first():
    _, tokenizer = load_causal_lm("smollm2-135m-instruct", device="cpu")
    batch = build_sft_batch(tokenizer, ["short prompt"], ["word " * 100], max_length=16)
    assert batch["input_ids"].shape == (1, 16)
    prompt_length = len(tokenizer("short prompt")["input_ids"])
    assert (batch["labels"][0, :prompt_length] == IGNORE_INDEX).all()
    assert (batch["labels"][0, prompt_length:] != IGNORE_INDEX).all()
