"""Lazy, per-tensor access to a safetensors checkpoint, and a streaming sharded writer.

Memory follows the largest tensor (plus one output shard), never the model: headers are
read up front, tensor data only when asked for, and each read opens its file afresh. A
handle kept open would map the whole file, and every page read through it would stay in
the process's resident set until the handle closes.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from weak2strong.errors import W2SError
from weak2strong.fileio import (
    DISK_ERRNOS,
    exclusive_lock,
    read_json,
    save_tensors_file,
    write_json,
)
from weak2strong.manifest import check_replaceable, write_manifest
from weak2strong.models import checkpoint_folder

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"

# safetensors' dtype codes
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]


class Checkpoint:
    """A model folder's config and the headers of its safetensors weights."""

    def __init__(self, name: str, folder: Path, config: dict[str, Any]) -> None:
        self.name = name
        self.folder = folder
        self.config = config
        self.tensors: dict[str, TensorInfo] = {}

    @classmethod
    def open(cls, name: str | Path) -> Checkpoint:
        folder = checkpoint_folder(str(name))
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise W2SError(f"model folder '{name}' has no config.json")
        checkpoint = cls(str(name), folder, read_json(config_file))
        for file in checkpoint._weight_files():
            checkpoint._read_header(file)
        if not checkpoint.tensors:
            raise W2SError(f"model '{name}' has no tensors in its safetensors files")
        return checkpoint

    def _weight_files(self) -> list[Path]:
        index = self.folder / INDEX_FILE
        if index.is_file():
            weight_map = read_json(index).get("weight_map", {})
            files = list(dict.fromkeys(weight_map.values()))
            missing = [file for file in files if not (self.folder / file).is_file()]
            if missing:
                raise W2SError(f"model '{self.name}': {INDEX_FILE} names missing file {missing[0]}")
            return [self.folder / file for file in files]
        files = sorted(self.folder.glob("*.safetensors"))
        if not files:
            pickled = sorted(p.name for p in self.folder.glob("*.bin")) + sorted(
                p.name for p in self.folder.glob("*.pt")
            )
            hint = (
                f" (it has pickled weights, {pickled[0]}, which are never loaded: "
                "convert them to safetensors first)"
                if pickled
                else ""
            )
            raise W2SError(f"model '{self.name}' has no safetensors weights{hint}")
        return files

    def _read_header(self, file: Path) -> None:
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                    view = handle.get_slice(key)
                    code = view.get_dtype()
                    if code not in DTYPES:
                        raise W2SError(f"model '{self.name}': tensor {key} has dtype {code}")
                    if key in self.tensors:
                        raise W2SError(f"model '{self.name}': tensor {key} is stored twice")
                    self.tensors[key] = TensorInfo(
                        key, file, DTYPES[code], tuple(int(s) for s in view.get_shape())
                    )
        except W2SError:
            raise
        except Exception as error:  # safetensors raises its own error types for bad files
            raise W2SError(f"cannot read {file}: {error}") from None

    def read(self, name: str) -> torch.Tensor:
        from safetensors import safe_open

        info = self.tensors[name]
        with safe_open(str(info.file), framework="pt") as handle:
            return handle.get_tensor(name)

    def read_rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows start:stop of a tensor (a 0-d tensor comes back as one row)."""
        from safetensors import safe_open

        info = self.tensors[name]
        with safe_open(str(info.file), framework="pt") as handle:
            if not info.shape:
                return handle.get_tensor(name).reshape(1)
            return handle.get_slice(name)[start:stop]


def tensor_group(name: str) -> str:
    """The name with layer numbers starred: the unit in which cast losses are reported."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def parse_size(text: str | int) -> int:
    """'2GB', '500MB', '1.5GiB' or a number of bytes → bytes."""
    if isinstance(text, int):
        size = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", str(text), re.IGNORECASE)
        if match is None:
            raise W2SError(f"cannot read size '{text}' (examples: 2GB, 500MB, 1GiB, 1000000)")
        number, prefix, binary = match.groups()
        base = 1024 if binary else 1000
        size = int(float(number) * base ** " KMGT".index(prefix.upper() or " "))
    if size < 1:
        raise W2SError(f"size must be positive, got '{text}'")
    return size


def plan_shards(
    names: Sequence[str], sizes: Sequence[int], max_bytes: int
) -> list[list[tuple[str, int]]]:
    """Consecutive groups of tensors of at most `max_bytes` each (a bigger tensor goes alone)."""
    shards: list[list[tuple[str, int]]] = [[]]
    filled = 0
    for name, size in zip(names, sizes, strict=True):
        if shards[-1] and filled + size > max_bytes:
            shards.append([])
            filled = 0
        shards[-1].append((name, size))
        filled += size
    return shards


