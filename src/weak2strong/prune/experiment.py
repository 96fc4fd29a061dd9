"""`w2s prune`: lottery tickets in a text classifier (on gold or weak labels) or in one of
the literature's image classifiers.

The default student is a small pretrained text encoder with a fresh head (see
`weak2strong.prune.text`); `network.architecture` picks an image classifier trained from
scratch instead (LeNet-300-100, Conv-2/4/6, VGG-16, ResNet-20; `weak2strong.prune.images`).

With `weak` set (e.g. `lexicon:vader`), the student learns from weak labels instead: the
train split is halved, the weak supervisor is calibrated on half A's gold labels and labels
half B; the dense student trained on half B's gold labels is the ceiling; every sparsity
level then reports PGR = (ticket − weak) / (ceiling − weak) beside its accuracy.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong.data import load_task, split_halves
from weak2strong.data.images import load_images
from weak2strong.errors import W2SError
from weak2strong.models import resolve
from weak2strong.models.loading import model_fingerprint
from weak2strong.models.vision import ARCHITECTURES
from weak2strong.prune.config import PruneConfig
from weak2strong.prune.images import ImageProblem
from weak2strong.prune.lottery import Lottery, TicketProblem
from weak2strong.prune.results import PruneResults, RoundPoint
from weak2strong.prune.summary import metric_records
from weak2strong.prune.text import TextClassifierProblem
from weak2strong.runs import Run
from weak2strong.runs.results import TEST_EXAMPLES
from weak2strong.runs.typed import Estimate, estimate, to_json
from weak2strong.scoring import performance_gap_recovered, seed_interval
from weak2strong.scoring.lexicon import calibrated_lexicon_probs, check_lexicon_task, lexicon_name
from weak2strong.settings import check_settings
from weak2strong.training import one_hot


class Prune:
    def __init__(self, config: PruneConfig, runs_dir: str | Path = "runs") -> None:
        check_settings(config)  # a config built in Python, as one loaded from YAML
        config.lottery.validate()
        if not config.seeds:
            raise W2SError("give at least one seed")
        if config.train_examples < 8 or config.test_examples < 8:
            raise W2SError("train_examples and test_examples must be at least 8")
        if config.weak_words < 1:
            raise W2SError("weak_words must be at least 1")
        if config.weak and lexicon_name(config.weak) is None:
            raise W2SError(f"weak supervisor '{config.weak}': use lexicon:vader or lexicon:afinn")
        architecture = config.network.architecture
        if architecture and architecture not in ARCHITECTURES:
            known = ", ".join(ARCHITECTURES)
            raise W2SError(f"unknown network.architecture '{architecture}' (known: {known})")
        if architecture and config.weak:
            raise W2SError("weak-to-strong tickets are for the text student: leave weak empty")
        self.config = config
        self.runs_dir = runs_dir

    def _data(self) -> tuple[list[str], np.ndarray, list[str], np.ndarray, int, dict[str, Any]]:
        cfg = self.config
        data = load_task(cfg.task, seed=0)
        classes = len(data.label_names)
        rng = np.random.default_rng(0)  # splits may be ordered by label: draw at random
        train_split, test_split = data.split("train"), data.split("test")  # each a full pass
        train = [train_split[int(i)] for i in rng.permutation(len(train_split))]
        test_order = rng.permutation(len(test_split))[: cfg.test_examples]
        test = [test_split[int(i)] for i in test_order]
        test_texts = [e.text for e in test]
        test_labels = np.asarray([e.label for e in test])
        info: dict[str, Any] = {
            "task": cfg.task.name,
            "test_examples": len(test),
            "task_fingerprint": data.fingerprint(),
        }
        if not cfg.weak:
            chosen = train[: cfg.train_examples]
            info["train_examples"] = len(chosen)
            targets = one_hot([e.label for e in chosen], classes)
            return [e.text for e in chosen], targets, test_texts, test_labels, classes, info
        name = lexicon_name(cfg.weak)
        assert name is not None
        check_lexicon_task(cfg.task.name, data.label_names)
        half_a, half_b = split_halves(train[: 2 * cfg.train_examples], seed=0)

        def view(text: str) -> str:
            return " ".join(text.split()[: cfg.weak_words])

        probs = calibrated_lexicon_probs(
            name,
            [view(e.text) for e in half_a],
            [e.label for e in half_a],
            {"b": [view(e.text) for e in half_b], "test": [view(t) for t in test_texts]},
        )
        info.update(
            train_examples=len(half_b),
            weak_accuracy=float((probs["test"].argmax(1) == test_labels).mean()),
            weak_label_accuracy=float(
                (probs["b"].argmax(1) == np.asarray([e.label for e in half_b])).mean()
            ),
            gold_targets=one_hot([e.label for e in half_b], classes).tolist(),
        )
        targets = probs["b"]
        if cfg.weak_targets == "hard":
            targets = np.eye(classes, dtype=np.float32)[targets.argmax(1)]
        info["weak_targets"] = cfg.weak_targets
        return [e.text for e in half_b], targets, test_texts, test_labels, classes, info

    def run(self) -> tuple[Run, dict[str, Any]]:
        if self.config.network.architecture:
            return self._run_images()
        data = self._data()  # bad task / supervisor combinations fail before the run folder
        resolve(self.config.student.encoder)  # so does a student that is not there
        inputs = {
            "task": data[-1]["task_fingerprint"],
            "student": model_fingerprint(self.config.student.encoder),
            "weak": self.config.weak or "gold",
        }
        with Run.open("prune", self.config, self.runs_dir, inputs) as run:
            run.note_batch("student", self.config.student.batch_size)
            return run, self._run_text(run, *data)

    def _run_images(self) -> tuple[Run, dict[str, Any]]:
        cfg = self.config
        data = load_images(cfg.images.dataset, cfg.images.folder)
        inputs = {"images": data.fingerprint, "network": cfg.network.architecture}
        with Run.open("prune", cfg, self.runs_dir, inputs) as run:
            run.note_batch("network", cfg.network.batch_size)
            network = ImageProblem(cfg.network, data, cfg.images)
            info = {
                "task": data.name,
                "network": cfg.network.architecture,
                "test_examples": len(network.test_labels),
                "task_fingerprint": data.fingerprint,
                "train_examples": len(network.train_labels),
            }
            return run, self._tickets(run, network.problem(), info, len(network.test_labels))

    def _run_text(
        self,
        run: Run,
        train_texts: list[str],
        targets: np.ndarray,
        test_texts: list[str],
        test_labels: np.ndarray,
        classes: int,
        info: dict[str, Any],
    ) -> dict[str, Any]:
        cfg = self.config
        gold_targets = np.asarray(info.pop("gold_targets", []), dtype=np.float32)
        student = TextClassifierProblem(
            cfg.student, train_texts, targets, test_texts, test_labels, classes, run.path.name
        )
        ceiling = None
        if cfg.weak:
            ceiling = functools.partial(self._ceiling, run, student, gold_targets)
        return self._tickets(run, student.problem(), info, len(test_labels), ceiling)

    def _tickets(
        self,
        run: Run,
        problem: TicketProblem,
        info: dict[str, Any],
        test_count: int,
        ceiling: Callable[[int], float] | None = None,
    ) -> dict[str, Any]:
        """IMP and the baselines, seed by seed, each a cached step; then the results."""
        cfg = self.config
        lottery = Lottery(problem, cfg.lottery, run)
        per_seed: dict[str, dict[int, list[dict[str, Any]]]] = {"imp": {}}
        ceilings: list[float] = []
        extra = ["dense gold ceiling"] if ceiling is not None else []
        run.plan(
            [
                f"seed {seed}: {part}"
                for seed in cfg.seeds
                for part in ["IMP", *cfg.lottery.baselines, *extra]
            ]
        )
        for seed in cfg.seeds:
            run.phase(f"seed {seed}: IMP")
            per_seed["imp"][seed] = lottery.imp(seed)
            for method in cfg.lottery.baselines:
                run.phase(f"seed {seed}: {method}")
                per_seed.setdefault(method, {})[seed] = lottery.baseline(method, seed)
            if ceiling is not None:
                run.phase(f"seed {seed}: dense gold ceiling")
                ceilings.append(ceiling(seed))
        results = self._summarise(per_seed, info, ceilings)
        payload = to_json(results)
        run.write_results(
            payload,
            metric_records(results),
            _examples(per_seed, cfg.seeds, ceilings),
            warnings=[
                f"each accuracy rests on {test_count} test examples (fewer than "
                f"{TEST_EXAMPLES.minimum}): too few to read a difference as real"
            ]
            if test_count < TEST_EXAMPLES.minimum
            else [],
        )
        return payload

    def _ceiling(
        self, run: Run, student: TextClassifierProblem, gold: np.ndarray, seed: int
    ) -> float:
        """The dense student trained on gold labels of the same examples."""

        def compute() -> dict[str, float]:
            model = student.build(seed)
            gold_student = copy.copy(student)
            gold_student.train_targets = gold
            gold_student.train(model, lambda step: None, seed)
            return {"metric": student.evaluate(model)}

        return float(run.cached_json(f"seed{seed}-ceiling-gold", compute)["metric"])

    def _summarise(
        self,
        per_seed: dict[str, dict[int, list[dict[str, Any]]]],
        info: dict[str, Any],
        ceilings: list[float],
    ) -> PruneResults:
        cfg = self.config
        weak = info.get("weak_accuracy")
        ceiling = float(np.mean(ceilings)) if ceilings else None
        curves: dict[str, list[RoundPoint]] = {}
        for method, seeds in per_seed.items():
            rounds = len(next(iter(seeds.values())))
            points = []
            for index in range(rounds):
                entries = [seeds[seed][index] for seed in cfg.seeds]
                metrics = [entry["metric"] for entry in entries]
                pgr: Estimate | None = None
                if weak is not None and ceiling is not None:
                    pgrs = [
                        performance_gap_recovered(weak, m, c)
                        for m, c in zip(metrics, ceilings, strict=True)
                    ]
                    defined = [p for p in pgrs if p is not None]
                    pgr = estimate(seed_interval(defined)) if defined else None
                points.append(
                    RoundPoint(
                        round=entries[0]["round"],
                        sparsity=float(np.mean([entry["sparsity"] for entry in entries])),
                        metric=estimate(seed_interval(metrics)),
                        per_seed=metrics,
                        pgr=pgr,
                        measures=_measures(entries),
                    )
                )
            curves[method] = points
        return PruneResults(
            **info,
            labels=cfg.weak or "gold",
            metric="accuracy",
            seeds=cfg.seeds,
            fraction=cfg.lottery.fraction,
            scope=cfg.lottery.scope,
            rewind_step=cfg.lottery.rewind_step,
            ceiling=estimate(seed_interval(ceilings)) if ceilings else None,
            curves=curves,
        )


def _measures(entries: list[dict[str, Any]]) -> dict[str, Estimate] | None:
    """Each training measure (early-stopping iteration, ...) over the seeds."""
    names = entries[0].get("measures", {})
    if not names:
        return None
    return {
        name: estimate(seed_interval([entry["measures"][name] for entry in entries]))
        for name in names
    }


def _examples(
    per_seed: dict[str, dict[int, list[dict[str, Any]]]], seeds: list[int], ceilings: list[float]
) -> list[dict[str, Any]]:
    """One record per (method, seed, round), and the dense gold ceiling of each seed."""
    examples = [
        {"method": method, "seed": seed, **entry}
        for method, by_seed in per_seed.items()
        for seed, entries in by_seed.items()
        for entry in entries
    ]
    return examples + [
        {"method": "dense gold ceiling", "seed": seed, "round": 0, "sparsity": 0.0, "metric": c}
        for seed, c in zip(seeds, ceilings, strict=False)
    ]
