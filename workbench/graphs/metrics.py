"""Metrics over directed edges, structural Hamming distance, NHD, DAG checks, reachability.

NHD follows the causal-BFS paper: ``NHD = |pred xor true| / m**2`` and the "reference NHD" of a graph
with the same number of edges but none right, ``(|pred| + |true|) / m**2``; ``ratio = NHD / ref NHD``
(smaller is better). Which ``m``: by default (``nhd_nodes="all"``) ``m`` is the number of variables of
the problem. The public reference code passes its arguments in swapped order, so its ``m`` counts only
the nodes that appear in the *predicted* edges (``nhd_nodes="predicted"`` reproduces it). The ratio does
not depend on ``m`` and equals ``1 - F1`` exactly whenever both graphs are non-empty.
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx
import numpy as np

from .io import Edge, edges_of


def is_dag(graph) -> bool:
    """Whether a graph (DiGraph / edge iterable / adjacency matrix) has no directed cycle.

    >>> is_dag([("a", "b"), ("b", "c")]), is_dag([("a", "b"), ("b", "a")])
    (True, False)
    """
    if isinstance(graph, np.ndarray):
        g = nx.from_numpy_array(np.asarray(graph), create_using=nx.DiGraph)
    else:
        g = nx.DiGraph(list(edges_of(graph)))
    return nx.is_directed_acyclic_graph(g)


def would_create_cycle(graph: nx.DiGraph, u: str, v: str) -> bool:
    """Whether adding ``u -> v`` to ``graph`` would close a directed cycle (incl. a self-loop).

    >>> g = nx.DiGraph([("a", "b"), ("b", "c")])
    >>> would_create_cycle(g, "c", "a"), would_create_cycle(g, "a", "c")
    (True, False)
    """
    if u == v:
        return True
    return u in graph and v in graph and nx.has_path(graph, v, u)


def shd(true, pred) -> int:
    """Structural Hamming distance: node pairs whose edge status differs (missing, extra or reversed
    each count 1; a pair with both directions predicted against one true direction counts 1).

    >>> shd([("a", "b"), ("b", "c")], [("b", "a"), ("b", "c"), ("a", "c")])
    2
    """
    t, p = edges_of(true), edges_of(pred)
    pairs = {frozenset(e) for e in t | p}
    d = 0
    for pr in pairs:
        if len(pr) == 1:  # self-loop
            (a,) = pr
            d += ((a, a) in t) != ((a, a) in p)
            continue
        a, b = sorted(pr)
        d += (((a, b) in t), ((b, a) in t)) != (((a, b) in p), ((b, a) in p))
    return d


def classify_edges(true, pred) -> dict[str, list[Edge]]:
    """Split edges into ``correct`` (predicted as in truth), ``reversed`` (predicted ``v->u`` for a true
    ``u->v`` whose own direction was not predicted; listed as predicted), ``extra`` (other predicted
    edges) and ``missing`` (true edges with neither direction predicted).

    >>> c = classify_edges([("a", "b"), ("b", "c")], [("a", "b"), ("c", "b"), ("a", "c")])
    >>> c["correct"], c["reversed"], c["extra"], c["missing"]
    ([('a', 'b')], [('c', 'b')], [('a', 'c')], [])
    """
    t, p = edges_of(true), edges_of(pred)
    correct = sorted(t & p)
    rev = sorted((u, v) for u, v in p - t if (v, u) in t and (v, u) not in p)
    extra = sorted(e for e in p - t if e not in set(rev))
    missing = sorted((u, v) for u, v in t - p if (v, u) not in p)
    return {"correct": correct, "reversed": rev, "extra": extra, "missing": missing}


def edge_metrics(true, pred, nodes: Sequence[str] | None = None, *, nhd_nodes: str = "all") -> dict:
    """Precision, recall, F1 over directed edges; SHD; NHD, reference NHD and ratio; DAG flag.

    ``nodes``: the problem's variables (default: nodes named by either edge set). ``nhd_nodes``: which
    ``m`` normalises NHD: ``"all"`` (len(nodes)) or ``"predicted"`` (nodes in predicted edges, as the
    reference code effectively does). Undefined values (0/0) are NaN.

    >>> m = edge_metrics([("a", "b"), ("b", "c")], [("a", "b"), ("c", "b")], ["a", "b", "c"])
    >>> m["precision"], m["recall"], m["f1"], m["shd"], round(m["nhd"], 4), round(m["ratio"], 3)
    (0.5, 0.5, 0.5, 1, 0.2222, 0.5)
    """
    t, p = edges_of(true), edges_of(pred)
    if nodes is None:
        nodes = sorted({x for e in t | p for x in e})
    nodeset = set(nodes)
    bad = sorted({x for e in t | p for x in e} - nodeset)
    if bad:
        raise ValueError(f"edges name nodes not in the node list: {bad[:5]}")
    tp = len(t & p)
    nan = float("nan")
    precision = tp / len(p) if p else nan
    recall = tp / len(t) if t else nan
    f1 = (2 * precision * recall / (precision + recall)
          if p and t and (precision + recall) > 0 else (0.0 if p and t else nan))
    if nhd_nodes == "all":
        m = len(nodes)
    elif nhd_nodes == "predicted":
        m = len({x for e in p for x in e})
    else:
        raise ValueError(f"nhd_nodes must be 'all' or 'predicted', got {nhd_nodes!r}")
    diff = len(t ^ p)
    nhd = diff / m**2 if m else nan
    ref = (len(p) + len(t)) / m**2 if m else nan
    ratio = nhd / ref if (m and ref > 0) else nan
    return {"precision": precision, "recall": recall, "f1": f1, "shd": shd(t, p), "nhd": nhd,
            "ref_nhd": ref, "ratio": ratio, "n_pred": len(p), "n_true": len(t), "tp": tp,
            "is_dag": is_dag(p) if p else True, "nhd_m": m}


def reachability(adj: np.ndarray) -> np.ndarray:
    """``(n, n)`` 0/1 matrix ``R[i, j] = 1`` iff a directed path of length >= 1 leads from i to j.

    Boolean matrix powers by repeated squaring of ``(A + I)`` then removing paths of length 0
    (the diagonal is set only where i lies on a cycle).

    >>> reachability(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])).tolist()
    [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    """
    a = (np.asarray(adj) != 0).astype(np.int64)
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    r = a.copy()
    for _ in range(n + 1):  # path lengths covered double each pass; stops at the fixpoint
        r_new = ((r + r @ r) > 0).astype(np.int64)
        if np.array_equal(r_new, r):
            break
        r = r_new
    return r.astype(int)
