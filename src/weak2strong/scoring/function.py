"""`python:<module>:<function>`: a user function from a list of texts to a list of floats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weak2strong import distributed
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

    def score(self, texts: Sequence[str]) -> np.ndarray:
        def call(indices: list[int]) -> list[float]:
            batch = [texts[i] for i in indices]
            values = list(self.function(batch))
            if len(values) != len(batch):
                raise W2SError(
                    f"scorer '{self.name}' returned {len(values)} scores for {len(batch)} texts"
                )
            return [float(value) for value in values]

        return np.asarray(
            distributed.map_items(call, len(texts), FUNCTION_BATCH, description=self.name),
            dtype=np.float64,
        )


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
