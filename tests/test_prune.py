"""Lottery tickets: masks, rewinding, IMP sparsity, each strategy's scores by hand, resume."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tests.conftest import assert_results_layout, read_examples
from weak2strong.errors import W2SError
from weak2strong.prune import Masks, ScoringInputs, one_shot_scores, prune, prune_lowest
from weak2strong.prune.lottery import Lottery, LotterySettings, TicketProblem, state_of
from weak2strong.prune.strategies import synflow_prune
from weak2strong.runs import Run


@dataclass
class TinyConfig:
    seed: int = 0
    name: str = "tiny"


def mlp(seed: int, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16, bias=bias), nn.ReLU(), nn.Linear(16, 2, bias=bias))


def blobs(seed: int, count: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (count,), generator=generator)
    features = torch.randn(count, 8, generator=generator) + 1.5 * labels[:, None].float()
    return features, labels


class TinyProblem:
    """A two-layer MLP on Gaussian blobs, trained by SGD with momentum and weight decay."""

    def __init__(self, steps: int = 12, fail_on_call: int | None = None) -> None:
        self.steps = steps
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.start_states: list[dict[str, torch.Tensor]] = []
        self.snapshots: list[dict[int, dict[str, torch.Tensor]]] = []
        self.pruned_grads_seen: list[float] = []
        self.train_x, self.train_y = blobs(0)
        self.test_x, self.test_y = blobs(1)

    def problem(self) -> TicketProblem:
        return TicketProblem(
            build=mlp, train=self.train, evaluate=self.evaluate, scoring=self.scoring
        )

    def train(self, model: nn.Module, after_step, seed: int) -> None:
        self.calls += 1
        if self.fail_on_call == self.calls:
            raise KeyboardInterrupt
        self.start_states.append(state_of(model))
        snapshots: dict[int, dict[str, torch.Tensor]] = {}
        optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
        generator = torch.Generator().manual_seed(seed)
        for step in range(1, self.steps + 1):
            batch = torch.randint(0, len(self.train_y), (32,), generator=generator)
            loss = nn.functional.cross_entropy(model(self.train_x[batch]), self.train_y[batch])
            optimiser.zero_grad()
            loss.backward()
            zero_weights = model[0].weight.detach() == 0
            if zero_weights.any():
                self.pruned_grads_seen.append(float(model[0].weight.grad[zero_weights].abs().max()))
            optimiser.step()
            after_step(step)
            snapshots[step] = state_of(model)
        self.snapshots.append(snapshots)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> float:
        return float((model(self.test_x).argmax(1) == self.test_y).float().mean())

    def scoring(self, seed: int) -> ScoringInputs:
        return ScoringInputs(
            batch_logits=lambda model: (model(self.train_x[:32]), self.train_y[:32]),
            ones_output=lambda model: model(torch.ones(1, 8, dtype=torch.float64)),
            seed=seed,
            synflow_iterations=10,
        )


def open_run(tmp_path, name: str = "tiny") -> Run:
    return Run.open("prune", TinyConfig(name=name), tmp_path / "runs")


def test_masks_keep_pruned_weights_and_gradients_at_zero(tmp_path):
    tiny = TinyProblem()
    lottery = Lottery(tiny.problem(), LotterySettings(rounds=2, baselines=[]), open_run(tmp_path))
    lottery.imp(seed=0)
    masks = Masks.load(lottery.run.step_path("seed0-round2-masks", ".safetensors"))
    trained = lottery.run.cached_tensors("seed0-round2-trained", dict)
    for name, mask in masks.items():
        assert torch.all(trained[name][~mask] == 0)  # momentum and weight decay revived none
        assert mask.sum() < mask.numel()
    assert tiny.pruned_grads_seen and max(tiny.pruned_grads_seen) == 0.0
    # and directly: the hook zeroes gradients of pruned weights, and only those
    model = mlp(0)
    masks = prune("random", model, Masks.dense({"0.weight": model[0].weight}), 0.5, "global")
    from weak2strong.prune import masked_gradients

    with masked_gradients(model, masks):
        model(torch.randn(4, 8)).sum().backward()
    grad = model[0].weight.grad
    assert torch.all(grad[~masks["0.weight"]] == 0) and torch.any(grad[masks["0.weight"]] != 0)


@pytest.mark.parametrize("rewind_step", [0, 3])
def test_rewinding_restores_the_recorded_weights_exactly(tmp_path, rewind_step):
    tiny = TinyProblem()
    settings = LotterySettings(rounds=2, rewind_step=rewind_step, baselines=[])
    lottery = Lottery(tiny.problem(), settings, open_run(tmp_path, f"rewind{rewind_step}"))
    lottery.imp(seed=0)
    dense_start = tiny.start_states[0]
    recorded = dense_start if rewind_step == 0 else tiny.snapshots[0][rewind_step]
    assert len(tiny.start_states) == 3  # dense + two rounds
    for round_number, start in enumerate(tiny.start_states[1:], start=1):
        masks = Masks.load(
            lottery.run.step_path(f"seed0-round{round_number}-masks", ".safetensors")
        )
        for name, value in start.items():
            expected = recorded[name] * masks[name] if name in masks.masks else recorded[name]
            assert torch.equal(value, expected), (round_number, name)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_after_n_rounds_is_one_minus_keep_to_the_n(tmp_path, scope):
    tiny = TinyProblem(steps=3)
    settings = LotterySettings(rounds=4, fraction=0.2, scope=scope, baselines=[])
    rounds = Lottery(tiny.problem(), settings, open_run(tmp_path, scope)).imp(seed=0)
    total = 8 * 16 + 16 * 2
    for entry in rounds:
        expected_kept = total * 0.8 ** entry["round"]
        kept = round((1 - entry["sparsity"]) * total)
        # one weight of rounding per round (per layer with layer scope)
        tolerance = entry["round"] * (1 if scope == "global" else 2)
        assert abs(kept - expected_kept) <= tolerance + 1e-9, entry
    assert [e["round"] for e in rounds] == [0, 1, 2, 3, 4]


def test_prune_lowest_removes_exactly_the_smallest_scores():
    scores = {"a": torch.tensor([[0.5, -3.0], [2.0, 0.1]]), "b": torch.tensor([1.0, 0.2, 4.0])}
    dense = Masks({k: torch.ones_like(v, dtype=torch.bool) for k, v in scores.items()})
    pruned = prune_lowest(scores, dense, 3 / 7, "global")  # 3 of 7 go: −3.0, 0.1, 0.2
    assert pruned["a"].tolist() == [[True, False], [True, False]]
    assert pruned["b"].tolist() == [True, False, True]
    layer = prune_lowest(scores, dense, 0.5, "layer")  # 2 of 4 in a, round(1.5)=2 of 3 in b
    assert layer["a"].tolist() == [[True, False], [True, False]]
    assert layer["b"].tolist() == [False, False, True]
    again = prune_lowest(scores, pruned, 0.5, "global")  # only kept weights are ranked
    assert again.kept() == 2 and bool(again["b"][2]) and not bool(again["b"][1])
    with pytest.raises(W2SError):
        prune_lowest(scores, dense, 1.0, "global")


def test_magnitude_and_random_scores():
    model = mlp(0)
    masks = Masks.dense({"0.weight": model[0].weight, "2.weight": model[2].weight})
    magnitude = one_shot_scores("magnitude", model, masks)
    assert torch.equal(magnitude["0.weight"], model[0].weight.detach().abs())
    inputs = TinyProblem().scoring(seed=5)
    first = one_shot_scores("random", model, masks, inputs)
    assert torch.equal(
        first["2.weight"], one_shot_scores("random", model, masks, inputs)["2.weight"]
    )
    pruned = prune("random", model, masks, 0.5, "global", inputs)
    assert pruned.kept() == masks.total() - round(0.5 * masks.total())


def test_snip_scores_are_weight_times_gradient_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2, bias=False))
    x = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.7, -1.0]])
    y = torch.tensor([1, 0])
    inputs = ScoringInputs(batch_logits=lambda m: (m(x), y), ones_output=lambda m: m(x))
    masks = Masks.dense({"0.weight": model[0].weight})
    scores = one_shot_scores("snip", model, masks, inputs)["0.weight"]
    weight = model[0].weight.detach()
    probabilities = torch.softmax(x @ weight.T, dim=1)
    gradient = (probabilities - nn.functional.one_hot(y, 2).float()).T @ x / len(y)
    torch.testing.assert_close(scores, (weight * gradient).abs())


def test_grasp_scores_are_weight_times_hessian_gradient():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    x = torch.randn(5, 3)
    y = torch.tensor([0, 1, 1, 0, 1])
    temperature = 2.0
    inputs = ScoringInputs(
        batch_logits=lambda m: (m(x), y), ones_output=lambda m: m(x), grasp_temperature=temperature
    )
    masks = Masks.dense({"0.weight": model[0].weight, "2.weight": model[2].weight})
    scores = one_shot_scores("grasp", model, masks, inputs)
    first, second = model[0].weight.detach(), model[2].weight.detach()

    def loss(flat: torch.Tensor) -> torch.Tensor:
        w1, w2 = flat[:12].reshape(4, 3), flat[12:].reshape(2, 4)
        logits = torch.tanh(x @ w1.T) @ w2.T
        return nn.functional.cross_entropy(logits / temperature, y)

    theta = torch.cat([first.flatten(), second.flatten()])
    gradient = torch.autograd.functional.jacobian(loss, theta)
    hessian = torch.autograd.functional.hessian(loss, theta)
    expected = theta * (hessian @ gradient)
    torch.testing.assert_close(scores["0.weight"].flatten(), expected[:12], rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(scores["2.weight"].flatten(), expected[12:], rtol=1e-4, atol=1e-9)


def test_synflow_scores_by_hand_for_a_linear_path_network():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    first, second = model[0].weight.detach().abs(), model[2].weight.detach().abs()
    inputs = ScoringInputs(
        batch_logits=lambda m: (m(torch.ones(1, 3)), torch.tensor([0])),
        ones_output=lambda m: m(torch.ones(1, 3, dtype=torch.float64)),
        synflow_iterations=1,
    )
    masks = Masks.dense({"0.weight": model[0].weight, "2.weight": model[2].weight})
    # R = 1ᵀ|W2||W1|1: ∂R/∂W1[i,j] = Σ_k |W2[k,i]|, ∂R/∂W2[k,i] = Σ_j |W1[i,j]|
    by_hand = {
        "0.weight": first * second.sum(0)[:, None],
        "2.weight": second * first.sum(1)[None, :],
    }
    expected = prune_lowest(by_hand, masks, 0.4, "global")
    produced = synflow_prune(model, masks, 0.4, "global", inputs)
    for name in by_hand:
        assert torch.equal(produced[name], expected[name]), name
    assert model[0].weight.min() < 0  # the probe copy, not the model, was made absolute


def test_interrupted_imp_resumes_at_the_next_round(tmp_path):
    settings = LotterySettings(rounds=3, baselines=[])
    interrupted = TinyProblem(fail_on_call=3)  # dense, round 1, then dies in round 2
    with pytest.raises(KeyboardInterrupt):
        Lottery(interrupted.problem(), settings, open_run(tmp_path)).imp(seed=0)
    resumed = TinyProblem()
    rounds = Lottery(resumed.problem(), settings, open_run(tmp_path)).imp(seed=0)
    assert resumed.calls == 2  # rounds 2 and 3 only
    fresh = TinyProblem()
    again = Lottery(fresh.problem(), settings, open_run(tmp_path, "fresh")).imp(seed=0)
    assert [r["metric"] for r in rounds] == [r["metric"] for r in again]
    assert [r["sparsity"] for r in rounds] == [r["sparsity"] for r in again]


def test_baselines_run_at_the_imp_sparsities(tmp_path):
    tiny = TinyProblem(steps=4)
    settings = LotterySettings(rounds=2)
    lottery = Lottery(tiny.problem(), settings, open_run(tmp_path))
    imp = lottery.imp(seed=0)
    for method in settings.baselines:
        results = lottery.baseline(method, seed=0)
        assert [r["round"] for r in results] == [1, 2]
        for entry, reference in zip(results, imp[1:], strict=True):
            assert entry["sparsity"] == pytest.approx(reference["sparsity"], abs=2 / 160), method
            assert 0.0 <= entry["metric"] <= 1.0
    # reinit: the ticket's masks over freshly drawn prunable weights, the rest as at init
    reinit_start, init = tiny.start_states[-1], tiny.start_states[0]
    assert not torch.equal(reinit_start["0.weight"], init["0.weight"])
    assert torch.equal(reinit_start["0.bias"], init["0.bias"])
    reinit_masks = Masks.load(lottery.run.step_path("seed0-reinit-round2-masks", ".safetensors"))
    ticket_masks = Masks.load(lottery.run.step_path("seed0-round2-masks", ".safetensors"))
    assert all(torch.equal(reinit_masks[name], ticket_masks[name]) for name in ticket_masks)
    for method in settings.baselines:  # every baseline's masks are kept
        assert lottery.run.step_path(f"seed0-{method}-round1-masks", ".safetensors").is_file()


def test_prune_cli_weak_to_strong_tickets_end_to_end(run_cli, tmp_path):
    """The default text student, tiny: IMP + two baselines, two seeds, weak labels, rerun cached."""
    args = [
        "prune", "--rounds", "2", "--weak", "lexicon:vader",
        "--baseline", "random", "--baseline", "reinit", "--runs-dir", str(tmp_path / "runs"),
        "--set", "seeds=[0,1]", "--set", "train_examples=32", "--set", "test_examples=24",
        "--set", "student.max_length=16", "--set", "student.batch_size=16",
    ]  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    run_dir = next((tmp_path / "runs").glob("prune-*"))
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["curves"]) == ["imp", "random", "reinit"]
    imp = results["curves"]["imp"]
    assert [p["round"] for p in imp] == [0, 1, 2]
    assert [round(p["sparsity"], 3) for p in imp] == [0.0, 0.2, 0.36]
    assert all(len(p["per_seed"]) == 2 for p in imp)
    assert 0.0 < results["weak_accuracy"] < 1.0 and results["ceiling"]["value"] is not None
    assert all(("pgr" in p) for p in imp)
    assert_results_layout(results)
    rows = read_examples(run_dir)  # per round, per seed, per method; and the gold ceilings
    assert len(rows) == (3 + 2 + 2) * 2 + 2  # baselines start at round 1
    imp_seed1 = [row for row in rows if row["method"] == "imp" and row["seed"] == 1]
    assert [row["metric"] for row in imp_seed1] == [p["per_seed"][1] for p in imp]
    for entry in imp:  # the interval is the t-interval of the two seeds' accuracies
        values = entry["per_seed"]
        assert entry["metric"]["value"] == pytest.approx(sum(values) / 2)
    # IMP against each baseline, seed by seed, at every round both ran
    differences = [r for r in results["metrics"] if r["metric"] == "difference"]
    assert [(r["baseline"], r["at"]["round"]) for r in differences] == [
        ("random", 1), ("random", 2), ("reinit", 1), ("reinit", 2)
    ]  # fmt: skip
    for record in differences:
        baseline = results["curves"][record["baseline"]][record["at"]["round"] - 1]
        ticket = imp[record["at"]["round"]]
        paired = [a - b for a, b in zip(ticket["per_seed"], baseline["per_seed"], strict=True)]
        assert record["value"] == pytest.approx(sum(paired) / 2)
        assert record["model"] == "imp" and record["interval"] == "seeds" and record["n"] == 2
    said = " ".join(first.stdout.split())
    assert (
        "effect: imp beats random by" in said or "effect: imp does not clearly beat random:" in said
    )
    assert (run_dir / "plots" / "prune.png").is_file()
    assert "weights remaining" in first.stdout
    masks = sorted(p.name for p in (run_dir / "steps").glob("seed0-round*-masks.safetensors"))
    assert masks == ["seed0-round1-masks.safetensors", "seed0-round2-masks.safetensors"]
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    log = (run_dir / "run.log").read_text().split("(resumed")[-1]
    assert "done in" not in log  # every step came from the cache


def test_weak_targets_are_the_supervisors_decisions_or_its_probabilities(tmp_path):
    from weak2strong.prune.experiment import Prune, PruneConfig

    def targets(kind: str):
        config = PruneConfig(
            weak="lexicon:vader", weak_targets=kind, train_examples=32, test_examples=24
        )
        texts, values, *_ = Prune(config, tmp_path)._data()
        return texts, values

    soft_texts, soft = targets("soft")
    hard_texts, hard = targets("hard")
    assert soft_texts == hard_texts and len(soft_texts) == 32
    assert soft.min() > 0.0 and soft.max() < 1.0  # calibrated probabilities, never certain
    assert ((hard == 0) | (hard == 1)).all() and (hard.argmax(1) == soft.argmax(1)).all()
    with pytest.raises(W2SError, match="weak_targets"):
        Prune(PruneConfig(weak_targets="fuzzy"), tmp_path)
