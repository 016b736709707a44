"""Data-driven baselines from causal-learn, run as the reference runs them: the integer-coded data plus
N(0, jitter^2) noise; PC with Fisher-z tests, GES with the BIC score. An undirected (or bidirected)
CPDAG edge counts as both directions (see ``workbench.graphs.causallearn_to_edges``).

Two settings decide whether "as the reference runs them" holds with today's causal-learn:

- Column order. PC's (and, through tie-breaking, GES's) orientations depend on the order of the data's
  columns. The reference samples with pgmpy, whose columns follow the ``.bif`` declaration order, so the
  data loading lays columns out in file order by default (``sample_bayesnet(columns=...)``,
  ``Config.column_order``); ``columns=`` here reorders a given frame. :func:`column_order_study` measures
  how much PC's F1 moves over random column permutations of the same data.
- GES score. The reference pinned causal-learn 0.1.3.7, whose BIC score had twice the standard penalty
  (``n log sigma^2 + 2 k log n``) and searched at most n/2 parents; causal-learn 0.1.4 switched to the
  standard BIC (penalty ``lambda_value=0.5`` per parameter, times log N) with up to n parents, which gives
  denser graphs. ``ges_score="reference"`` (default) passes ``parameters={"lambda_value": 1.0}`` and
  ``maxP=n/2`` to reproduce 0.1.3.7; ``ges_score="library"`` keeps the installed library's defaults.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..graphs import causallearn_to_edges
from ..seeding import make_rng

GES_SCORES = ("reference", "library")


def _ordered(df: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    if columns is None:
        return df
    columns = list(columns)
    if sorted(columns) != sorted(df.columns) or len(set(columns)) != len(columns):
        raise ValueError(f"columns must be a permutation of the data's columns {list(df.columns)}, got {columns}")
    return df[columns]


def _jittered(df: pd.DataFrame, jitter: float, seed: int) -> np.ndarray:
    x = df.to_numpy(dtype=float)  # (N, n)
    if jitter > 0:
        x = x + jitter * make_rng(seed, "jitter").standard_normal(x.shape)
    return x


def run_pc(df: pd.DataFrame, *, alpha: float = 0.05, jitter: float = 1e-5, seed: int = 0,
           columns: Sequence[str] | None = None) -> dict:
    """PC (causal-learn, Fisher-z, stable). Returns ``edges`` (directed pairs) and the raw CPDAG matrix.

    PC sees the columns in ``columns`` order (default: the frame's own order); its orientations depend
    on it. ``cpdag`` is indexed in that order, listed under ``columns`` in the result."""
    from causallearn.search.ConstraintBased.PC import pc

    df = _ordered(df, columns)
    cg = pc(_jittered(df, jitter, seed), alpha, "fisherz", show_progress=False)
    g = np.asarray(cg.G.graph)
    return {"edges": sorted(map(list, causallearn_to_edges(g, list(df.columns)))), "cpdag": g.tolist(),
            "columns": list(df.columns), "queries": 0}


def ges_arguments(n_vars: int, score: str = "reference") -> dict:
    """Keyword arguments for ``causallearn...GES.ges`` under a score setting (see the module docstring).

    >>> ges_arguments(20)
    {'score_func': 'local_score_BIC', 'maxP': 10.0, 'parameters': {'lambda_value': 1.0}}
    >>> ges_arguments(20, "library")
    {'score_func': 'local_score_BIC', 'maxP': None, 'parameters': None}
    """
    if score == "reference":  # causal-learn 0.1.3.7: lambda 2 in n*log(sigma^2) + lambda*k*log(n); maxP = n/2
        return {"score_func": "local_score_BIC", "maxP": n_vars / 2, "parameters": {"lambda_value": 1.0}}
    if score == "library":
        return {"score_func": "local_score_BIC", "maxP": None, "parameters": None}
    raise ValueError(f"ges_score must be one of {GES_SCORES}, got {score!r}")


def run_ges(df: pd.DataFrame, *, jitter: float = 1e-5, seed: int = 0, score: str = "reference",
            columns: Sequence[str] | None = None) -> dict:
    """GES (causal-learn, BIC score). Returns ``edges`` and the raw CPDAG matrix.

    ``score="reference"``: the BIC penalty and parent limit of causal-learn 0.1.3.7 that the reference
    code ran; ``"library"``: the installed causal-learn's defaults (standard BIC, up to n parents)."""
    from causallearn.search.ScoreBased.GES import ges

    df = _ordered(df, columns)
    rec = ges(_jittered(df, jitter, seed), **ges_arguments(df.shape[1], score))
    g = np.asarray(rec["G"].graph)
    return {"edges": sorted(map(list, causallearn_to_edges(g, list(df.columns)))), "cpdag": g.tolist(),
            "columns": list(df.columns), "score": score, "queries": 0}


def column_order_study(df: pd.DataFrame, true_edges, *, n_perm: int = 10, seed: int = 0, method: str = "pc",
                       alpha: float = 0.05, jitter: float = 1e-5, ges_score: str = "reference",
                       fixed: dict[str, Sequence[str]] | None = None) -> dict:
    """Run PC (or GES) on the same data under ``n_perm`` random column permutations (plus the named
    orders in ``fixed``, e.g. ``{"file": ..., "topological": ...}``) and report F1 per order and the
    mean, standard deviation, min and max over the random permutations.

    The jitter noise is drawn once per ``seed`` and moves with its column, so only the order differs."""
    from ..graphs import edge_metrics

    if method not in ("pc", "ges"):
        raise ValueError("method must be 'pc' or 'ges'")
    if n_perm < 1:
        raise ValueError("n_perm must be >= 1")
    nodes = list(df.columns)
    noisy = pd.DataFrame(_jittered(df, jitter, seed), columns=nodes)  # same noise for every order
    rng = make_rng(seed, "column_order_study")
    orders = {k: list(v) for k, v in (fixed or {}).items()}
    perms = [[nodes[i] for i in rng.permutation(len(nodes))] for _ in range(n_perm)]
    rows = []
    runs = [(k, v, False) for k, v in orders.items()] + [(f"perm{i}", p, True) for i, p in enumerate(perms)]
    for label, order, is_random in runs:
        if method == "pc":
            res = run_pc(noisy, alpha=alpha, jitter=0.0, columns=order)
        else:
            res = run_ges(noisy, jitter=0.0, score=ges_score, columns=order)
        m = edge_metrics(list(map(tuple, true_edges)), [tuple(e) for e in res["edges"]], nodes)
        rows.append({"order": label, "f1": m["f1"], "shd": m["shd"], "n_pred": m["n_pred"],
                     "random": is_random})
    f1 = np.array([r["f1"] for r in rows if r["random"]], dtype=float)
    return {"rows": rows, "method": method, "n_perm": n_perm,
            "f1_mean": float(np.nanmean(f1)), "f1_std": float(np.nanstd(f1, ddof=1)) if n_perm > 1 else 0.0,
            "f1_min": float(np.nanmin(f1)), "f1_max": float(np.nanmax(f1))}


# F1 of the reference code's own baselines (superkaiba/causal-llm-bfs run.py with its pinned pgmpy 0.1.19,
# bnlearn 0.8.4 and causal-learn 0.1.3.7; n=1000, numpy seed 0), as measured and reported in issue 18.
REFERENCE_F1 = {"asia": {"pc": 0.625, "ges": 0.706}, "child": {"pc": 0.484, "ges": 0.556}}

# (label, column order, GES score) per method; "before" = this module's settings until the fix
SETTINGS = {"pc": [("bnlearn order (as the reference)", "bnlearn", None), ("file order", "file", None),
                   ("topological order (before)", "topological", None)],
            "ges": [("0.1.3.7 score (as the reference)", "bnlearn", "reference"),
                    ("library score, topological (before)", "topological", "library")]}


def f1_over_seeds(name: str, method: str, seeds, *, n_samples: int = 1000, column_order="bnlearn",
                  ges_score: str = "reference", alpha: float = 0.05, jitter: float = 1e-5) -> list[float]:
    """F1 of PC or GES on ``n_samples`` rows of bnlearn network ``name``, one sample (and jitter) per seed."""
    from ..graphs import edge_metrics, load_bnlearn, sample_bayesnet

    if method not in ("pc", "ges"):
        raise ValueError("method must be 'pc' or 'ges'")
    net = load_bnlearn(name)
    out = []
    for s in seeds:
        df = sample_bayesnet(net, n_samples, int(s), columns=column_order)
        res = (run_pc(df, alpha=alpha, jitter=jitter, seed=int(s)) if method == "pc"
               else run_ges(df, jitter=jitter, seed=int(s), score=ges_score))
        out.append(edge_metrics(net.edges, [tuple(e) for e in res["edges"]], net.nodes)["f1"])
    return out


def reference_comparison(networks=("asia", "child"), seeds=range(10), n_samples: int = 1000,
                         progress: bool = False) -> list[dict]:
    """Our PC / GES F1 under each of :data:`SETTINGS` over ``seeds`` (mean, sd, standard error, range)
    beside the reference's number (:data:`REFERENCE_F1`, one draw of its own sampler), with
    ``z = (reference - mean) / sd``: how many seed-to-seed standard deviations the reference lies away."""
    from tqdm.auto import tqdm

    seeds = list(seeds)
    rows = []
    jobs = [(n, m, s) for n in networks for m in ("pc", "ges") for s in SETTINGS[m]]
    for name, method, (label, order, score) in tqdm(jobs, desc="PC/GES over seeds", disable=not progress):
        f1 = np.array(f1_over_seeds(name, method, seeds, n_samples=n_samples, column_order=order,
                                    ges_score=score or "reference"), dtype=float)
        sd = float(np.std(f1, ddof=1)) if len(f1) > 1 else float("nan")
        ref = REFERENCE_F1.get(name, {}).get(method, float("nan"))
        rows.append({"network": name, "method": method, "setting": label, "reference_f1": ref,
                     "mean_f1": float(f1.mean()), "sd": sd, "se": sd / np.sqrt(len(f1)),
                     "min": float(f1.min()), "max": float(f1.max()), "seeds": len(f1),
                     "z": (ref - float(f1.mean())) / sd if sd > 0 else float("nan")})
    return rows