class ShardWriter:
    """Writes planned shards one by one as their tensors arrive, then the index.

    Holds at most one shard's tensors; shard files are named `model-0000i-of-0000N` as
    Hugging Face does, so `from_pretrained` reads the folder as it is.
    """

    def __init__(self, folder: Path, shards: list[list[tuple[str, int]]]) -> None:
        self.folder = folder
        self.shards = shards
        self.total = len(shards)
        self.buffer: dict[str, torch.Tensor] = {}
        self.current = 0
        self.weight_map: dict[str, str] = {}
        self.total_size = 0

    def file_name(self, index: int) -> str:
        return f"model-{index + 1:05d}-of-{self.total:05d}.safetensors"

    def add(self, name: str, tensor: torch.Tensor) -> None:
        expected = [n for n, _ in self.shards[self.current]]
        if name not in expected:
            raise RuntimeError(f"tensor {name} arrived out of the planned order")
        self.buffer[name] = tensor.contiguous()
        if len(self.buffer) == len(expected):
            self._flush()

    def _flush(self) -> None:
        file_name = self.file_name(self.current)
        save_tensors_file(self.folder / file_name, self.buffer, metadata={"format": "pt"})
        for name, tensor in self.buffer.items():
            self.weight_map[name] = file_name
            self.total_size += tensor.numel() * tensor.element_size()
        self.buffer = {}
        self.current += 1

    def finish(self) -> None:
        if self.buffer or self.current != self.total:
            raise RuntimeError("not every planned tensor was written")
        write_json(
            self.folder / INDEX_FILE,
            {"metadata": {"total_size": self.total_size}, "weight_map": self.weight_map},
        )


def is_weight_file(path: Path) -> bool:
    return path.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt") or path.name in (
        INDEX_FILE,
        "pytorch_model.bin.index.json",
    )


def copy_model_files(source: Path, target: Path) -> list[str]:
    """Copy config, tokenizer, generation config etc. (everything but weights)."""
    import shutil

    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file() and not is_weight_file(path):
            shutil.copy2(path, target / path.name)
            copied.append(path.name)
    return copied


def set_config_dtype(folder: Path, dtype: torch.dtype) -> None:
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text("utf-8"))
    name = str(dtype).removeprefix("torch.")
    keys = [key for key in ("dtype", "torch_dtype") if config.get(key) is not None] or ["dtype"]
    for key in keys:
        config[key] = name
    write_json(config_file, config)


# What a written checkpoint says about how it was made (the manifest says what it holds).
PROVENANCE_FILE = "extrapolation.json"


def check_output_folder(out: Path, inputs: Sequence[Path]) -> None:
    """Refuse an output that is, contains or lies inside an input checkpoint."""
    target = out.expanduser().resolve()
    for folder in inputs:
        source = folder.expanduser().resolve()
        if target == source or source in target.parents or target in source.parents:
            raise W2SError(
                f"--out {out} would overwrite the input checkpoint {folder}: choose a folder "
                "outside every input"
            )


def _remove_abandoned_staging(out: Path) -> None:
    """Staging folders of processes that died mid-write (kill -9 leaves them behind)."""
    import shutil

    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(partial|replaced)-(\d+)-[0-9a-f]+$")
    if not out.parent.is_dir():
        return
    for entry in out.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match[2])):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _output_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """One writer per output folder at a time, across processes (a lock in the cache)."""
    import hashlib

    from weak2strong.paths import cache_dir

    key = hashlib.sha256(str(out.expanduser().resolve()).encode()).hexdigest()[:16]
    return exclusive_lock(cache_dir() / "locks" / f"output-{key}.lock")


@contextlib.contextmanager
def staged_folder(out: Path, *, force: bool) -> Iterator[Path]:
    """A temporary folder beside `out`, renamed to `out` only when the block succeeds.

    An interrupted or failed write removes the temporary folder (and a later write removes
    those of processes killed outright), so `out` is either absent, the previous folder
    (with `force`), or complete. Writers of the same `out` take turns; one that finds `out`
    written meanwhile fails unless forced. `force` replaces only an empty folder or one whose
    manifest proves w2s wrote every file in it (see `weak2strong.manifest`).
    """
    import os
    import shutil
    import uuid

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise W2SError(
            f"cannot create the output folder {out}: {error.strerror or error}"
        ) from None
    _remove_abandoned_staging(out)
    with _output_lock(out):
        if out.exists() and not force:
            raise W2SError(f"output folder {out} exists: pass --force to replace it")
        check_replaceable(out, "--out")  # even with --force: never a file of the user's
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging = out.parent / f".{out.name}.partial-{tag}"
        staging.mkdir()
        try:
            yield staging
            write_manifest(staging, "w2s extrapolate")
            if out.exists():
                retired = out.parent / f".{out.name}.replaced-{tag}"
                out.rename(retired)
                staging.rename(out)
                shutil.rmtree(retired)
            else:
                staging.rename(out)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            if error.errno not in DISK_ERRNOS:
                raise
            raise W2SError(
                f"cannot write {out}: {error.strerror}; nothing of it was left behind (free "
                "space, or choose another --out)"
            ) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
