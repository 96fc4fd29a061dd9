"""The large model's backends by name: how each makes its sampler, and what it can do.

`--backend` picks one; `Search` asks the registry instead of testing names, so a new backend
is one entry here and one module beside this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from weak2strong.search.api_backend import ApiSampler
from weak2strong.search.config import BACKENDS, BackendName, SearchConfig
from weak2strong.search.lm import LanguageModel
from weak2strong.search.samplers import Sampler
from weak2strong.search.transformers_backend import TransformersSampler
from weak2strong.search.vllm_backend import VLLMSampler


@dataclass(frozen=True)
class Backend:
    # the sampler, from the config and (for an in-process model) the loaded large model
    make: Callable[[SearchConfig, Callable[[], LanguageModel]], Sampler]
    # an engine or a client, made once and reused; else one sampler per decode over the
    # loaded model
    reused: bool
    # made as the search is set up: a server must answer before any run folder exists
    at_setup: bool
    # the large model's weights are on this machine (resolved, fingerprinted)
    local: bool
    # gives the logits EFT mixes at every token (the others only sample text)
    logits: bool


REGISTRY: dict[BackendName, Backend] = {
    "transformers": Backend(
        make=lambda config, large: TransformersSampler(large(), config.sampling),
        reused=False,
        at_setup=False,
        local=True,
        logits=True,
    ),
    "vllm": Backend(
        make=lambda config, _: VLLMSampler(
            config.large, config.large_format(), config.sampling, config.vllm
        ),
        reused=True,
        at_setup=False,
        local=True,
        logits=False,
    ),
    "api": Backend(
        make=lambda config, _: ApiSampler(
            config.large, config.large_format(), config.sampling, config.api
        ),
        reused=True,
        at_setup=True,
        local=False,
        logits=False,
    ),
}
assert tuple(REGISTRY) == BACKENDS
