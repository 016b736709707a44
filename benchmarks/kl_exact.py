"""Exact enumeration throughput: sequences/s of the vectorised expected-gradient and variance computation.

For a tabular autoregressive policy over V^L sequences (up to ~1e6), times (a) the exact KLs and the four
reference gradients (``exact_divergences``: prefix-tree closed form against autograd) and (b) the expected
gradient and exact per-coordinate variance of one and of all 10 on-policy configurations
(``config_moments``: the fast path against the previous ``method="blocks"`` closed form and, up to
``autograd_L``, the generic autograd path), checks that they agree, and reports sequences per CPU-second
(CPU time of this process: less sensitive to other load than wall time) and before/after ratios measured
in the same run. Also times a naive per-sequence loop (one autograd call per sequence and configuration)
on a small case.

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


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def _max_diff(a: list[dict], b: list[dict]) -> float:
    return max(max(float((x["mean"] - y["mean"]).abs().max()), float((x["var"] - y["var"]).abs().max()))
               for x, y in zip(a, b))


def main(max_L: int = 10, V: int = 4, autograd_L: int = 7) -> list[dict]:
    """Before/after in one run: ``method="blocks"`` (the previous tabular closed form) and ``"autograd"``
    (generic) against the default fast path, on the same policies, with the results compared."""
    cfgs = on_policy_configs()
    rows = []
    for L in sorted({5, 8, max_L}):
        pol, pi, ref = _pair(V, L)
        N = V ** L
        ex_new, t_div, c_div = _timed(lambda: exact_divergences(pol, pi, ref))
        if L <= autograd_L + 1:
            ex_old, t_div_old, c_div_old = _timed(lambda: exact_divergences(pol, pi, ref, method="autograd"))
            err = max(float((ex_new[k] - ex_old[k]).abs().max()) for k in ex_new if k.startswith("grad"))
            rows.append({"figure": f"exact KLs + 4 reference gradients, autograd (before), V={V} L={L}",
                         "value": N / c_div_old, "unit": "sequences/CPU-s"})
            print(f"V={V} L={L}: divergences autograd {c_div_old:.3f} CPU-s, closed form {c_div:.4f} CPU-s "
                  f"({c_div_old / max(c_div, 1e-9):.0f}x, max |diff| {err:.1e})", flush=True)
        rows.append({"figure": f"exact KLs + 4 reference gradients, prefix-tree closed form, V={V} L={L}",
                     "value": N / max(c_div, 1e-9), "unit": "sequences/CPU-s"})
        for cs, tag in ((cfgs[:1], "1 configuration (k1 in reward)"), (cfgs, f"all {len(cfgs)} configurations")):
            new, t_new, c_new = _timed(lambda: config_moments(pol, pi, ref, cs))
            old, t_old, c_old = _timed(lambda: config_moments(pol, pi, ref, cs, method="blocks"))
            err = _max_diff(new, old)
            if err > 1e-10:
                raise AssertionError(f"fast and block paths differ by {err}")
            line = f"V={V} L={L} N={N}, mean+variance of {tag}: blocks (before) {c_old:.2f} CPU-s, fast {c_new:.2f} CPU-s"
            if L <= autograd_L:
                ag, t_ag, c_ag = _timed(lambda: config_moments(pol, pi, ref, cs, method="autograd"))
                err = max(err, _max_diff(new, ag))
                rows.append({"figure": f"mean + variance of {tag}, autograd path, V={V} L={L}",
                             "value": N / c_ag, "unit": "sequences/CPU-s"})
                line += f", autograd {c_ag:.2f} CPU-s"
            rows.append({"figure": f"mean + variance of {tag}, blocks (before), V={V} L={L}",
                         "value": N / c_old, "unit": "sequences/CPU-s"})
            rows.append({"figure": f"mean + variance of {tag}, fast path (after), V={V} L={L}",
                         "value": N / c_new, "unit": "sequences/CPU-s"})
            rows.append({"figure": f"speed-up fast over blocks, {tag}, V={V} L={L}", "value": c_old / c_new,
                         "unit": "x (CPU time)"})
            print(line + f"; {c_old / c_new:.1f}x, {N / c_new:,.0f} seq/CPU-s (wall {t_new:.2f} s), "
                         f"max |diff| {err:.1e}", flush=True)
            if len(cs) == len(cfgs):
                rows.append({"figure": f"full exact table (divergences + {len(cfgs)} configurations), V={V} L={L}",
                             "value": c_div + c_new, "unit": "CPU-s"})
    # vectorised vs naive loop on the same small case, measured back to back
    pol, pi, ref = _pair(3, 4)
    N = 3 ** 4
    naive, t_naive, _ = _timed(lambda: _naive_expected_gradients(pol, pi, ref, cfgs))
    vec, t_vec, _ = _timed(lambda: config_moments(pol, pi, ref, cfgs))
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
    torch.set_num_threads(1)
    for r in main(args.max_L):
        print(f"{r['figure']:<75} {r['value']:>14,.1f} {r['unit']}")
