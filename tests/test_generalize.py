"""w2s generalize: the confidence loss by hand, caching without backbone passes, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import assert_results_layout, read_examples
from weak2strong.data import TaskConfig, split_halves
from weak2strong.generalize import Generalize, GeneralizeConfig, StrategyConfig
from weak2strong.generalize import pipeline as pipeline_module
from weak2strong.generalize.strategies import (
    confidence_weight,
    harden,
    strategy_loss,
    training_subset,
)
from weak2strong.models.adapters import LoraSettings
from weak2strong.models.features import FeatureConfig
from weak2strong.runs.results import values_by_model
from weak2strong.training import StepInfo


def _step(step: int, total: int) -> StepInfo:
    return StepInfo(step, total, gather=lambda tensor: tensor)


def test_confidence_loss_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 0.0]])
    weak = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    config = StrategyConfig(confidence_alpha=0.5, confidence_warmup=0.0)
    # weak positive fraction = mean(0.1, 0.8, 0.4, 0.7) = 0.5, so the student's two most
    # positive predictions (rows 1 and 3: p1 = 0.731, 0.450 vs 0.119, 0.378) are hardened to 1
    p = torch.softmax(logits, -1)
    assert p[:, 1].argsort(descending=True)[:2].tolist() == [1, 3]
    hardened = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    log_p = torch.log_softmax(logits, -1)
    ce_weak = -(weak * log_p).sum(1).mean()
    ce_self = -(hardened * log_p).sum(1).mean()
    expected = 0.5 * ce_weak + 0.5 * ce_self
    assert torch.equal(harden(p, weak), hardened)
    confidence = strategy_loss("confidence", config)(logits, weak, _step(10, 100))
    assert confidence.shape == (4,)  # per example: the loop averages over the global batch
    assert confidence.mean().item() == pytest.approx(expected.item())
    naive = strategy_loss("naive", config)(logits, weak, _step(10, 100))
    assert naive.mean().item() == pytest.approx(ce_weak.item())


def test_confidence_warmup_is_a_linear_ramp_without_jumps():
    config = StrategyConfig(confidence_alpha=0.75, confidence_warmup=0.2)
    weights = [confidence_weight(step, 1000, config) for step in range(1001)]
    assert weights[0] == 0.0
    assert weights[100] == pytest.approx(0.375)
    assert weights[200] == pytest.approx(0.75) and weights[-1] == pytest.approx(0.75)
    assert max(np.diff(weights)) == pytest.approx(0.75 / 200)


def test_confident_subset_keeps_the_most_confident_weak_labels():
    weak = np.array([[0.5, 0.5], [0.9, 0.1], [0.4, 0.6], [0.05, 0.95]])
    assert training_subset("confident-subset", weak, StrategyConfig(subset_keep=0.5)).tolist() == [
        1,
        3,
    ]
    assert training_subset("naive", weak, StrategyConfig()).tolist() == [0, 1, 2, 3]


def _small_config(**overrides) -> GeneralizeConfig:
    base = GeneralizeConfig(
        task=TaskConfig(name="rotten-tomatoes", max_per_split=48),
        weak="smollm2-135m-instruct",
        strong="smollm2-135m-instruct",
        strategies=["naive", "confidence", "confident-subset"],
        features=FeatureConfig(max_length=32, batch_size=16),
        bootstrap_samples=200,
        show_progress=False,
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def test_halves_are_disjoint_stratified_and_seeded():
    from weak2strong.data import load_task

    train = load_task(TaskConfig(name="rotten-tomatoes", max_per_split=100)).split("train")
    a, b = split_halves(train, seed=0)
    assert not {e.text for e in a} & {e.text for e in b}
    assert sum(e.label for e in a) == sum(e.label for e in b) == 25
    assert split_halves(train, seed=0) == (a, b) and split_halves(train, seed=1) != (a, b)


def test_end_to_end_then_cached_rerun_without_backbone_passes(tmp_path, monkeypatch):
    config = _small_config(
        strategies=["naive", "confidence", "confident-subset", "bootstrap"],
        strategy=StrategyConfig(intermediate="smollm2-135m-instruct"),
    )
    run, results = Generalize(config, str(tmp_path)).run()
    assert_results_layout(results)
    assert set(values_by_model(results)) == {
        "weak",
        "w2s:naive",
        "w2s:confidence",
        "w2s:confident-subset",
        "w2s:bootstrap",
        "ceiling",
    }
    assert run.is_done("intermediate-fold0-probs", ".safetensors")
    assert run.is_done("intermediate-fold1-probs", ".safetensors")
    assert results["sizes"] == {"weak_train_a": 24, "student_train_b": 24, "test": 48}
    assert results["warnings"] == [
        "the intervals rest on 48 test examples (fewer than 100): too few to read a "
        "difference as real"
    ]
    assert 0.0 <= values_by_model(results)["ceiling"]["accuracy"] <= 1.0
    assert set(results["bootstrap"]["accuracy"]["models"]) >= {"weak", "ceiling"}
    pgr = [r for r in results["metrics"] if r["metric"] == "pgr" and r["of"] == "accuracy"]
    assert {r["model"] for r in pgr} == {f"w2s:{s}" for s in config.strategies}
    examples = read_examples(run.path)
    assert len(examples) == 48 and {"id", "text", "gold", "weak", "w2s:naive", "ceiling"} <= set(
        examples[0]
    )
    for model in ("weak", "w2s:naive", "ceiling"):  # the records reproduce the metrics
        hits = [max(range(2), key=row[model].__getitem__) == row["gold"] for row in examples]
        assert sum(hits) / len(hits) == pytest.approx(values_by_model(results)[model]["accuracy"])
    # one model, three text sets: weak (A, B, test), strong (B, test), intermediate (B)
    assert len(list((tmp_path / "shared").glob("features-*.safetensors"))) == 3

    def forbidden(*args, **kwargs):
        raise AssertionError("a backbone was loaded or run on a cached rerun")

    monkeypatch.setattr(pipeline_module, "extract_features", forbidden)
    monkeypatch.setattr(pipeline_module, "load_encoder", forbidden)
    again_run, again = Generalize(config, str(tmp_path)).run()
    assert again_run.path == run.path
    assert again["metrics"] == results["metrics"]

    # A new strategy set is a new run, but reuses the cached features and re-trains heads only.
    _, subset_only = Generalize(_small_config(strategies=["confident-subset"]), str(tmp_path)).run()
    assert values_by_model(subset_only)["ceiling"] == values_by_model(results)["ceiling"]


def test_interrupted_run_resumes_at_the_unfinished_step(tmp_path, monkeypatch):
    config = _small_config(weak="lexicon:vader")
    real_fit = pipeline_module.fit
    calls: list[str] = []

    def crash_on_confidence(*args, curves_settings, **kwargs):
        strategy = curves_settings["strategy"]
        calls.append(strategy)
        if strategy == "confidence" and len(calls) < 5:
            raise KeyboardInterrupt
        return real_fit(*args, curves_settings=curves_settings, **kwargs)

    monkeypatch.setattr(pipeline_module, "fit", crash_on_confidence)
    with pytest.raises(KeyboardInterrupt):
        Generalize(config, str(tmp_path)).run()
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("generalize-")]
    assert not (folder / "results.json").exists()
    calls.clear()
    calls.extend(["filler"] * 4)  # let the retry through
    _, results = Generalize(config, str(tmp_path)).run()
    assert calls[4:] == [
        "confidence",
        "confident-subset",
        "naive",
    ]  # naive is the ceiling; w2s-naive was cached
    assert json.loads((folder / "results.json").read_text())["metrics"] == results["metrics"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--strategy", "magic"], "'strategies' must be one of naive,"),
        (["--strategy", "bootstrap"], "needs an intermediate model"),
        (["--task", "safety", "--weak", "lexicon:vader"], "is not a two-class sentiment task"),
        (["--weak", "lexicon:textblob"], "unknown lexicon 'textblob'"),
        (["--strong", "lexicon:vader"], "strong student must be a model"),
        (
            [
                "--task",
                "rotten-tomatoes",
                "--weak",
                "lexicon:vader",
                "--strong",
                "smollm2-135m-instruct",
                "--set",
                "task.max_per_split=2",
            ],
            "use more data",
        ),
    ],
)
def test_bad_input_exit_2(run_cli, tmp_path, args, fragment):
    result = run_cli("generalize", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and fragment in result.stderr
    assert not (tmp_path / "runs").exists()


def test_lora_student_trains_only_adapters_and_head_and_fits_its_labels():
    from weak2strong.data import load_task
    from weak2strong.generalize import FinetuneConfig
    from weak2strong.models import load_encoder
    from weak2strong.training import TextClassifier, fit, predict_proba

    examples = load_task(TaskConfig(name="rotten-tomatoes", max_per_split=16)).split("train")
    texts, labels = [e.text for e in examples], np.array([e.label for e in examples])
    backbone, tokenizer = load_encoder("smollm2-135m-instruct", device="cpu")
    config = FinetuneConfig(
        lora=LoraSettings(rank=4), max_length=32, batch_size=8, learning_rate=2e-3
    )
    student = TextClassifier(backbone, tokenizer, 2, lora=config.lora, max_length=config.max_length)
    trainable = {name for name, p in student.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name or name.startswith("head.") for name in trainable)
    frozen_before = {
        n: p.detach().clone() for n, p in student.named_parameters() if not p.requires_grad
    }
    fit(
        student,
        texts,
        np.eye(2, dtype=np.float32)[labels],
        FinetuneConfig(epochs=6, batch_size=8, learning_rate=2e-3, weight_decay=0.0),
        seed=0,
    )
    assert (predict_proba(student, texts).argmax(1) == labels).mean() >= 0.9
    for name, parameter in student.named_parameters():
        if name in frozen_before:
            assert torch.equal(parameter, frozen_before[name]), name


def test_finetune_regime_end_to_end(tmp_path):
    from weak2strong.generalize import FinetuneConfig

    config = _small_config(
        weak="lexicon:vader",
        strategies=["confidence"],
        regime="finetune",
        finetune=FinetuneConfig(lora=LoraSettings(rank=4), epochs=1, batch_size=8, max_length=32),
    )
    run, results = Generalize(config, str(tmp_path)).run()
    assert results["regime"] == "finetune"
    assert set(values_by_model(results)) == {"weak", "w2s:confidence", "ceiling"}
    assert not (tmp_path / "shared").exists()  # no feature cache: the backbone itself trains
    assert {p.name for p in (run.path / "steps").iterdir()} == {
        "weak-probs.safetensors",
        "w2s-confidence-probs.safetensors",
        "ceiling-probs.safetensors",
    }


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "prompts=poems"], "unknown prompt set 'poems'"),
        (["--set", "scorer.name=helpfulness"], "unknown scorer 'helpfulness'"),
        (["--task", "imdb"], "No such option '--task'"),
    ],
)
def test_generative_bad_input_exit_2(run_cli, tmp_path, args, fragment):
    result = run_cli("generalize", "--generative", "--strong", "smollm2-135m-instruct", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and fragment in result.stderr
    assert not (tmp_path / "runs").exists()


TRAIN_A_PROBE = """
import sys
import numpy as np
import torch
from weak2strong.generalize.config import ProbeConfig
from weak2strong.training import Probe, fit, predict_proba

if sys.argv[1] == "after-bf16":
    from accelerate import Accelerator
    Accelerator(mixed_precision="bf16", cpu=True)  # the process-wide state TRL's DPO leaves
generator = torch.Generator().manual_seed(0)
features = torch.randn(64, 8, generator=generator)
targets = np.eye(2, dtype=np.float32)[(features[:, 0] > 0).long().numpy()]
torch.manual_seed(0)
model = fit(Probe(features, 2, 0), features, targets, ProbeConfig(epochs=3), seed=0)
print(predict_proba(model, features, description="probe").tolist())
"""


def test_the_training_loop_ignores_a_mixed_precision_another_library_left():
    """accelerate's state is one per process: a loop run after a DPO tune in the same
    process (the Python API) must give the numbers it gives in a fresh process."""
    import subprocess
    import sys

    from tests.conftest import w2s_environment

    outputs = []
    for before in ("fresh", "after-bf16"):
        result = subprocess.run(
            [sys.executable, "-c", TRAIN_A_PROBE, before],
            env=w2s_environment(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.strip().splitlines()[-1])
    assert outputs[0] == outputs[1]
