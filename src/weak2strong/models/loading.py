"""The one way to load a model: a registry name, a local folder, or a hub id."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from weak2strong import distributed
from weak2strong.errors import W2SError
from weak2strong.models import assets
from weak2strong.models.registry import EMBEDDED_MODELS, embedded

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name points: `location` is a folder or a hub id."""

    name: str
    location: str
    embedded: bool


def resolve(name: str, *, prepare: bool = True) -> ResolvedModel:
    """Map a user's model name to something `from_pretrained` can read, offline when embedded."""
    model = embedded(name)
    if model is not None:
        folder = assets.prepared_dir(model)
        if folder is None:
            if not prepare:
                raise W2SError(f"model '{name}' is not prepared: run `w2s assets prepare {name}`")
            folder = assets.prepare(model, install=False)
        return ResolvedModel(name, str(folder), embedded=True)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise W2SError(f"model folder '{name}' has no config.json")
        _check_not_pickle_only(path)
        return ResolvedModel(name, str(path), embedded=False)
    if name.startswith((".", "/", "~")) or path.exists():
        raise W2SError(f"model not found: '{name}' is not an existing folder")
    _check_on_hub(name)
    return ResolvedModel(name, name, embedded=False)


@functools.cache
def _check_on_hub(repo_id: str) -> None:
    """A hub id must name a model the hub (or its offline cache) has, before any work starts."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(repo_id, "config.json")
    except Exception as error:  # the hub client raises many types: offline, missing, gated
        raise _not_found("cannot load", repo_id, type(error).__name__) from None


def _not_found(doing: str, name: str, reason: str) -> W2SError:
    known = ", ".join(EMBEDDED_MODELS)
    return W2SError(
        f"{doing} model '{name}': not an embedded model ({known}), not a local folder, "
        f"and the hub could not provide it ({reason})"
    )


def model_fingerprint(name: str, revision: str | None = None) -> dict[str, object]:
    """What identifies a model's weights, for cache keys: never the name alone. An embedded
    model is known by its registry entry, installed or not (loading it prepares it)."""
    # the same weights give other outputs in another dtype: a machine that computes in
    # bfloat16 never reuses a float32 machine's cached features, scores or samples
    computes_in = str(inference_dtype(default_device())).removeprefix("torch.")
    model = embedded(name)
    if model is not None:
        return {"name": model.key_name, "sha256": model.sha256, "computes_in": computes_in}
    resolved = resolve(name)
    folder = Path(resolved.location)
    if folder.is_dir():
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        # lists, not tuples: the fingerprint is compared with its JSON copy in inputs.json
        stamp = [[path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in weights]
        return {
            "name": name,
            "folder": str(folder.resolve()),
            "weights": stamp,
            "computes_in": computes_in,
        }
    return {
        "name": name,
        "hub_id": name,
        "revision": revision or "main",
        "computes_in": computes_in,
    }


# What a checkpoint is besides its weights; pickled weights (*.bin, *.pt) are never fetched.
CHECKPOINT_FILES = ("*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken")


def checkpoint_folder(name: str, *, revision: str | None = None) -> Path:
    """A local folder holding the model's files: embedded, a local folder, or a hub download."""
    resolved = resolve(name)
    folder = Path(resolved.location)
    if folder.is_dir():
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                resolved.location, revision=revision, allow_patterns=list(CHECKPOINT_FILES)
            )
        )
    except Exception as error:  # the hub client raises many types: offline, missing, gated
        raise _not_found("cannot find", name, type(error).__name__) from None


def default_device() -> str:
    """This process's device: its own GPU under a multi-process launch."""
    return str(distributed.device())


@functools.cache
def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AMX-BF16: Intel Xeon 4th
    generation on), where bf16 inference is 3–4× faster than fp32; elsewhere it is emulated
    and slower."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell without torch's private API
        return False
    return any(
        line.startswith("flags") and "amx_bf16" in line.split() for line in cpuinfo.splitlines()
    )


def cpu_inference_in_bfloat16() -> bool:
    """W2S_CPU_BFLOAT16: `auto` (bf16 where the CPU multiplies it in hardware), `1` (always)
    or unset/`0` (float32).

    Opt-in, because bf16 rounds away the last bits that differ when the same batch is
    computed with other thread counts: under N processes, features and scores then match one
    process to bf16 precision only, and a sampled token can change.
    """
    choice = os.environ.get("W2S_CPU_BFLOAT16", "0").strip().lower()
    if choice not in ("0", "1", "auto", ""):
        raise W2SError(f"W2S_CPU_BFLOAT16 must be 0, 1 or auto (got {choice!r})")
    return choice == "1" or (choice == "auto" and cpu_multiplies_bfloat16())


