"""One-shot pruning of language models against the reference algorithms written out here:
SparseGPT's `fasterprune` and Wanda's `prune_wanda` (the authors' released code, restated),
N:M masks, OWL's layer sparsities, and a whole model pruned block by block."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from weak2strong.errors import W2SError
from weak2strong.prune.oneshot import (
    Sparsity,
    magnitude_mask,
    n_m_mask,
    owl_sparsities,
    prune_language_model,
    sparsegpt_prune,
    transformer_blocks,
    wanda_mask,
)


def reference_sparsegpt(
    weight, hessian, sparsity, prunen=0, prunem=0, blocksize=128, percdamp=0.01
):
    """SparseGPT's fasterprune (github.com/IST-DASLab/sparsegpt, sparsegpt.py), restated."""
    W = weight.clone().float()
    H = hessian.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    columns = W.shape[1]
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    mask = None
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = (
                    W1[:, i : (i + prunem)] ** 2
                    / (torch.diag(Hinv1)[i : (i + prunem)].reshape((1, -1))) ** 2
                )
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        mask = mask1 if mask is None else torch.cat([mask, mask1], 1)
    return W, ~mask


def reference_wanda(weight, inputs, sparsity, prune_n=0, prune_m=0):
    """Wanda's prune_wanda for one layer (github.com/locuslab/wanda, lib/prune.py): the
    running mean of squared input norms, |W|·sqrt of it, the lowest per output row."""
    scaler_row = torch.zeros(weight.shape[1])
    nsamples = 0
    for inp in inputs:  # one calibration sample at a time, [tokens, features]
        inp = inp.t().float()
        scaler_row *= nsamples / (nsamples + 1)
        nsamples += 1  # noqa: SIM113  (the reference, as written)
        scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / nsamples
    W_metric = torch.abs(weight) * torch.sqrt(scaler_row.reshape((1, -1)))
    W_mask = torch.zeros_like(W_metric) == 1
    if prune_n != 0:
        for ii in range(W_metric.shape[1]):
            if ii % prune_m == 0:
                tmp = W_metric[:, ii : (ii + prune_m)].float()
                W_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    else:
        sort_res = torch.sort(W_metric, dim=-1, stable=True)
        indices = sort_res[1][:, : int(W_metric.shape[1] * sparsity)]
        W_mask.scatter_(1, indices, True)
    return ~W_mask


