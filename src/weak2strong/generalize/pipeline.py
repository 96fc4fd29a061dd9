"""The weak-to-strong protocol (Burns et al. 2023).

Train half A → weak supervisor (gold labels) → soft labels on half B → strong student on
those labels, one per strategy; ceiling = the same student on B's gold labels; all scored
on the task's common test set. Backbone features are cached across runs under a key of
model weights, feature settings and texts; every trained student's predictions are a step
of the run folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from weak2strong.data import Example, TaskData, load_task, split_halves
from weak2strong.errors import W2SError
from weak2strong.generalize.config import (
    FinetuneConfig,
    GeneralizeConfig,
    ProbeConfig,
    StrategyName,
)
from weak2strong.generalize.results import GeneralizeResults
from weak2strong.generalize.strategies import (
    STRATEGIES,
    check_strategies,
    strategy_loss,
    training_subset,
)
from weak2strong.generalize.summary import BOOTSTRAP_METRICS, metric_records
from weak2strong.models import load_encoder, resolve
from weak2strong.models.features import extract_features, load_feature_backbone
from weak2strong.models.loading import model_fingerprint
from weak2strong.runs import Run
from weak2strong.runs.results import TEST_EXAMPLES, absolute
from weak2strong.runs.typed import from_json, to_json
from weak2strong.scoring import paired_bootstrap
from weak2strong.scoring.lexicon import calibrated_lexicon_probs, check_lexicon_task, lexicon_name
from weak2strong.settings import check_settings
from weak2strong.training import (
    Inputs,
    Probe,
    TextClassifier,
    fit,
    one_hot,
    predict_proba,
    take,
)


def _texts_digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()[:16]


class Generalize:
    def __init__(self, config: GeneralizeConfig, runs_dir: str = "runs") -> None:
        check_settings(config)  # a config built in Python, as one loaded from YAML
        # Validate everything before a run folder exists.
        self.config = config
        self.strategies = check_strategies(list(config.strategies), config.strategy)
        self.lexicon = lexicon_name(config.weak)
        if lexicon_name(config.strong) is not None:
            raise W2SError("the strong student must be a model, not a lexicon")
        self.data: TaskData = load_task(config.task, seed=config.seed)
        if self.lexicon:
            check_lexicon_task(self.data.name, self.data.label_names)
        else:
            resolve(config.weak)
        resolve(config.strong)
        if "bootstrap" in self.strategies and config.strategy.intermediate:
            resolve(config.strategy.intermediate)
        self.half_a, self.half_b = split_halves(self.data.split("train"), config.seed)
        self.test = self.data.split("test")
        classes = len(self.data.label_names)
        for name, part in (
            ("weak half A", self.half_a),
            ("student half B", self.half_b),
            ("test", self.test),
        ):
            present = {example.label for example in part}
            if len(present) < classes:
                raise W2SError(
                    f"the {name} split has {len(part)} examples covering {len(present)} of {classes} labels; "
                    "use more data (task.max_per_split)"
                )
        self.runs_dir = runs_dir
        self.timings: dict[str, float] = {}

    # ---- features

    def _features(
        self, run: Run, model_name: str, parts: dict[str, Sequence[Example]]
    ) -> dict[str, torch.Tensor]:
        texts = [example.text for part in parts.values() for example in part]
        key = {
            "model": model_fingerprint(model_name, self.config.model_revision),
            "features": dataclasses.asdict(self.config.features),
            "texts": _texts_digest(texts),
            "count": len(texts),
        }

        def compute() -> dict[str, torch.Tensor]:
            started = time.perf_counter()
            backbone, tokenizer = load_feature_backbone(
                model_name,
                self.config.features,
                revision=self.config.model_revision,
                trust_remote_code=self.config.trust_remote_code,
            )
            features = extract_features(
                backbone,
                tokenizer,
                texts,
                self.config.features,
                description=f"features {model_name}",
                show_progress=self.config.show_progress,
            )
            self.timings[f"features {model_name}"] = time.perf_counter() - started
            return {"features": features}

        features = run.shared_tensors("features", key, compute)["features"]
        out, start = {}, 0
        for name, part in parts.items():
            out[name] = features[start : start + len(part)]
            start += len(part)
        return out

    # ---- students

    @property
    def student_settings(self) -> ProbeConfig | FinetuneConfig:
        """The training schedule of every student of this regime."""
        return self.config.probe if self.config.regime == "probe" else self.config.finetune

    def _inputs(
        self, run: Run, model_name: str, parts: dict[str, Sequence[Example]]
    ) -> dict[str, Inputs]:
        """Cached features in the probe regime; the texts themselves when fine-tuning."""
        if self.config.regime == "probe":
            return dict(self._features(run, model_name, parts))
        return {name: [example.text for example in part] for name, part in parts.items()}

    def _new_student(self, model_name: str, train_inputs: Inputs, classes: int) -> torch.nn.Module:
        if self.config.regime == "probe":
            assert isinstance(train_inputs, torch.Tensor)
            return Probe(train_inputs, classes, self.config.probe.hidden)
        backbone, tokenizer = load_encoder(
            model_name,
            revision=self.config.model_revision,
            trust_remote_code=self.config.trust_remote_code,
            training=True,
        )
        settings = self.config.finetune
        return TextClassifier(
            backbone,
            tokenizer,
            classes,
            lora=settings.lora,
            max_length=settings.max_length,
            pooling=settings.pooling,
        )

    def _train_and_predict(
        self,
        run: Run,
        step: str,
        model_name: str,
        train_inputs: Inputs,
        targets: np.ndarray,
        strategy: StrategyName,
        predict: dict[str, Inputs],
    ) -> dict[str, torch.Tensor]:
        settings = self.student_settings

        def compute() -> dict[str, torch.Tensor]:
            started = time.perf_counter()
            student = self._new_student(model_name, train_inputs, targets.shape[1])
            student = fit(
                student,
                train_inputs,
                targets,
                settings,
                loss=strategy_loss(strategy, self.config.strategy),
                seed=self.config.seed,
                curves_name=f"{run.path.name}/{step}",
                curves_settings={"strategy": strategy},
            )
            outputs = {
                name: torch.as_tensor(predict_proba(student, x, description=f"{step} ({name})"))
                for name, x in predict.items()
            }
            self.timings[step] = time.perf_counter() - started
            return outputs

        return run.cached_tensors(step, compute)

    def weak_probs(self, run: Run) -> dict[str, np.ndarray]:
        if self.lexicon:
            lexicon = self.lexicon

            def compute() -> dict[str, torch.Tensor]:
                probs = calibrated_lexicon_probs(
                    lexicon,
                    [e.text for e in self.half_a],
                    [e.label for e in self.half_a],
                    {"b": [e.text for e in self.half_b], "test": [e.text for e in self.test]},
                )
                return {name: torch.as_tensor(p, dtype=torch.float32) for name, p in probs.items()}

            probs = run.cached_tensors("weak-probs", compute)
        else:
            inputs = self._inputs(
                run, self.config.weak, {"a": self.half_a, "b": self.half_b, "test": self.test}
            )
            targets = one_hot([e.label for e in self.half_a], len(self.data.label_names))
            probs = self._train_and_predict(
                run,
                "weak-probs",
                self.config.weak,
                inputs["a"],
                targets,
                "naive",
                {"b": inputs["b"], "test": inputs["test"]},
            )
        return {name: tensor.numpy() for name, tensor in probs.items()}

    def intermediate_labels(self, run: Run, weak_b: np.ndarray) -> np.ndarray:
        """Soft labels on B from an intermediate student trained on the weak labels, cross-fitted."""
        name = self.config.strategy.intermediate or ""
        inputs = self._inputs(run, name, {"b": self.half_b})["b"]
        folds = np.arange(len(self.half_b)) % 2
        np.random.default_rng(self.config.seed).shuffle(folds)
        labels = np.zeros_like(weak_b)
        for fold in (0, 1):
            train = torch.as_tensor(np.flatnonzero(folds != fold))
            held_out = torch.as_tensor(np.flatnonzero(folds == fold))
            predicted = self._train_and_predict(
                run,
                f"intermediate-fold{fold}-probs",
                name,
                take(inputs, train),
                weak_b[train.numpy()],
                "naive",
                {"held_out": take(inputs, held_out)},
            )
            labels[held_out.numpy()] = predicted["held_out"].numpy()
        return labels

    def inputs(self) -> dict[str, Any]:
        """The data and weights the run reads: a change to any discards its cached steps."""
        cfg = self.config
        models = {"weak": cfg.weak, "strong": cfg.strong}
        if "bootstrap" in self.strategies and cfg.strategy.intermediate:
            models["intermediate"] = cfg.strategy.intermediate
        return {
            "task": self.data.fingerprint(),
            **{
                role: name if lexicon_name(name) else model_fingerprint(name, cfg.model_revision)
                for role, name in models.items()
            },
        }

    def run(self) -> tuple[Run, dict[str, Any]]:
        with Run.open("generalize", self.config, self.runs_dir, self.inputs()) as run:
            return run, self._run(run)

    def _run(self, run: Run) -> dict[str, Any]:
        run.note_batch("student", self.student_settings.batch_size)
        cfg = self.config
        run.plan(
            [
                f"weak supervisor {cfg.weak}",
                f"strong inputs {cfg.strong}",
                *[f"student w2s:{strategy} on weak labels" for strategy in self.strategies],
                "ceiling: student on gold labels",
                "scores",
            ]
        )
        run.phase(f"weak supervisor {cfg.weak}")
        weak = self.weak_probs(run)
        run.phase(f"strong inputs {cfg.strong}")
        strong = self._inputs(run, cfg.strong, {"b": self.half_b, "test": self.test})
        probs = {"weak": weak["test"], **self._students(run, weak, strong)}
        run.phase("scores")
        results = self._results(weak, probs)
        payload = to_json(results)
        examples = (
            {
                "id": example.source,
                "text": example.text,
                "gold": example.label,
                **{name: p[row].tolist() for name, p in probs.items()},
            }
            for row, example in enumerate(self.test)
        )
        run.write_results(payload, metric_records(results), examples, floor=TEST_EXAMPLES)
        return payload

    def _students(
        self, run: Run, weak: dict[str, np.ndarray], strong: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """Test probabilities of each strategy's student on weak labels and of the ceiling."""
        probs: dict[str, np.ndarray] = {}
        for strategy in self.strategies:
            run.phase(f"student w2s:{strategy} on weak labels")
            subset = training_subset(strategy, weak["b"], self.config.strategy)
            relabels = STRATEGIES[strategy].relabels
            labels_b = self.intermediate_labels(run, weak["b"]) if relabels else weak["b"]
            predicted = self._train_and_predict(
                run,
                f"w2s-{strategy}-probs",
                self.config.strong,
                take(strong["b"], torch.as_tensor(subset)),
                labels_b[subset],
                "naive" if relabels else strategy,
                {"test": strong["test"]},
            )
            probs[f"w2s:{strategy}"] = predicted["test"].numpy()
        run.phase("ceiling: student on gold labels")
        gold_b = one_hot([e.label for e in self.half_b], len(self.data.label_names))
        ceiling = self._train_and_predict(
            run,
            "ceiling-probs",
            self.config.strong,
            strong["b"],
            gold_b,
            "naive",
            {"test": strong["test"]},
        )
        probs["ceiling"] = ceiling["test"].numpy()
        return probs

    def _results(
        self, weak: dict[str, np.ndarray], probs: dict[str, np.ndarray]
    ) -> GeneralizeResults:
        labels = np.asarray([e.label for e in self.test])
        weak_label_accuracy = float(
            np.mean(weak["b"].argmax(1) == np.asarray([e.label for e in self.half_b]))
        )
        return from_json(
            GeneralizeResults,
            {
                "task": self.data.name,
                "task_fingerprint": self.data.fingerprint(),
                "label_names": list(self.data.label_names),
                "weak": absolute(self.config.weak),
                "strong": absolute(self.config.strong),
                "strategies": self.strategies,
                "regime": self.config.regime,
                "sizes": {
                    "weak_train_a": len(self.half_a),
                    "student_train_b": len(self.half_b),
                    "test": len(self.test),
                },
                "weak_label_accuracy_on_b": weak_label_accuracy,
                "bootstrap": paired_bootstrap(
                    labels,
                    probs,
                    weak="weak",
                    ceiling="ceiling",
                    metric_names=BOOTSTRAP_METRICS,
                    samples=self.config.bootstrap_samples,
                    seed=self.config.seed,
                ),
                "stage_seconds": {
                    name: round(seconds, 3) for name, seconds in self.timings.items()
                },
            },
        )
