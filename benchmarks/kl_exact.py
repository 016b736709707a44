"""Exact enumeration throughput: sequences/s of the vectorised expected-gradient and variance computation.

For a tabular autoregressive policy over V^L sequences (up to ~1e6), times (a) the exact KLs and the four
reference gradients (``exact_divergences``) and (b) the expected gradient and exact per-coordinate
variance of all 10 on-policy configurations (``config_moments``), and reports sequences/s. Also times a
naive per-sequence loop (one autograd call per sequence and configuration) on a small case and reports
the speed-up of the vectorised path measured in the same run (ratios survive CPU contention; absolute
wall times on a shared machine do not).

    .venv/bin/python benchmarks/kl_exact.py [--max-L 10]
"""
from __future__ import annotations

import argparse
import time

import torch

from workbench.kl.estimators import coefficients, on_policy_configs
from workbench.kl.exact import config_moments, exact_divergences
from workbench.kl.policies import TabularPolicy, all_sequences, perturb, token_logprobs


def _pair(V, L):
    pol = TabularPolicy(V, L)
    ref = pol.init_params(0)
    return pol, perturb(ref, 0.5, 1), ref


def _naive_expected_gradients(pol, pi, ref, cfgs):
    """One sequence at a time: the loop the vectorised code replaces (same result)."""
    th = [p.detach().clone().requires_grad_(True) for p in pi]
    out = [None for _ in cfgs]
    for y in all_sequences(pol.V, pol.L):
        lp, _ = token_logprobs(pol, th, y[None])
        lr, _ = token_logprobs(pol, ref, y[None])
        q = lp.detach().sum().exp()
        for i, cfg in enumerate(cfgs):
            c = coefficients(cfg, lp.detach(), lr)
            g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(lp, th, grad_outputs=q * c, retain_graph=True)])
            out[i] = g if out[i] is None else out[i] + g
    return out


def main(max_L: int = 10, V: int = 4) -> list[dict]:
    cfgs = on_policy_configs()
    rows = []
    for L in sorted({5, 8, max_L}):
        pol, pi, ref = _pair(V, L)
        N = V ** L
        t, c = time.perf_counter(), time.process_time()
        exact_divergences(pol, pi, ref)
        t_div, c_div = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        config_moments(pol, pi, ref, cfgs)
        t_mom, c_mom = time.perf_counter() - t, time.process_time() - c
        # CPU seconds of this process (all its threads): less sensitive to other load than wall time
        rows.append({"figure": f"mean + variance of {len(cfgs)} configurations, V={V} L={L}, per CPU-second",
                     "value": N / c_mom, "unit": "sequences/CPU-s"})
        rows.append({"figure": f"exact KLs + 4 reference gradients, V={V} L={L} ({N} seqs)", "value": N / t_div,
                     "unit": "sequences/s"})
        rows.append({"figure": f"mean + variance of {len(cfgs)} configurations, V={V} L={L} ({N} seqs)",
                     "value": N / t_mom, "unit": "sequences/s"})
        rows.append({"figure": f"full exact table wall time, V={V} L={L}", "value": t_div + t_mom, "unit": "s"})
        print(f"V={V} L={L} N={N}: divergences {t_div:.2f} s ({N / t_div:,.0f} seq/s), "
              f"{len(cfgs)} configs mean+var {t_mom:.2f} s ({N / t_mom:,.0f} seq/s); CPU s {c_div:.2f} + {c_mom:.2f}",
              flush=True)
    # vectorised vs naive loop on the same small case, measured back to back
    pol, pi, ref = _pair(3, 4)
    N = 3 ** 4
    t = time.perf_counter()
    naive = _naive_expected_gradients(pol, pi, ref, cfgs)
    t_naive = time.perf_counter() - t
    t = time.perf_counter()
    vec = config_moments(pol, pi, ref, cfgs)
    t_vec = time.perf_counter() - t
    err = max(float((a - b["mean"]).abs().max()) for a, b in zip(naive, vec))
    if err > 1e-10:
        raise AssertionError(f"vectorised and naive expected gradients differ by {err}")
    rows.append({"figure": f"naive per-sequence loop, expected gradients only, V=3 L=4 ({N} seqs)",
                 "value": N / t_naive, "unit": "sequences/s"})
    rows.append({"figure": "speed-up of vectorised (mean+variance) over naive loop (mean only), V=3 L=4",
                 "value": t_naive / t_vec, "unit": "x"})
    print(f"naive loop {t_naive:.2f} s vs vectorised {t_vec:.3f} s: {t_naive / t_vec:.0f}x (max |diff| {err:.1e})")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-L", type=int, default=10)
    args = ap.parse_args()
    for r in main(args.max_L):
        print(f"{r['figure']:<75} {r['value']:>14,.1f} {r['unit']}")
