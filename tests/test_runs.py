"""Configs load, override and hash stably; run folders cache steps and resume; writes are atomic."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from weak2strong.data import TaskConfig
from weak2strong.errors import W2SError
from weak2strong.fileio import atomic_open, read_json
from weak2strong.runs import Run, config_hash, load_config


@dataclass
class ExampleConfig:
    seed: int = 0
    model: str = "smollm2-135m-instruct"
    learning_rate: float = 1e-3
    layers: list[int] = field(default_factory=lambda: [1, 2])
    task: TaskConfig = field(default_factory=TaskConfig)
    progress: bool = field(default=True, metadata={"hash": False})


def test_defaults_hash_is_pinned():
    # Pinned: changing it renames every existing run folder. Bump only on purpose.
    assert config_hash(ExampleConfig()) == "2ecd6553da"
    assert config_hash(ExampleConfig(seed=1)) == "216d42d39d"


def test_a_results_version_above_one_renames_the_run_and_is_recorded(tmp_path):
    from typing import ClassVar

    @dataclass
    class ExampleConfig2(ExampleConfig):
        RESULTS_VERSION: ClassVar[int] = 2

    @dataclass
    class ExampleConfigV1(ExampleConfig):
        RESULTS_VERSION: ClassVar[int] = 1

    ExampleConfig2.__name__ = ExampleConfigV1.__name__ = "ExampleConfig"
    assert config_hash(ExampleConfigV1()) == config_hash(ExampleConfig()) == "2ecd6553da"
    assert config_hash(ExampleConfig2()) != config_hash(ExampleConfig())
    run = Run.open("example", ExampleConfig2(), tmp_path)
    path = run.write_results({"value": 1}, [])
    run.close()
    assert read_json(path)["results_version"] == 2
    assert read_json(run.path / "env.json")["results_version"] == 2


def test_hash_ignores_defaults_order_and_non_result_fields():
    explicit = ExampleConfig(
        seed=0, learning_rate=1e-3, task=TaskConfig(name="imdb"), progress=False
    )
    assert config_hash(explicit) == config_hash(ExampleConfig())
    assert config_hash(ExampleConfig(task=TaskConfig(name="safety"))) != config_hash(
        ExampleConfig()
    )


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"seed": 3, "task": {"name": "safety"}, "layers": [4]}))
    config = load_config(
        ExampleConfig, path, ["learning_rate=3e-4", "task.max_per_split=100", "layers=5,6"]
    )
    assert config == ExampleConfig(
        seed=3, learning_rate=3e-4, layers=[5, 6], task=TaskConfig(name="safety", max_per_split=100)
    )
    assert load_config(ExampleConfig, None, ["task.max_per_split=null"]).task.max_per_split is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sed=1", "unknown config key 'sed'"),
        ("task.nme=imdb", "unknown config key 'task.nme'"),
        ("seed=one", "must be a number"),
        ("seed=1.5", "must be an integer"),
        ("progress=maybe", "must be true or false"),
        ("seed", "malformed override 'seed'"),
        ("task=imdb", "config section 'task' must be a mapping"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(W2SError, match=message):
        load_config(ExampleConfig, None, [override])


def test_run_folder_contents_and_resume(tmp_path):
    config = ExampleConfig(seed=7)
    run = Run.open("example", config, tmp_path)
    assert run.path == tmp_path / f"example-{config_hash(config)}"
    assert yaml.safe_load((run.path / "config.yaml").read_text())["seed"] == 7
    env = read_json(run.path / "env.json")
    assert env["seed"] == 7 and env["versions"]["torch"] and len(env["attempts"]) == 1
    calls: list[str] = []

    def first() -> dict:
        calls.append("first")
        return {"value": 1}

    def crash() -> dict:
        raise KeyboardInterrupt

    assert run.cached_json("first", first) == {"value": 1}
    with pytest.raises(KeyboardInterrupt):
        run.cached_json("second", crash)
    run.close()
    assert not run.is_done("second")
    assert not list((run.path / "steps").glob(".*tmp"))

    resumed = Run.open("example", config, tmp_path)
    assert resumed.path == run.path
    assert resumed.cached_json("first", first) == {"value": 1}
    assert resumed.cached_json("second", lambda: {"value": 2}) == {"value": 2}
    assert calls == ["first"]  # the finished step was not recomputed
    assert len(read_json(run.path / "env.json")["attempts"]) == 2
    assert "cached" in (run.path / "run.log").read_text()
    resumed.close()


def test_cached_tensors_round_trip(tmp_path):
    import torch

    run = Run.open("example", ExampleConfig(), tmp_path)
    features = run.cached_tensors("features", lambda: {"x": torch.arange(6.0).reshape(2, 3)})
    again = run.cached_tensors("features", lambda: pytest.fail("recomputed"))
    assert torch.equal(features["x"], again["x"])
    assert run.step_path("features", ".safetensors").is_file()
    run.close()


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_reopening_with_only_unhashed_changes_is_the_same_run(tmp_path):
    first = Run.open("example", ExampleConfig(progress=True), tmp_path)
    first.close()
    second = Run.open("example", ExampleConfig(progress=False), tmp_path)
    assert second.path == first.path
    second.close()


def test_same_hash_but_different_stored_settings_is_refused(tmp_path):
    run = Run.open("example", ExampleConfig(), tmp_path)
    run.close()
    stored = yaml.safe_load((run.path / "config.yaml").read_text())
    stored["learning_rate"] = 0.5  # as if a default had changed between versions
    (run.path / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(W2SError, match="differs from this run's config at learning_rate"):
        Run.open("example", ExampleConfig(), tmp_path)


def test_a_new_option_at_its_default_keeps_old_runs(tmp_path):
    run = Run.open("example", ExampleConfig(), tmp_path)
    run.close()
    stored = yaml.safe_load((run.path / "config.yaml").read_text())
    del stored["task"]["revision"]  # as if written before the option existed
    (run.path / "config.yaml").write_text(yaml.safe_dump(stored))
    again = Run.open("example", ExampleConfig(), tmp_path)
    assert again.path == run.path
    again.close()


# Pinned before the training layer moved out of generalize (issue 13): a refactor must not
# rename the run folder of any real command's config, or every cached run is orphaned.
COMMAND_HASHES = [
    ("weak2strong.generalize:GeneralizeConfig", None, [], "94f0458079"),
    ("weak2strong.generalize.generative:GenerativeConfig", None, [], "2ac5f97cff"),
    # results version 2 (per-sequence seeds) renamed search's folders on purpose: e96ac830a3
    ("weak2strong.search:SearchConfig", None, [], "0809cfe23f"),
    ("weak2strong.tune:TuneConfig", None, [], "98c8f42078"),
    ("weak2strong.extrapolate.config:ExtrapolateConfig", None, [], "c3ea935ad9"),
    ("weak2strong.prune.experiment:PruneConfig", None, [], "2b02017f7f"),
    ("weak2strong.check:CheckConfig", None, [], "bd78bc37ef"),
    # the demos (issue 17): `make demo` and the full-size `make demo-<method>`; issue 28
    # changed `make demo`'s generalize, search and ExPO settings on purpose
    ("weak2strong.generalize:GeneralizeConfig", "demo/generalize.yaml", [], "b0c47d6972"),
    ("weak2strong.search:SearchConfig", "demo/search.yaml", [], "66a7575af7"),
    ("weak2strong.extrapolate.config:ExtrapolateConfig", "demo/extrapolate.yaml", [], "bcb2b955e1"),
    ("weak2strong.prune.experiment:PruneConfig", "demo/prune.yaml", [], "16b2f6cb3e"),
    ("weak2strong.generalize:GeneralizeConfig", "full/generalize.yaml", [], "2b38a42789"),
    ("weak2strong.search:SearchConfig", "full/search.yaml", [], "9d3770ded7"),
    ("weak2strong.extrapolate.config:ExtrapolateConfig", "full/extrapolate.yaml", [], "64315f12d8"),
    ("weak2strong.prune.experiment:PruneConfig", "full/prune.yaml", [], "54c5aba68e"),
    (
        "weak2strong.generalize:GeneralizeConfig",
        None,
        ["regime=finetune", "strategies=[naive,confidence]", "finetune.lora.rank=0"],
        "2ec3032988",
    ),
    (
        "weak2strong.prune.experiment:PruneConfig",
        None,
        [
            "weak=lexicon:vader",
            "lottery.baselines=[random,oneshot-magnitude,snip,grasp,synflow,reinit]",
        ],
        "8f3d1a036a",
    ),
]


@pytest.mark.parametrize(("target", "config_file", "overrides", "expected"), COMMAND_HASHES)
def test_real_command_configs_keep_their_run_folders(target, config_file, overrides, expected):
    import importlib
    from pathlib import Path

    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    path = Path(__file__).parents[1] / "configs" / config_file if config_file else None
    assert config_hash(load_config(cls, path, overrides)) == expected


def test_small_samples_warn_and_large_ones_do_not():
    from weak2strong.runs.results import PROMPTS, metric_record, small_sample_warnings

    def records(n: int) -> list[dict]:
        return [metric_record("reward", "cbs", {"value": 1.0, "low": 0.5, "high": 1.5, "n": n})]

    assert small_sample_warnings(records(4), PROMPTS) == [
        "the intervals rest on 4 prompts (fewer than 20): too few to read a difference as real"
    ]
    assert small_sample_warnings(records(20), PROMPTS) == []
    seeds = [metric_record("accuracy", "imp", {"value": 0.7, "n": 3}, kind="seeds")]
    assert small_sample_warnings(seeds, PROMPTS) == []  # no interval: nothing to over-read


def test_a_tuned_model_at_chance_is_flagged():
    from weak2strong.runs.typed import Estimate
    from weak2strong.tune import chance_warning
    from weak2strong.tune.results import TuneResults

    def results(accuracy: float, low: float | None = None, high: float | None = None):
        return TuneResults(
            method="dpo",
            base="smollm2-135m-instruct",
            model="/runs/tune-x/model",
            heldout_pairs=32,
            heldout_accuracy=Estimate(accuracy, low, high, 32),
            heldout_margin=Estimate(0.1, None, None, 32),
        )

    assert "only 25% of pairs (chance: 50%)" in (chance_warning(results(0.25)) or "")
    assert chance_warning(results(0.5)) is not None
    assert chance_warning(results(0.75)) is None
    # above 50% but with an interval that reaches chance (seen: 53% [38%, 69%] on 32 pairs)
    assert "not distinguishable from chance" in (chance_warning(results(0.53, 0.38, 0.69)) or "")
    assert chance_warning(results(0.75, 0.6, 0.88)) is None


def test_an_earlier_model_name_is_the_same_run_under_the_models_current_name():
    """The embedded Qwen models are Coder checkpoints and are named so; configs that use the
    earlier names resolve to them and keep their run folders."""
    from weak2strong.generalize import GeneralizeConfig
    from weak2strong.models.loading import model_fingerprint

    old = load_config(GeneralizeConfig, None, ["strong=qwen2.5-0.5b-instruct"])
    new = load_config(GeneralizeConfig, None, ["strong=qwen2.5-coder-0.5b-instruct"])
    assert old.strong == new.strong == "qwen2.5-coder-0.5b-instruct"
    assert config_hash(old) == config_hash(new) == config_hash(GeneralizeConfig()) == "94f0458079"
    # caches keyed by the model (features, run inputs) stay those made under the earlier name
    assert model_fingerprint("qwen2.5-0.5b-instruct") == model_fingerprint(new.strong)
    assert model_fingerprint(new.strong)["name"] == "qwen2.5-0.5b-instruct"


def test_typed_results_round_trip_through_json_and_read_older_layouts():
    from weak2strong.runs.typed import Estimate, from_json, to_json
    from weak2strong.search.results import CurvePoint, MethodOutcome, SearchResults

    outcome = MethodOutcome(
        label="cbs(2,2,4)",
        reward=Estimate(1.5, 0.5, 2.5, 20),
        reward_minus_sample=None,
        sampled_tokens=640,
        tokens_per_prompt=32.0,
        seconds=1.25,
        finished_fraction=0.5,
    )
    results = SearchResults(
        large="l", tuned="t", untuned="u", prompts="imdb", test_prompts=20, new_tokens=16,
        scorer="sentiment", methods={"cbs": outcome},
    )  # fmt: skip
    payload = to_json(results)
    # absent optional parts stay out of results.json, as before results were typed
    assert "curve" not in payload and "gold_scorer" not in payload
    assert "undefined" not in payload["methods"]["cbs"]["reward"]
    assert payload["methods"]["cbs"]["reward_minus_sample"] is None
    assert from_json(SearchResults, payload) == results
    # results.json's common layout around the detail is ignored; a curve is read as points
    point = {"method": "bon", "n": 4, "label": "bon-4", "tokens_per_prompt": 8.0,
             "reward": {"value": None, "low": None, "high": None, "n": 20, "undefined": "why"},
             "reward_minus_sample": None, "seconds": None}  # fmt: skip
    read = from_json(SearchResults, {**payload, "schema": "x", "metrics": [], "curve": [point]})
    assert read.curve == [
        CurvePoint(
            method="bon", n=4, label="bon-4", reward=Estimate(None, None, None, 20, "why"),
            reward_minus_sample=None, tokens_per_prompt=8.0, seconds=None,
        )
    ]  # fmt: skip
    # a results.json written before the backends' start-up was timed: its defaults
    older = {
        key: value
        for key, value in payload.items()
        if key not in ("startup_seconds", "dtypes", "backend")
    }
    assert from_json(SearchResults, older).backend == "transformers"
    assert from_json(SearchResults, older).startup_seconds == {}
