"""Data-driven baselines from causal-learn, run as the reference runs them: the integer-coded data plus
N(0, jitter^2) noise; PC with Fisher-z tests, GES with the BIC score. An undirected (or bidirected)
CPDAG edge counts as both directions (see ``workbench.graphs.causallearn_to_edges``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..graphs import causallearn_to_edges
from ..seeding import make_rng


def _jittered(df: pd.DataFrame, jitter: float, seed: int) -> np.ndarray:
    x = df.to_numpy(dtype=float)  # (N, n)
    if jitter > 0:
        x = x + jitter * make_rng(seed, "jitter").standard_normal(x.shape)
    return x


def run_pc(df: pd.DataFrame, *, alpha: float = 0.05, jitter: float = 1e-5, seed: int = 0) -> dict:
    """PC (causal-learn, Fisher-z, stable). Returns ``edges`` (directed pairs) and the raw CPDAG matrix."""
    from causallearn.search.ConstraintBased.PC import pc

    cg = pc(_jittered(df, jitter, seed), alpha, "fisherz", show_progress=False)
    g = np.asarray(cg.G.graph)
    return {"edges": sorted(map(list, causallearn_to_edges(g, list(df.columns)))), "cpdag": g.tolist(),
            "queries": 0}


def run_ges(df: pd.DataFrame, *, jitter: float = 1e-5, seed: int = 0) -> dict:
    """GES (causal-learn, BIC score). Returns ``edges`` and the raw CPDAG matrix."""
    from causallearn.search.ScoreBased.GES import ges

    rec = ges(_jittered(df, jitter, seed), score_func="local_score_BIC")
    g = np.asarray(rec["G"].graph)
    return {"edges": sorted(map(list, causallearn_to_edges(g, list(df.columns)))), "cpdag": g.tolist(),
            "queries": 0}