def _layer_problem(seed: int = 0, rows: int = 24, columns: int = 160, tokens: int = 400):
    """A weight and calibration inputs with a few outlier features, as LLM activations have."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, columns, generator=generator)
    scales = torch.exp(torch.randn(columns, generator=generator))
    inputs = torch.randn(tokens, columns, generator=generator) * scales
    return weight, inputs


@pytest.mark.parametrize("sparsity", ["0.5", "0.7", "2:4"])
def test_sparsegpt_matches_the_reference_and_reconstructs_better_than_magnitude(sparsity):
    weight, inputs = _layer_problem()
    hessian = 2 * inputs.T @ inputs / len(inputs)
    chosen = Sparsity.parse(sparsity)
    pruned, keep = sparsegpt_prune(weight, hessian, chosen)
    expected, expected_keep = reference_sparsegpt(
        weight, hessian, chosen.fraction, chosen.n, chosen.m
    )
    assert torch.equal(keep, expected_keep)
    assert torch.allclose(pruned, expected, atol=1e-5)
    assert torch.all(pruned[~keep] == 0)

    def error(candidate):
        return float(((inputs @ weight.T - inputs @ candidate.T) ** 2).sum())

    magnitude = weight * magnitude_mask(weight, chosen)
    assert error(pruned) < 0.8 * error(magnitude)


@pytest.mark.parametrize("sparsity", ["0.5", "2:4"])
def test_wanda_matches_the_reference_and_reconstructs_better_than_magnitude(sparsity):
    weight, inputs = _layer_problem(seed=1)
    chosen = Sparsity.parse(sparsity)
    samples = list(inputs.reshape(8, -1, inputs.shape[1]))  # 8 calibration sequences
    keep = wanda_mask(weight, (inputs.double() ** 2).sum(0), chosen)
    assert torch.equal(keep, reference_wanda(weight, samples, chosen.fraction, chosen.n, chosen.m))
    if not chosen.structured:  # the same fraction of every output row
        assert set((~keep).sum(1).tolist()) == {int(weight.shape[1] * chosen.fraction)}

    def error(mask):
        return float(((inputs @ weight.T - inputs @ (weight * mask).T) ** 2).sum())

    assert error(keep) < error(magnitude_mask(weight, chosen))


def test_n_m_masks_prune_exactly_n_of_every_m():
    scores = torch.randn(6, 16)
    keep = n_m_mask(scores, 2, 4)
    groups = keep.reshape(6, 4, 4)
    assert torch.all(groups.sum(-1) == 2)
    # the pruned ones are the two lowest of their group
    lowest = scores.reshape(6, 4, 4).argsort(-1)[..., :2]
    assert torch.all(~groups.gather(-1, lowest))
    with pytest.raises(W2SError, match="divisible by 4"):
        n_m_mask(torch.randn(2, 6), 2, 4)
    assert Sparsity.parse("2:4") == Sparsity(0.5, 2, 4) and str(Sparsity.parse("50%")) == "50%"
    with pytest.raises(W2SError):
        Sparsity.parse("4:2")


def test_owl_gives_outlier_rich_blocks_less_sparsity_and_keeps_the_mean():
    sparsities = owl_sparsities([0.01, 0.05, 0.03, 0.01], target=0.7, spread=0.08)
    assert sum(sparsities) / 4 == pytest.approx(0.7)
    assert sparsities[1] == min(sparsities) and max(sparsities) - min(sparsities) == pytest.approx(
        0.16
    )
    assert owl_sparsities([0.02, 0.02], target=0.5) == pytest.approx([0.5, 0.5])


def _tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("sparsity", ["0.5", "2:4"])
def test_a_whole_model_is_pruned_block_by_block_to_the_sparsity_asked(method, sparsity):
    model = _tiny_llama()
    dense = {name: p.clone() for name, p in model.named_parameters()}
    batches = [
        torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(i)) for i in range(3)
    ]
    chosen = Sparsity.parse(sparsity)
    layers = prune_language_model(model, batches, method, chosen)
    blocks = transformer_blocks(model)
    assert len(layers) == 3 * 7  # q, k, v, o, gate, up, down in each of the 3 blocks
    for layer in layers:
        assert layer.sparsity == pytest.approx(0.5, abs=1 / 64)
        weight = blocks[layer.block].get_submodule(layer.name).weight
        zeros = weight == 0
        if chosen.structured:
            assert torch.all(zeros.reshape(weight.shape[0], -1, 4).sum(-1) >= 2)
        assert int(zeros.sum()) >= layer.pruned
    # embeddings, norms and the output head are never pruned
    for name, parameter in model.named_parameters():
        if "embed" in name or "norm" in name or "lm_head" in name:
            assert torch.equal(parameter, dense[name])
    with torch.no_grad():
        assert math.isfinite(float(model(batches[0]).logits.sum()))


def test_prune_lm_cli_measures_every_variant_against_magnitude_and_resumes(run_cli, tmp_path):
    from tests.conftest import assert_results_layout
    from tests.tiny import tiny_causal_lm

    model = tiny_causal_lm(tmp_path / "tiny")
    args = [
        "prune-lm", "--model", str(model), "--runs-dir", str(tmp_path / "runs"),
        "--sparsity", "0.5", "--sparsity", "2:4", "--set", "owl=true",
        "--set", "calibration_sequences=4", "--set", "eval_windows=8",
        "--set", "sequence_length=32", "--set", "bootstrap_samples=200",
        "--set", "zero_shot.examples=24", "--set", "recovery.windows=6",
        "--set", "recovery.batch_size=3", "--set", "recovery.learning_rate=1e-3",
    ]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    run_dir = next((tmp_path / "runs").glob("prune-lm-*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert_results_layout(results)
    variants = results["variants"]
    assert list(variants) == [
        "magnitude 50%", "wanda 50%", "sparsegpt 50%",
        "magnitude 2:4", "wanda 2:4", "sparsegpt 2:4",
        "magnitude+owl 50%", "wanda+owl 50%", "sparsegpt+owl 50%",
    ]  # fmt: skip
    for label, variant in variants.items():
        # OWL's block fractions, floored per row of 32 or 64 weights, land a little lower
        slack = 0.03 if variant["owl"] else 0.01
        assert variant["sparsity_reached"] == pytest.approx(0.5, abs=slack), label
        assert variant["perplexity"]["value"] > 1
        if variant["owl"]:  # per-block sparsities around the target, their mean at it
            blocks = variant["block_sparsities"]
            assert len(blocks) == 2 and sum(blocks) / 2 == pytest.approx(0.5)
    assert variants["wanda 2:4"]["baseline"] == "magnitude 2:4"
    # zero-shot accuracy on the same 24 questions for every model, paired against magnitude
    assert results["zero_shot_task"] == "rotten-tomatoes" and results["zero_shot_examples"] == 24
    assert 0 <= results["dense_accuracy"]["value"] <= 1
    assert variants["wanda 50%"]["accuracy_minus_magnitude"]["value"] == pytest.approx(
        variants["wanda 50%"]["accuracy"]["value"] - variants["magnitude 50%"]["accuracy"]["value"]
    )
    # recovery: the fine-tuned model changed, and kept at least the pruned model's zeros
    for label, variant in variants.items():
        recovered = variant["recovered"]
        assert recovered["sparsity_reached"] >= variant["sparsity_reached"] - 1e-9, label
        assert recovered["perplexity"]["value"] != variant["perplexity"]["value"], label
    # OWL's block sparsities: one dense pass per target, shared by the three methods
    assert [p.name for p in (run_dir / "steps").glob("owl-*")] == ["owl-50pct.json"]
    assert len({tuple(v["block_sparsities"]) for v in variants.values() if v["owl"]}) == 1
    differences = [r for r in results["metrics"] if r["metric"] == "difference"]
    # log-perplexity and accuracy against magnitude (6 each), recovered against pruned (9)
    of = [r["of"] for r in differences]
    assert of.count("log-perplexity") == 6 + 9 and of.count("zero-shot accuracy") == 6
    said = " ".join(first.stdout.split())
    assert re.search(r"effect: wanda 50% (beats|does not clearly beat) magnitude 50%", said)
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "done in" not in (run_dir / "run.log").read_text().split("(resumed")[-1]
    # the same report pages and comparison as every command: tables, plot, effects
    other = run_cli(
        "prune-lm", "--model", str(model), "--runs-dir", str(tmp_path / "runs"), "--seed", "1",
        "--method", "magnitude", "--sparsity", "0.5", "--set", "calibration_sequences=4",
        "--set", "eval_windows=8", "--set", "sequence_length=32", "--set", "zero_shot.examples=0",
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    report = run_cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "report" / "prune.html").read_text()
    assert page.count('class="plot"') == 2 and "Recovery: each pruned model" in page
    assert "wanda 2:4 recovered" in page and "zero-shot accuracy" in page
    runs = sorted(p.name for p in (tmp_path / "runs").glob("prune-lm-*"))
    compared = run_cli("compare", *runs, "--runs-dir", str(tmp_path / "runs"))
    assert compared.returncode == 0, compared.stderr
    assert "dense perplexity" in compared.stdout and "magnitude 50%" in compared.stdout
