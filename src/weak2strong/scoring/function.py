"""`python:<module>:<function>`: a user function to a list of floats.

One parameter: it receives texts (a prompt's text followed by its response, or a response
alone). Two parameters: it receives the prompts' texts and the responses apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.fileio import sha256_file
from weak2strong.scoring.base import ScorerConfig, ScorerKind, as_configured, no_check, no_quality

# texts per call of a user's scoring function (calls are shared between processes)
FUNCTION_BATCH = 256


class FunctionScorer:
    """`python:<module>:<function>`: the user's own code, imported because the user named it."""

    def __init__(self, config: ScorerConfig) -> None:
        import importlib

        self.name = config.name
        self.higher_is_better = config.higher_is_better
        target = config.name.removeprefix("python:")
        module_name, _, function_name = target.partition(":")
        if not module_name or not function_name:
            raise W2SError(f"scorer '{config.name}' must look like python:<module>:<function>")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise W2SError(
                f"scorer '{config.name}': cannot import {module_name} ({error})"
            ) from None
        function = getattr(module, function_name, None)
        if not callable(function):
            raise W2SError(f"scorer '{config.name}': {module_name} has no function {function_name}")
        self.function = function
        self.reads_pairs = _positional_parameters(function) >= 2

    def _scores(self, columns: tuple[Sequence[str], ...]) -> np.ndarray:
        def call(indices: list[int]) -> list[float]:
            values = list(self.function(*([column[i] for i in indices] for column in columns)))
            if len(values) != len(indices):
                raise W2SError(
                    f"scorer '{self.name}' returned {len(values)} scores for {len(indices)} texts"
                )
            return [float(value) for value in values]

        return np.asarray(
            distributed.map_items(call, len(columns[0]), FUNCTION_BATCH, description=self.name),
            dtype=np.float64,
        )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.reads_pairs:
            raise W2SError(
                f"scorer '{self.name}' takes (prompts, responses); here only texts are scored "
                "(a completion alone): give it one parameter"
            )
        return self._scores((texts,))

    def score_responses(self, prompts: Sequence[Prompt], responses: Sequence[str]) -> np.ndarray:
        if self.reads_pairs:
            return self._scores(([p.text for p in prompts], responses))
        return self._scores(([p.text + r for p, r in zip(prompts, responses, strict=True)],))


def _positional_parameters(function: Any) -> int:
    import inspect

    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: one argument
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in kinds and p.default is p.empty]
    return len(required)


def _fingerprint(config: ScorerConfig) -> dict[str, Any]:
    """The function's source file: an edited scorer is another scorer."""
    import importlib.util

    module = config.name.removeprefix("python:").partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    source = sha256_file(origin) if origin and Path(origin).is_file() else None
    return {"name": config.name, "source_sha256": source}


KIND = ScorerKind(
    prefix="python:",
    check=no_check,
    load=lambda config, show_progress: FunctionScorer(config),
    fingerprint=_fingerprint,
    higher_is_better=as_configured,
    units=lambda name: "the function's value",
    quality=no_quality,
)