def inference_dtype(device: str) -> torch.dtype:
    """What `dtype="auto"` computes in for inference: bf16 on GPUs, and on CPUs when
    W2S_CPU_BFLOAT16 asks for it; float32 otherwise."""
    import torch

    if device.startswith("cuda") or (device == "cpu" and cpu_inference_in_bfloat16()):
        return torch.bfloat16
    return torch.float32


def _dtype(dtype: str, device: str, training: bool = False) -> torch.dtype:
    import torch

    if dtype == "auto":
        if training and not device.startswith("cuda"):
            # an optimiser step on bf16 weights loses updates smaller than their precision
            return torch.float32
        return inference_dtype(device)
    try:
        value = getattr(torch, dtype)
    except AttributeError:
        value = None
    if not isinstance(value, torch.dtype):
        raise W2SError(f"unknown dtype '{dtype}' (use auto, float32, bfloat16 or float16)")
    return value


def pickle_allowed() -> bool:
    """Pickled weights (*.bin, *.pt) run code when loaded: only with W2S_ALLOW_PICKLE=1."""
    return os.environ.get("W2S_ALLOW_PICKLE", "").lower() in ("1", "true", "yes")


def _from_pretrained(loader: Any, resolved: ResolvedModel, **kwargs: Any) -> Any:
    """`loader.from_pretrained`, with every failure one error that names the model and what to do."""
    from safetensors import SafetensorError

    folder = Path(resolved.location)
    try:
        return loader.from_pretrained(resolved.location, **kwargs)
    except OSError as error:
        first_line = _first_line(error)
        if folder.is_dir():
            raise W2SError(f"cannot load model folder {folder}: {first_line}") from None
        raise _not_found("cannot load", resolved.name, first_line) from None
    except (SafetensorError, ValueError, RuntimeError, EOFError) as error:
        repair = (
            f"run `w2s assets prepare {resolved.name}` to repair it"
            if resolved.embedded
            else "is the download or copy complete?"
        )
        raise W2SError(
            f"the weights of model '{resolved.name}' ({resolved.location}) cannot be read "
            f"({type(error).__name__}: {_first_line(error)}); {repair}"
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def _check_not_pickle_only(folder: Path) -> None:
    if pickle_allowed() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth"))
    if pickled:
        raise W2SError(
            f"model folder {folder} holds only pickled weights ({', '.join(pickled[:3])}), "
            "which can run code when loaded: convert them to safetensors, or set "
            "W2S_ALLOW_PICKLE=1 if you trust them"
        )


def _weights_kwargs(resolved: ResolvedModel) -> dict[str, Any]:
    """Safetensors only, for local folders and hub ids alike, unless the user allows pickle."""
    return {} if pickle_allowed() else {"use_safetensors": True}


def load_tokenizer(
    name: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    resolved = resolve(name)
    tokenizer = _from_pretrained(
        AutoTokenizer, resolved, revision=revision, trust_remote_code=trust_remote_code
    )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    name: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    training: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal language model and its tokenizer, in eval mode on `device`.

    dtype "auto": bfloat16 on GPUs (and on CPUs with W2S_CPU_BFLOAT16), float32 elsewhere
    and for a model about to be trained on a CPU.
    """
    from transformers import AutoModelForCausalLM

    return _load(
        AutoModelForCausalLM, name, revision, dtype, device, trust_remote_code, training=training
    )


def load_sequence_classifier(
    name: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a sequence-classification model (e.g. a reward model) and its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load(
        AutoModelForSequenceClassification, name, revision, dtype, device, trust_remote_code
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_model_config(
    name: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> Any:
    """A model's config alone (sizes, layer count), without its weights."""
    from transformers import AutoConfig

    return _from_pretrained(
        AutoConfig, resolve(name), revision=revision, trust_remote_code=trust_remote_code
    )


def load_encoder(
    name: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    config_overrides: dict[str, Any] | None = None,
    training: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a bare transformer backbone (no LM head) and its tokenizer.

    `config_overrides` change the config as it loads, e.g. `{"num_hidden_layers": 2}` keeps
    the first two layers of the pretrained weights.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    # A causal LM checkpoint loaded as a backbone has an unused lm_head: expected, not news.
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return _load(
            AutoModel,
            name,
            revision,
            dtype,
            device,
            trust_remote_code,
            config_overrides,
            training=training,
        )
    finally:
        hf_logging.set_verbosity(previous)


def _load(
    loader: Any,
    name: str,
    revision: str | None,
    dtype: str,
    device: str | None,
    trust_remote_code: bool,
    config_overrides: dict[str, Any] | None = None,
    *,
    training: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    device = device or default_device()
    resolved = resolve(name)
    model = _from_pretrained(
        loader,
        resolved,
        **_weights_kwargs(resolved),
        revision=revision,
        dtype=_dtype(dtype, device, training),
        trust_remote_code=trust_remote_code,
        **(config_overrides or {}),
    )
    model.to(device).eval()
    tokenizer = load_tokenizer(name, revision=revision, trust_remote_code=trust_remote_code)
    return model, tokenizer
