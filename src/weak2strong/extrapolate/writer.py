"""Writing an α's checkpoint once: a finished output of the same run and inputs is known by
its provenance and kept; the main process merges, every process reads the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weak2strong import distributed
from weak2strong.extrapolate.checkpoint import PROVENANCE_FILE
from weak2strong.extrapolate.config import ExtrapolateConfig
from weak2strong.extrapolate.merge import extrapolate
from weak2strong.fileio import read_json


class Writer:
    def __init__(
        self, config: ExtrapolateConfig, names: list[str], run_hash: str, inputs_key: str
    ) -> None:
        self.config = config
        self.names = names  # the input checkpoints, weakest → strongest
        self.run_hash = run_hash
        self.inputs_key = inputs_key  # a digest of the input weights and the dtype

    def outputs(self, base: Path) -> dict[float, Path]:
        """Where each α's checkpoint goes when nothing is selected."""
        alphas = self.config.alphas
        if len(alphas) == 1:
            return {alphas[0]: base}
        return {alpha: base / f"alpha-{alpha:g}" for alpha in alphas}

    def is_ours(self, folder: Path, alpha: float | None) -> bool:
        """A finished output of this very run (same config hash, input weights and α if given)."""
        try:
            stored = read_json(folder / PROVENANCE_FILE)
        except (OSError, ValueError):  # absent or not JSON: not a finished output of ours
            return False
        return (
            isinstance(stored, dict)
            and stored.get("config_hash") == self.run_hash
            and (alpha is None or stored.get("alpha") == alpha)
            and stored.get("inputs_key") == self.inputs_key
        )

    @property
    def may_replace(self) -> bool:
        """Outputs in the run folder (locked by the run) may be replaced; a user's --out
        only with --force, and even then only a checkpoint w2s wrote (see staged_folder)."""
        return self.config.force or not self.config.out

    def write(
        self,
        alpha: float,
        target: Path,
        *,
        force: bool,
        selection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write one α's checkpoint to `target`: the main process merges (I/O-bound, it gains
        nothing from more processes); every process gets the report once it is on disk."""
        return distributed.main_decides(
            lambda: self.merge(alpha, target, force=force, selection=selection)
        )

    def merge(
        self,
        alpha: float,
        target: Path,
        *,
        force: bool,
        selection: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The main process's part of `write`."""
        if self.is_ours(target, alpha):
            report: dict[str, Any] = read_json(target / PROVENANCE_FILE)
            report["cached"] = True
            return report
        return extrapolate(
            self.names,
            alpha,
            target,
            dtype=self.config.dtype,
            shard_size=self.config.shard_size,
            force=force,
            show_progress=self.config.show_progress,
            provenance={"config_hash": self.run_hash, "inputs_key": self.inputs_key},
            selection=selection,
        )
