"""Ancestral sampling of observational data.

Hand-written rather than ``pgmpy``'s ``BayesianModelSampling``: vectorised over samples with NumPy
(one categorical draw per node for all rows at once), seeded by an explicit generator, and it returns
integer state codes directly (what PC / GES / Pearson correlations consume). Tests check it against
exact marginals from pgmpy's variable elimination.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx
import numpy as np
import pandas as pd

from ..seeding import make_rng
from .io import BayesNet


def sample_bayesnet(net: BayesNet, n: int, seed: int | None = 0, *,
                    columns: str | Sequence[str] = "bnlearn") -> pd.DataFrame:
    """Draw ``n`` i.i.d. rows from ``net`` by ancestral sampling. Returns ``(n, len(nodes))`` int codes.

    ``columns`` orders the columns (see :meth:`BayesNet.column_order`): ``"bnlearn"`` (default: the
    order of data that the ``bnlearn`` package samples from the ``.bif`` file with pgmpy, as the
    causal-llm-bfs reference code does), ``"file"`` (declaration order), ``"topological"`` or an
    explicit permutation. The values do not depend on it: sampling always runs in topological order with
    the same draws, only the columns are laid out differently. Column order matters to PC (its edge
    orientations depend on it).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cols = net.column_order(columns)
    rng = make_rng(seed, "bayesnet", net.name)
    data: dict[str, np.ndarray] = {}
    for v in net.nodes:  # topological order
        cpt = net.cpts[v]  # (card_v, card_p1, ..., card_pk)
        if net.parents[v]:
            idx = tuple(data[p] for p in net.parents[v])  # k arrays of shape (n,)
            probs = cpt[(slice(None),) + idx].T  # (n, card_v)
        else:
            probs = np.broadcast_to(cpt.reshape(1, -1), (n, cpt.shape[0]))
        cum = np.cumsum(probs, axis=1)  # (n, card_v)
        u = rng.random(n)[:, None] * cum[:, -1:]
        data[v] = np.minimum((u >= cum).sum(axis=1), cpt.shape[0] - 1)
    return pd.DataFrame({v: data[v] for v in cols})


def sample_linear_gaussian(graph: nx.DiGraph, n: int, seed: int | None = 0, *, weights: dict | None = None,
                           weight_range: tuple[float, float] = (0.5, 2.0), noise_std: float = 1.0,
                           nodes: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Sample a linear-Gaussian SEM ``x_j = sum_i w_ij x_i + e_j`` over the DAG ``graph``.

    Weights are drawn uniformly from ``weight_range`` with a random sign unless given as
    ``{(u, v): w}``. Returns ``(data, weights)``; ``data`` columns follow ``nodes`` (default: graph order).
    """
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("sample_linear_gaussian needs a DAG")
    rng = make_rng(seed, "lingauss")
    if weights is None:
        lo, hi = weight_range
        weights = {e: float(rng.uniform(lo, hi) * rng.choice([-1, 1])) for e in graph.edges()}
    x: dict = {}
    for v in nx.topological_sort(graph):
        x[v] = noise_std * rng.standard_normal(n)
        for u in graph.predecessors(v):
            x[v] = x[v] + weights[(u, v)] * x[u]
    cols = list(nodes) if nodes is not None else list(graph.nodes())
    return pd.DataFrame({v: x[v] for v in cols}), weights
