"""Embedded-model throughput on both engines side by side, in one run: the default onnxruntime-genai
engine (``default``) and our PyTorch loop (``transformers``). For each: decode tokens/s at batch 1
(one request per call) and at batch 16 (one call), the batch-16 / batch-1 ratio, and batch-1 decode
against this machine's memory-bandwidth bound (bound = measured copy bandwidth / bytes of weights read
per token; both engines hold the same float32 weights). Same prompts, seeds and sampling on both; the
texts are compared (they are identical: same weights, same sampler).

    .venv/bin/python benchmarks/llm_throughput.py [--prompts 16] [--tokens 128] [--single 4] [--threads 0]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def copy_bandwidth_gbs(mb: int = 512, reps: int = 5) -> float:
    """Best-of-reps memcpy bandwidth (bytes read + bytes written per second), GB/s."""
    a = np.ones(mb * 2**20 // 8)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(b, a)
        dt = time.perf_counter() - t
        best = max(best, 2 * a.nbytes / dt / 1e9)
    return best


def _engine_rows(spec: str, prompts: list[str], tokens: int, n_single: int, threads: int, bw: float):
    from workbench.llm import SamplingParams, load_llm

    llm = load_llm(spec + (f"?threads={threads}" if threads else ""), cache="off")
    p = SamplingParams(temperature=1.0, max_tokens=tokens, ignore_eos=True)
    seeds = list(range(len(prompts)))
    llm.generate(prompts[:2], SamplingParams(max_tokens=4), seeds=[0, 1])  # warm-up
    t = time.perf_counter()
    batched = llm.generate(prompts, p, seeds=seeds)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = [llm.generate([q], p, seeds=[s])[0] for q, s in zip(prompts[:n_single], seeds)]
    t_single = time.perf_counter() - t
    if hasattr(llm, "lm"):
        bytes_per_tok = sum(x.numel() * x.element_size() for x in llm.lm.parameters())
    else:
        bytes_per_tok = llm.weight_bytes
    b1 = sum(c.completion_tokens for c in single) / t_single
    b16 = sum(c.completion_tokens for c in batched) / t_batched
    bound = bw * 1e9 / bytes_per_tok
    rows = [
        {"figure": f"{spec}: batch-{len(prompts)} tokens/s", "value": b16, "unit": "tok/s"},
        {"figure": f"{spec}: batch-1 tokens/s", "value": b1, "unit": "tok/s"},
        {"figure": f"{spec}: batch-{len(prompts)} / batch-1", "value": b16 / b1, "unit": "x"},
        {"figure": f"{spec}: weights read per token", "value": bytes_per_tok / 1e6, "unit": "MB"},
        {"figure": f"{spec}: batch-1 decode / bandwidth bound", "value": b1 / bound, "unit": "fraction"},
    ]
    texts = [c.text for c in batched]
    llm.close()
    return rows, texts, (b1, b16)


def main(n_prompts: int = 16, tokens: int = 128, n_single: int = 4, threads: int = 0,
         specs: tuple[str, ...] = ("default", "transformers")) -> list[dict]:
    prompts = [f"Write a short story about a {w}." for w in
               ["cat", "river", "robot", "garden", "storm", "violin", "mountain", "lantern",
                "ship", "forest", "clock", "desert", "island", "train", "owl", "bridge"]][:n_prompts]
    bw = copy_bandwidth_gbs()
    rows = [{"figure": "copy bandwidth", "value": bw, "unit": "GB/s"}]
    speeds, texts = {}, {}
    for spec in specs:
        r, texts[spec], speeds[spec] = _engine_rows(spec, prompts, tokens, n_single, threads, bw)
        rows += r
    if len(specs) == 2:
        a, b = specs
        rows.append({"figure": f"batch-1 speed-up {a} over {b}", "value": speeds[a][0] / speeds[b][0], "unit": "x"})
        rows.append({"figure": f"batch-{n_prompts} speed-up {a} over {b}", "value": speeds[a][1] / speeds[b][1], "unit": "x"})
        rows.append({"figure": f"batch-{n_prompts} texts identical ({a} vs {b})",
                     "value": float(sum(x == y for x, y in zip(texts[a], texts[b]))), "unit": f"of {n_prompts}"})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--single", type=int, default=4, help="requests timed one by one for batch 1")
    ap.add_argument("--threads", type=int, default=0, help="engine threads (0 = each engine's default)")
    ap.add_argument("--specs", default="default,transformers")
    a = ap.parse_args()
    for r in main(a.prompts, a.tokens, a.single, a.threads, tuple(a.specs.split(","))):
        print(f"{r['figure']:<55} {r['value']:>10.3f} {r['unit']}")
