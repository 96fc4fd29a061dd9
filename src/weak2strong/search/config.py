"""`w2s search`'s settings: the large model, the small pair, the methods and the gold reward."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import ClassVar, Literal

from weak2strong.data.prompts import PROMPT_SET_HELP, PromptOptions
from weak2strong.models.formatting import PromptFormat
from weak2strong.models.generation import SamplingConfig
from weak2strong.models.openai_api import ApiSettings
from weak2strong.scoring.scorers import ScorerConfig
from weak2strong.search.decoders import CBSSettings
from weak2strong.search.vllm_backend import VLLMSettings
from weak2strong.settings import setting
from weak2strong.tune import TuneConfig

MethodName = Literal["sample", "bon", "cbs", "eft"]
BackendName = Literal["transformers", "vllm", "api"]
METHODS: tuple[MethodName, ...] = typing.get_args(MethodName)
BACKENDS: tuple[BackendName, ...] = typing.get_args(BackendName)


@dataclass
class PairConfig:
    tuned: str = setting(
        "",
        help="the tuned small model; empty: w2s tune's default model (DPO towards positive "
        "reviews), trained on first use in its own run",
    )
    untuned: str = setting("smollm2-135m-instruct", help="the untuned small model")
    tuned_template: str = setting(
        "{prompt}", help="the tuned model's prompt: text with {prompt}, or chat"
    )
    untuned_template: str = setting(
        "{prompt}", help="the untuned model's prompt: text with {prompt}, or chat"
    )
    tuned_system: str = setting("", help="the tuned model's system prompt")
    untuned_system: str = setting("", help="the untuned model's system prompt")

    def tuned_format(self) -> PromptFormat:
        return PromptFormat(self.tuned_template, self.tuned_system)

    def untuned_format(self) -> PromptFormat:
        return PromptFormat(self.untuned_template, self.untuned_system)


@dataclass
class SearchConfig:
    # 2: every sampled sequence has its own seed from (prompt, step, beam, child); before,
    # one generator per prompt batch (texts depended on batching, vLLM repeated samples)
    RESULTS_VERSION: ClassVar[int] = 2

    seed: int = setting(0, help="seed of the prompts and of every sampled sequence")
    large: str = setting(
        "qwen2.5-coder-0.5b-instruct",
        help="the large model to steer: name/folder/hub id; with backend=api, the served name",
    )
    large_template: str = setting(
        "{prompt}", help="the large model's prompt: text with {prompt}, or chat"
    )
    large_system: str = setting("", help="the large model's system prompt")
    pair: PairConfig = setting(help="the small tuned/untuned pair", factory=PairConfig)
    tune: TuneConfig = setting(
        help="how the tuned model is made when pair.tuned is empty (its seed is the search's)",
        factory=TuneConfig,
        hash="when-changed",
    )
    methods: list[Literal["sample", "bon", "cbs", "eft", "all"]] = setting(
        help="sample, bon, cbs, eft, or all", factory=lambda: ["sample", "bon", "cbs"]
    )
    prompts: str = setting("imdb", help=PROMPT_SET_HELP)
    prompt_options: PromptOptions = setting(
        help="how a prompt file or dataset is read", factory=PromptOptions
    )
    test_prompts: int = setting(50, help="prompts decoded by every method")
    prompt_words: int = setting(8, help="words of each review that make an imdb prompt")
    sampling: SamplingConfig = setting(
        help="the large model's sampling; batch_size: prompts decoded together",
        factory=lambda: SamplingConfig(new_tokens=50, batch_size=2),
    )
    bon_n: int = setting(16, help="N of best-of-N")
    curve: list[int] = setting(
        help="N = W·K of a reward-against-compute curve: best-of-N (from the bon run's "
        "candidates) and CBS(W, N/W, L) at each N, e.g. [1,2,4,8,16]",
        factory=list,
        hash="when-changed",
    )
    cbs: CBSSettings = setting(help="chunk-level beam search", factory=CBSSettings)
    eft_beta: float = setting(1.0, help="EFT: base logits + β·(tuned − untuned)")
    backend: BackendName = setting(
        "transformers", help="the large model's backend: transformers, vllm, or api (a server)"
    )
    vllm: VLLMSettings = setting(help="the vllm backend's engine", factory=VLLMSettings)
    api: ApiSettings = setting(help="the api backend's server", factory=ApiSettings)
    scorer: ScorerConfig = setting(help="the gold reward", factory=ScorerConfig)
    bootstrap_samples: int = setting(1000, help="resamples of the prompts for the intervals")
    show_progress: bool = setting(True, help="progress bars", hash=False)

    def large_format(self) -> PromptFormat:
        return PromptFormat(self.large_template, self.large_system)
