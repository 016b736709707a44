"""Embedded-model throughput: 16 prompts x 128 new tokens, one batched call vs one call per prompt,
plus decode tokens/s at batch 1 against this machine's memory-bandwidth bound
(bound = measured copy bandwidth / bytes of weights read per token).

    .venv/bin/python benchmarks/llm_throughput.py [--prompts 16] [--tokens 128]
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


def main(n_prompts: int = 16, tokens: int = 128, spec: str = "default") -> list[dict]:
    from workbench.llm import SamplingParams, load_llm

    llm = load_llm(spec, cache="off")
    prompts = [f"Write a short story about a {w}." for w in
               ["cat", "river", "robot", "garden", "storm", "violin", "mountain", "lantern",
                "ship", "forest", "clock", "desert", "island", "train", "owl", "bridge"]][:n_prompts]
    p = SamplingParams(temperature=1.0, max_tokens=tokens, ignore_eos=True)
    seeds = list(range(len(prompts)))
    llm.generate(prompts[:2], SamplingParams(max_tokens=4), seeds=[0, 1])  # warm-up
    t = time.perf_counter()
    batched = llm.generate(prompts, p, seeds=seeds)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    single = [llm.generate([q], p, seeds=[s])[0] for q, s in zip(prompts, seeds)]
    t_single = time.perf_counter() - t
    tok_b = sum(c.completion_tokens for c in batched)
    tok_s = sum(c.completion_tokens for c in single)
    n_params = sum(x.numel() for x in llm.lm.parameters())
    bytes_per_tok = sum(x.numel() * x.element_size() for x in llm.lm.parameters())
    bw = copy_bandwidth_gbs()
    bound = bw * 1e9 / bytes_per_tok
    b1 = tok_s / t_single
    rows = [
        {"figure": "batched tokens/s (16x128)", "value": tok_b / t_batched, "unit": "tok/s"},
        {"figure": "one-by-one tokens/s", "value": b1, "unit": "tok/s"},
        {"figure": "batched / one-by-one", "value": (tok_b / t_batched) / b1, "unit": "x"},
        {"figure": "copy bandwidth", "value": bw, "unit": "GB/s"},
        {"figure": f"weights read per token ({n_params / 1e6:.0f}M params, {llm.dtype})", "value": bytes_per_tok / 1e6, "unit": "MB"},
        {"figure": "batch-1 decode bound (bandwidth / weight bytes)", "value": bound, "unit": "tok/s"},
        {"figure": "batch-1 decode / bound", "value": b1 / bound, "unit": "fraction"},
    ]
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--spec", default="default")
    a = ap.parse_args()
    for r in main(a.prompts, a.tokens, a.spec):
        print(f"{r['figure']:<55} {r['value']:>10.3f} {r['unit']}")
