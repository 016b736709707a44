"""Imputing every missing pair of a 200 x 200 x 100 tensor at 20% observed: vectorised SI (batched
greedy donor search + batched normal equations) vs the naive per-pair loop (Python-set donor search +
one stacked least-squares solve per pair), in one run.

The naive loop runs on a random subset of the missing pairs (all ~32,000 would take minutes; its
all-pairs time is extrapolated linearly, which is exact for a loop of independent pairs up to cache
effects); the vectorised code runs on the same subset (ratio and agreement check) and on all pairs.
The subset ratio understates the gain: the vectorised code has fixed costs over the whole tensor. GSI
(batched per donor-block shape) is timed on all pairs too, with its fallback count (at 20% random
sparsity most pairs have too few donor contexts for GSI's blocks and fall back to SI-A).

Run: ``python benchmarks/causal_imputation.py [--subset 1000]``. Wall times on a shared machine are
inflated by contention; the ratio is measured within one run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from workbench.causal_imputation import impute_gsi, impute_si, make_dataset
from workbench.seeding import make_rng


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process). On a shared machine CPU time is the
    steadier figure: wall time includes waiting for a core."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(n: int = 200, features: int = 100, observed: float = 0.2, subset: int = 1000, seed: int = 0) -> list[dict]:
    d = make_dataset("si_action", n, n, features, rank_action=3, pattern="random", observed_frac=observed,
                     control=False, seed=seed)
    cs, as_ = np.nonzero(~d.mask)
    P = len(cs)
    pick = np.sort(make_rng(seed, "bench").choice(P, size=min(subset, P), replace=False))
    rows = [{"figure": "missing pairs", "value": P, "unit": "pairs"},
            {"figure": "observed fraction", "value": round(d.observed_fraction(), 4), "unit": ""}]
    impute_si(d, cs[pick[:50]], as_[pick[:50]], over="actions")  # warm-up (imports, allocator)
    (p_naive, _), t_naive, c_naive = _timed(lambda: impute_si(d, cs[pick], as_[pick], over="actions", vectorised=False))
    (p_vsub, _), t_vsub, c_vsub = _timed(lambda: impute_si(d, cs[pick], as_[pick], over="actions"))
    (p_all, info), t_all, c_all = _timed(lambda: impute_si(d, cs, as_, over="actions"))
    (_, _), t_c, c_c = _timed(lambda: impute_si(d, cs, as_, over="contexts"))
    (_, ginfo), t_g, c_g = _timed(lambda: impute_gsi(d, cs, as_))
    agree = float(np.max(np.abs(p_naive - p_vsub)))
    truth = d.truth[cs, as_]
    r2 = 1 - ((p_all - truth) ** 2).sum(1) / ((truth - truth.mean(1, keepdims=True)) ** 2).sum(1)
    rows += [
        {"figure": f"SI-A naive loop ({len(pick)} pairs)", "value": round(len(pick) / t_naive, 1), "unit": "pairs/s"},
        {"figure": f"SI-A vectorised ({len(pick)} pairs)", "value": round(len(pick) / t_vsub, 1), "unit": "pairs/s"},
        {"figure": "speed-up vectorised / naive (same pairs, wall)", "value": round(t_naive / t_vsub, 1), "unit": "x"},
        {"figure": "speed-up vectorised / naive (same pairs, CPU)", "value": round(c_naive / c_vsub, 1), "unit": "x"},
        {"figure": "throughput vectorised (all pairs) / naive (CPU)", "value": round((P / c_all) / (len(pick) / c_naive), 1), "unit": "x"},
        {"figure": "naive loop, all pairs, extrapolated (CPU)", "value": round(P * c_naive / len(pick), 1), "unit": "s"},
        {"figure": "max |naive - vectorised| prediction", "value": agree, "unit": ""},
        {"figure": "SI-A vectorised, all pairs (wall)", "value": round(t_all, 2), "unit": "s"},
        {"figure": "SI-A vectorised, all pairs (CPU)", "value": round(c_all, 2), "unit": "s"},
        {"figure": "SI-A vectorised, all pairs (wall)", "value": round(P / t_all, 1), "unit": "pairs/s"},
        {"figure": "SI-A vectorised, all pairs (CPU)", "value": round(P / c_all, 1), "unit": "pairs/s"},
        {"figure": "SI-C vectorised, all pairs (wall)", "value": round(t_c, 2), "unit": "s"},
        {"figure": "SI-C vectorised, all pairs (CPU)", "value": round(c_c, 2), "unit": "s"},
        {"figure": "GSI batched, all pairs (wall)", "value": round(t_g, 2), "unit": "s"},
        {"figure": "GSI batched, all pairs (CPU)", "value": round(c_g, 2), "unit": "s"},
        {"figure": "GSI pairs falling back to SI-A", "value": int((ginfo["fallback"] != "none").sum()), "unit": "pairs"},
        {"figure": "SI-A median per-pair R^2 (noise-free SI-A model)", "value": round(float(np.median(r2)), 4), "unit": ""},
        {"figure": "SI-A pairs on a fallback", "value": int((info["fallback"] != "none").sum()), "unit": "pairs"},
    ]
    return rows


def gsi_grid(noise: float = 0.0, features=(10, 15, 30, 40, 50), models=("si_action", "si_context", "gsi", "cp"),
             pattern: str = "block", observed: float = 0.3, mode: str = "heldout", **cfg_kw) -> list[dict]:
    """Median per-pair R^2 of SI-A, SI-C and GSI (notebook Config defaults: 30 x 30, rank 2 + 2) per
    generator and feature count, with GSI's fallback count and (where recorded) its path counts. The
    accuracy table of the closing note: ``python benchmarks/causal_imputation.py --gsi-grid [--noise 0.1]
    [--pattern full --mode loo]``."""
    from workbench.causal_imputation import Config, evaluate
    from workbench.causal_imputation.core import _dataset

    rows = []
    for F in features:
        for model in models:
            cfg = Config(n_features=F, noise=noise, pattern=pattern, observed_frac=observed, eval_mode=mode, **cfg_kw)
            ev = evaluate(_dataset(cfg, model), cfg, names=["si_a", "si_c", "gsi"])
            info = ev["info"]["gsi"]
            row = {"model": model, "F": F, **{n: round(ev["summary"][n]["r2_median"], 3) for n in ("si_a", "si_c", "gsi")},
                   "gsi_fallbacks": int((info["fallback"] != "none").sum()), "pairs": len(info["fallback"])}
            if "path" in info:
                u, c = np.unique(info["path"], return_counts=True)
                row["paths"] = {str(k): int(v) for k, v in zip(u, c)}
            rows.append(row)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--observed", type=float, default=0.2)
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gsi-grid", action="store_true", help="GSI accuracy per generator and F instead of timings")
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--pattern", default="block")
    ap.add_argument("--mode", default="heldout")
    ap.add_argument("--grid-observed", type=float, default=0.3)
    a = ap.parse_args()
    if a.gsi_grid:
        for r in gsi_grid(a.noise, pattern=a.pattern, observed=a.grid_observed, mode=a.mode):
            print(r)
        raise SystemExit
    for r in main(a.n, a.features, a.observed, a.subset, a.seed):
        print(f"{r['figure']:<55} {r['value']:>12} {r['unit']}")
