"""`w2s prune`: lottery tickets in a transformer text classifier, on gold or on weak labels.

The default student is MiniLM-L6's first `student.layers` pretrained layers with a fresh
linear head, fully fine-tuned on short IMDB reviews (the "initialisation" that IMP rewinds
to is therefore the pretrained encoder plus the head's random init, as in Chen et al.
2020's BERT tickets). The embeddings are frozen (never pruned; `train_embeddings` turns
them on). The random-reinitialisation control draws the prunable weights afresh.

With `weak` set (e.g. `lexicon:vader`), the student learns from weak labels instead: the
train split is halved, the weak supervisor is calibrated on half A's gold labels and labels
half B; the dense student trained on half B's gold labels is the ceiling; every sparsity
level then reports PGR = (ticket − weak) / (ceiling − weak) beside its accuracy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from weak2strong.data import TaskConfig, load_task, split_halves
from weak2strong.errors import W2SError
from weak2strong.models import load_encoder, resolve
from weak2strong.models.adapters import LoraSettings
from weak2strong.models.loading import model_fingerprint
from weak2strong.prune.lottery import Lottery, LotterySettings, TicketProblem
from weak2strong.prune.results import PruneResults, RoundPoint
from weak2strong.prune.strategies import ScoringInputs
from weak2strong.prune.summary import metric_records
from weak2strong.runs import Run
from weak2strong.runs.results import TEST_EXAMPLES
from weak2strong.runs.typed import Estimate, estimate, to_json
from weak2strong.scoring import performance_gap_recovered, seed_interval
from weak2strong.scoring.lexicon import calibrated_lexicon_probs, check_lexicon_task, lexicon_name
from weak2strong.settings import check_settings, setting
from weak2strong.training import TextClassifier, fit, one_hot, predict_proba
from weak2strong.training.settings import AdamWSettings


@dataclass
class StudentSettings(AdamWSettings):
    encoder: str = setting("minilm-l6", help="the pretrained encoder of the student")
    layers: int = setting(2, help="pretrained layers kept; 0: all")
    max_length: int = setting(48, help="tokens per text")
    # dense gold student on 640 reviews, 3 seeds: 1 epoch at 3e-4 reached 0.65–0.73 (too
    # unstable for a PGR); 2 epochs at 3e-4: 0.74–0.75 in 13 s per training
    epochs: int = setting(2, help="epochs per training (every round trains in full)")
    batch_size: int = setting(32, help="examples per optimiser step, across all processes")
    learning_rate: float = setting(3e-4, help="AdamW learning rate")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    train_embeddings: bool = setting(
        False, help="train the (never pruned) embeddings too; frozen they save a quarter"
    )


@dataclass
class PruneConfig:
    seeds: list[int] = setting(help="seeds: each a full IMP run", factory=lambda: [0, 1, 2])
    task: TaskConfig = setting(help="the labelled data", factory=lambda: TaskConfig(name="imdb"))
    train_examples: int = setting(640, help="training examples (weak: half B's size)")
    test_examples: int = setting(320, help="test examples")
    weak: str = setting(
        "", help="empty: gold labels; lexicon:vader|afinn: weak-to-strong tickets with PGR"
    )
    weak_words: int = setting(
        40, help="words of each text the weak supervisor reads (about the student's 48 tokens)"
    )
    weak_targets: Literal["hard", "soft"] = setting(
        "hard", help="hard: the supervisor's decisions; soft: its calibrated probabilities"
    )
    student: StudentSettings = setting(help="the student network", factory=StudentSettings)
    lottery: LotterySettings = setting(
        help="IMP and its baselines",
        factory=lambda: LotterySettings(
            # the head stays dense (it is trained from scratch); the encoder's pooler is unused
            exclude=[r"^head\.", r"\.pooler\."],
            # the two controls fit the 15-minute budget; `--baseline all` adds the other four
            baselines=["random", "reinit"],
        ),
    )
    show_progress: bool = setting(True, help="progress bars", hash=False)


class TextClassifierProblem:
    """The default ticket problem: a small pretrained encoder + head on a text task."""

    def __init__(
        self,
        settings: StudentSettings,
        train_texts: list[str],
        train_targets: np.ndarray,
        test_texts: list[str],
        test_labels: np.ndarray,
        classes: int,
        curves_name: str = "prune",
    ) -> None:
        self.settings = settings
        self.curves_name = curves_name
        # eager attention: GraSP differentiates twice, which fused CPU attention cannot
        overrides: dict[str, Any] = {"attn_implementation": "eager"}
        if settings.layers:
            overrides["num_hidden_layers"] = settings.layers
        backbone, self.tokenizer = load_encoder(
            settings.encoder, device="cpu", dtype="float32", config_overrides=overrides
        )
        self.pretrained = backbone
        self.classes = classes
        self.train_texts = train_texts
        self.train_targets = train_targets
        self.test_texts = test_texts
        self.test_labels = test_labels

    def _classifier(self, backbone: nn.Module, seed: int) -> TextClassifier:
        torch.manual_seed(seed)  # the head's initialisation
        classifier = TextClassifier(
            backbone,
            self.tokenizer,
            self.classes,
            lora=LoraSettings(rank=0),
            max_length=self.settings.max_length,
        )
        if not self.settings.train_embeddings:
            backbone.get_submodule("embeddings").requires_grad_(False)
        return classifier

    def build(self, seed: int) -> nn.Module:
        return self._classifier(copy.deepcopy(self.pretrained), seed)

    def random_init(self, seed: int) -> nn.Module:
        from transformers import AutoModel

        torch.manual_seed(seed)
        backbone = AutoModel.from_config(self.pretrained.config, attn_implementation="eager")
        return self._classifier(backbone, seed)

    def train(self, model: nn.Module, after_step: Any, seed: int) -> None:
        fit(
            model,
            self.train_texts,
            self.train_targets,
            self.settings,
            seed=seed,
            after_step=after_step,
            curves_name=f"{self.curves_name}/seed{seed}",
        )

    def evaluate(self, model: nn.Module) -> float:
        probs = predict_proba(model, self.test_texts, description="evaluate")
        return float((probs.argmax(1) == self.test_labels).mean())

    def scoring(self, seed: int) -> ScoringInputs:
        batch = self.train_texts[: self.settings.batch_size]
        targets = torch.as_tensor(self.train_targets[: self.settings.batch_size].argmax(1))

        def batch_logits(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
            return model(batch), targets

        def ones_output(model: nn.Module) -> torch.Tensor:
            classifier: Any = model
            width = classifier.backbone.config.hidden_size
            dtype = next(model.parameters()).dtype
            ones = torch.ones(1, self.settings.max_length, width, dtype=dtype)
            hidden = classifier.backbone(inputs_embeds=ones).last_hidden_state
            output: torch.Tensor = classifier.head(hidden.mean(1))
            return output

        return ScoringInputs(batch_logits=batch_logits, ones_output=ones_output, seed=seed)

    def problem(self) -> TicketProblem:
        return TicketProblem(
            build=self.build,
            train=self.train,
            evaluate=self.evaluate,
            scoring=self.scoring,
            random_init=self.random_init,
        )


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
        data = self._data()  # bad task / supervisor combinations fail before the run folder
        resolve(self.config.student.encoder)  # so does a student that is not there
        inputs = {
            "task": data[-1]["task_fingerprint"],
            "student": model_fingerprint(self.config.student.encoder),
            "weak": self.config.weak or "gold",
        }
        with Run.open("prune", self.config, self.runs_dir, inputs) as run:
            run.note_batch("student", self.config.student.batch_size)
            return run, self._run(run, *data)

    def _run(
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
        lottery = Lottery(student.problem(), cfg.lottery, run)
        per_seed: dict[str, dict[int, list[dict[str, Any]]]] = {"imp": {}}
        ceilings: list[float] = []
        phases = [
            f"seed {seed}: {part}"
            for seed in cfg.seeds
            for part in [
                "IMP",
                *cfg.lottery.baselines,
                *(["dense gold ceiling"] if cfg.weak else []),
            ]
        ]
        run.plan(phases)
        for seed in cfg.seeds:
            run.phase(f"seed {seed}: IMP")
            per_seed["imp"][seed] = lottery.imp(seed)
            for method in cfg.lottery.baselines:
                run.phase(f"seed {seed}: {method}")
                per_seed.setdefault(method, {})[seed] = lottery.baseline(method, seed)
            if cfg.weak:
                run.phase(f"seed {seed}: dense gold ceiling")
                ceilings.append(self._ceiling(run, student, gold_targets, seed))
        results = self._summarise(per_seed, info, ceilings)
        examples = _examples(per_seed, cfg.seeds, ceilings)
        few = len(test_labels) < TEST_EXAMPLES.minimum
        payload = to_json(results)
        run.write_results(
            payload,
            metric_records(results),
            examples,
            warnings=[
                f"each accuracy rests on {len(test_labels)} test examples (fewer than "
                f"{TEST_EXAMPLES.minimum}): too few to read a difference as real"
            ]
            if few
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
