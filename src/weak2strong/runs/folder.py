"""Run folders: one per resolved config, holding its config, environment, steps and results.

A run lives in `<runs_dir>/<command>-<config hash>/`. Each finished step is a file written
atomically under `steps/`, so a rerun of the same config loads finished steps instead of
recomputing them, and a run killed half-way resumes at the first unfinished step.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from weak2strong import distributed
from weak2strong.errors import W2SError
from weak2strong.fileio import (
    as_written,
    key_digest,
    read_json,
    write_json,
    write_jsonl,
    write_tensors,
)
from weak2strong.runs.config import config_hash, config_to_dict, results_version
from weak2strong.runs.environment import environment, seed_everything
from weak2strong.runs.opening import Opened, open_folder, readable_json
from weak2strong.runs.results import (
    EXAMPLES_FILE,
    SCHEMA,
    MetricRecord,
    SampleFloor,
    small_sample_warnings,
)
from weak2strong.settings import check_settings

T = TypeVar("T")
META_FILE = "meta.json"  # a run's name and tags: the researcher's labels, not settings


class Run:
    """A run folder. Create it with `Run.open` only after the config and inputs validated.

    Under a multi-process launch every process holds a `Run` for the same folder, but only
    the main process writes to it; cached steps are found and read by the main process
    and handed to the others (see `weak2strong.distributed.cached_value`).
    """

    def __init__(self, path: Path, command: str, config: Any, parallelism: dict[str, Any]) -> None:
        self.path = path
        # Results shared between runs (e.g. backbone features) live beside the run folders,
        # keyed by everything that determines them, never by a task or model name alone.
        self.shared_dir = path.parent / "shared"
        self.command = command
        self.config = config
        # processes and machines of this invocation, and the training batches it used
        self.parallelism = parallelism
        self.log = logging.getLogger(f"weak2strong.run.{path.name}")
        self.inputs: dict[str, Any] = {}
        self._handler: logging.Handler | None = None
        self._quieted = False
        self._phases: list[str] = []
        self._phase_index = 0
        self._lock: IO[Any] | None = None

    @classmethod
    def open(
        cls,
        command: str,
        config: Any,
        runs_dir: str | Path = "runs",
        inputs: dict[str, Any] | None = None,
    ) -> Run:
        """Open (create or resume) the run folder of `config`.

        `inputs` fingerprints what the run reads besides its settings (data, model weights):
        when it differs from the stored one, the cached steps belong to other inputs and are
        discarded. The folder is locked for as long as the run is open.
        """
        check_settings(config)
        # compared with the stored copy: what JSON makes of tuples, paths and NaN
        inputs = as_written(inputs or {})
        seed = int(getattr(config, "seed", 0))
        path = Path(runs_dir).expanduser() / f"{command}-{config_hash(config)}"
        processes = distributed.describe()
        opened: list[Opened] = []

        def prepare() -> str | None:
            try:
                opened.append(open_folder(path, config, seed, processes, inputs))
            except W2SError as error:
                return str(error)
            return None

        failure = distributed.main_decides(prepare)
        if failure is not None:
            raise W2SError(failure)
        distributed.barrier()  # the folder exists before any process uses it
        run = cls(path, command, config, processes)
        run.inputs = inputs
        run._attach_log_file()
        if opened:
            run._lock = opened[0].lock
            for line in opened[0].notes:
                run.log.warning(line)
        seed_everything(seed)
        attempts = opened[0].attempts if opened else 0
        run.log.info(
            "run %s (%s, %d process%s on %d machine%s)",
            path,
            "resumed" if attempts > 1 else "new",
            processes["processes"],
            "" if processes["processes"] == 1 else "es",
            processes["machines"],
            "" if processes["machines"] == 1 else "s",
        )
        return run

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _attach_log_file(self) -> None:
        if not distributed.is_main():
            return
        handler = _RunLog(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        # On the package logger: what shared parts log during the run (e.g. how inference
        # was shared between processes) lands in run.log too.
        package = logging.getLogger("weak2strong")
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        self._handler = handler
        # Library warnings (Python's and transformers') go to run.log, not between the
        # progress bars: the console keeps what the researcher acts on.
        logging.captureWarnings(True)
        library_loggers = [logging.getLogger("py.warnings"), logging.getLogger("transformers")]
        for logger in library_loggers:
            logger.addHandler(handler)
            logger.propagate = False
        self._quieted = _quiet_transformers_console()

    def close(self) -> None:
        if self._handler is not None:
            logging.getLogger("weak2strong").removeHandler(self._handler)
            for name in ("py.warnings", "transformers"):
                logging.getLogger(name).removeHandler(self._handler)
                logging.getLogger(name).propagate = True
            logging.captureWarnings(False)
            if self._quieted:
                from transformers.utils import logging as transformers_logging

                transformers_logging.enable_default_handler()
                transformers_logging.enable_progress_bar()
            self._handler.close()
            self._handler = None
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the lock
            self._lock = None

    # ---- steps

    def step_path(self, name: str, suffix: str = ".json") -> Path:
        return self.path / "steps" / f"{name}{suffix}"

    def is_done(self, name: str, suffix: str = ".json") -> bool:
        return distributed.main_decides(self.step_path(name, suffix).exists)

    def cached_json(self, name: str, compute: Callable[[], T]) -> T:
        """Return the step's saved JSON, or compute, save atomically and return it."""
        return self._cached(self.step_path(name), name, compute, read_json, write_json)

    def cached_tensors(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Like `cached_json` for a dict of tensors, stored as safetensors (never pickle)."""
        return self._cached(
            self.step_path(name, ".safetensors"), name, compute, _load_tensors, _save_tensors
        )

    def shared_tensors(
        self, kind: str, key: dict[str, Any], compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Tensors cached across runs under a digest of `key`, which must name every input."""
        digest = key_digest(key)
        path = self.shared_dir / f"{kind}-{digest}.safetensors"
        key_file = path.with_suffix(".json")
        if distributed.is_main() and not key_file.exists():
            write_json(key_file, key)
        return self._cached(path, f"{kind} ({digest})", compute, _load_tensors, _save_tensors)

    def save_tensors(self, name: str, tensors: dict[str, Any]) -> None:
        """A step file written beside a computation (e.g. a rewind point), by the main process."""
        if distributed.is_main():
            _save_tensors(self.step_path(name, ".safetensors"), tensors)

    def load_tensors(self, name: str) -> dict[str, Any] | None:
        """A step file's tensors on every process, or None if the step was never written."""
        path = self.step_path(name, ".safetensors")
        return distributed.main_decides(lambda: _load_tensors(path) if path.exists() else None)

    def _cached(
        self,
        path: Path,
        name: str,
        compute: Callable[[], T],
        load: Callable[[Path], T],
        save: Callable[[Path, T], None],
    ) -> T:
        started = time.perf_counter()
        value, cached = distributed.cached_value(path, compute, load, save)
        if cached:
            self.log.info("step %s: cached", name)
            if distributed.is_main():  # said on the console too: nothing is recomputed
                print(f"cached: {name}", file=sys.stderr, flush=True)
        else:
            self.log.info("step %s: done in %.1fs", name, time.perf_counter() - started)
        return value

    def plan(self, phases: list[str]) -> None:
        """The run's phases, in order: `phase(name)` then shows `[k/n] name` as each begins."""
        self._phases = list(phases)
        self._phase_index = 0

    def phase(self, name: str) -> None:
        """Announce the run's next phase: the one overall progress line above the step bars."""
        self._phase_index += 1
        total = len(self._phases)
        counter = f"[{self._phase_index}/{total}]" if self._phase_index <= total else "[…]"
        self.log.info("phase %s %s", counter, name)
        if distributed.is_main():
            print(f"{counter} {name}", file=sys.stderr, flush=True)

    def note_batch(self, name: str, batch_size: int) -> None:
        """Record a training batch for results.json: global size and each process's share."""
        self.parallelism.setdefault("batches", {})[name] = {
            "global": batch_size,
            "per_process": distributed.batch_shares(batch_size),
        }

    # ---- outputs

    def write_results(
        self,
        results: dict[str, Any],
        metrics: Sequence[MetricRecord],
        examples: Iterable[dict[str, Any]] | None = None,
        *,
        floor: SampleFloor | None = None,
        warnings: list[str] | None = None,
    ) -> Path:
        """results.json in the one layout (see `weak2strong.runs.results`), and the per-example
        records as examples.jsonl; main process only. `results` holds the command's detail;
        `floor` is the fewest items its intervals should rest on (else a warning)."""
        path = self.path / "results.json"
        notes = [*(warnings or []), *(small_sample_warnings(metrics, floor) if floor else [])]
        for note in notes:
            self.log.warning(note)
        if not distributed.is_main():
            return path
        rows = None if examples is None else write_jsonl(self.path / EXAMPLES_FILE, examples)
        environment_now = environment(int(getattr(self.config, "seed", 0)))
        meta = readable_json(self.path / META_FILE)
        layout: dict[str, Any] = {
            "schema": SCHEMA,
            "command": self.command,
            "results_version": results_version(self.config),
            "run": {
                "folder": str(self.path.resolve()),
                "name": meta.get("name"),
                "tags": list(meta.get("tags", [])),
            },
            "metrics": [record.to_json() for record in metrics],
            "examples": None if rows is None else {"file": EXAMPLES_FILE, "rows": rows},
            "warnings": notes,
        }
        detail = {key: value for key, value in results.items() if key not in layout}
        layout.update(detail)
        layout.update(
            {
                "config": config_to_dict(self.config),
                "seed": getattr(self.config, "seed", None),
                "versions": environment_now["versions"],
                "git_commit": environment_now["git_commit"],
                "distributed": self.parallelism,
                "inputs": self.inputs,
            }
        )
        results.clear()
        results.update(layout)
        write_json(path, results)
        return path


class _RunLog(logging.FileHandler):
    """run.log. A line it cannot write (a full disk) is dropped, not printed as a traceback
    between the progress lines: the write the run itself cannot make says what is wrong."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


def _quiet_transformers_console() -> bool:
    """Stop transformers' own console handler (its records reach run.log instead) and its
    weight-loading bars (a search loads four models: four bars that say nothing)."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        return False
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.disable_progress_bar()
    return True


def _load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(path)


def _save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    write_tensors(path, {key: value.contiguous() for key, value in tensors.items()})


def label_run(folder: Path, name: str | None, tags: list[str]) -> None:
    """Record a run's name and tags (the name replaces, tags add up)."""
    meta = read_meta(folder)
    if name is None and not tags:
        return
    if name is not None:
        meta["name"] = name
    meta["tags"] = sorted(set(meta.get("tags", [])) | set(tags))
    write_json(folder / META_FILE, meta)
    results_file = folder / "results.json"
    if results_file.is_file():  # results.json names its run too
        results = read_json(results_file)
        results["run"].update(name=meta.get("name"), tags=meta["tags"])
        write_json(results_file, results)


def read_meta(folder: Path) -> dict[str, Any]:
    """A run's name and tags (empty when it has none or they cannot be read)."""
    return readable_json(folder / META_FILE)
