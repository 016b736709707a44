"""Hidden-graph oracles and seeded graph generators for the two Auto-Bench settings.

Chemistry (paper): a hidden DAG over molecules; intervening on a molecule changes the state (colour) of
every molecule downstream of it, directly or indirectly. The oracle reveals the set of molecules that
changed, i.e. the intervened node's descendants, so the "colour-change matrix" ``C[i, j]`` (intervening
on i changes j) is the reachability (transitive closure) of the DAG. Only C is identifiable from such
interventions (a transitive edge i->k beside i->j->k changes nothing observable), so success is judged on C.

Social network, reconstruction (the paper gives no formula): a hidden undirected friendship graph;
intervening on a person (telling them a piece of news) changes the state of exactly the people within
``hops`` friendship steps of them (default 1: their direct friends); the person themself is the
intervened unit and is not reported. With ``hops=1``, C is the adjacency matrix itself, so a hypothesis
succeeds only if it is the exact graph; larger ``hops`` make C a distance-threshold matrix and, as in
chemistry, success is judged on C.
"""
from __future__ import annotations

import numpy as np

from ..graphs import reachability

MOLECULES = [f"M{i + 1}" for i in range(26)]
PEOPLE = ["Ann", "Bob", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivan", "Jo", "Kim", "Lee", "Mia",
          "Ned", "Olga", "Pat", "Quin", "Rosa", "Sam", "Tia", "Uma", "Vic", "Wes", "Xia", "Yuri", "Zoe"]
SETTINGS = ("chemistry", "social")


def random_dag(n: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, n)`` 0/1 DAG adjacency: a random node order, each forward pair an edge with prob. ``density``."""
    if n < 2 or not 0 <= density <= 1:
        raise ValueError(f"need n >= 2 and 0 <= density <= 1, got n={n}, density={density}")
    order = rng.permutation(n)
    a = np.zeros((n, n), dtype=int)
    for x in range(n):
        for y in range(x + 1, n):
            if rng.random() < density:
                a[order[x], order[y]] = 1
    return a


def random_social_graph(n: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, n)`` symmetric 0/1 adjacency (Erdos-Renyi, edge prob. ``density``), zero diagonal."""
    if n < 2 or not 0 <= density <= 1:
        raise ValueError(f"need n >= 2 and 0 <= density <= 1, got n={n}, density={density}")
    up = np.triu((rng.random((n, n)) < density).astype(int), 1)
    return up + up.T


def _within_hops(adj: np.ndarray, hops: int) -> np.ndarray:
    a = (np.asarray(adj) != 0).astype(int)
    n = a.shape[0]
    reach = np.zeros_like(a)
    power = np.eye(n, dtype=int)
    for _ in range(hops):
        power = ((power @ a) > 0).astype(int)
        reach |= power
    np.fill_diagonal(reach, 0)
    return reach


class Oracle:
    """A hidden graph that answers single-node interventions.

    ``names``: node names; ``adj``: ``(n, n)`` hidden adjacency; ``change_matrix(h)``: ``(n, n)`` matrix
    ``C[i, j] = 1`` iff intervening on i changes j under hypothesis ``h`` (default: the hidden graph)."""

    def __init__(self, setting: str, adj: np.ndarray, *, hops: int = 1):
        if setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")
        adj = np.asarray(adj, dtype=int)
        n = adj.shape[0]
        if adj.shape != (n, n) or n > 26:
            raise ValueError(f"adjacency must be square with at most 26 nodes, got {adj.shape}")
        if setting == "chemistry" and np.trace(reachability(adj)) > 0:
            raise ValueError("the chemistry graph must be a DAG")
        if setting == "social" and not np.array_equal(adj, adj.T):
            raise ValueError("the social graph must be undirected (symmetric adjacency)")
        if hops < 1:
            raise ValueError("hops must be >= 1")
        self.setting, self.adj, self.hops, self.n = setting, adj, hops, n
        self.names = (MOLECULES if setting == "chemistry" else PEOPLE)[:n]
        self._truth = self.change_matrix(adj)

    def normalise(self, hyp: np.ndarray) -> np.ndarray:
        """A hypothesis as a 0/1 matrix with zero diagonal; social hypotheses are symmetrised (OR)."""
        h = (np.asarray(hyp) != 0).astype(int)
        if h.shape != (self.n, self.n):
            raise ValueError(f"hypothesis must be ({self.n}, {self.n}), got {h.shape}")
        np.fill_diagonal(h, 0)
        return np.maximum(h, h.T) if self.setting == "social" else h

    def change_matrix(self, hyp: np.ndarray | None = None) -> np.ndarray:
        if hyp is None:
            return self._truth.copy()
        h = self.normalise(hyp)
        if self.setting == "chemistry":
            c = reachability(h)
            np.fill_diagonal(c, 0)  # a cyclic hypothesis: self-reach is not an observable change
            return c
        return _within_hops(h, self.hops)

    def intervene(self, i: int) -> list[int]:
        """Indices of the nodes whose state changes when node ``i`` is intervened on."""
        if not isinstance(i, (int, np.integer)) or not 0 <= i < self.n:
            raise ValueError(f"intervention must be a node index in [0, {self.n}), got {i!r}")
        return [int(j) for j in np.nonzero(self._truth[i])[0]]

    def is_correct(self, hyp: np.ndarray) -> bool:
        return bool(np.array_equal(self.change_matrix(hyp), self._truth))

    def similarity(self, hyp: np.ndarray) -> float:
        """Reachability-based similarity: share of the ``n(n-1)`` off-diagonal colour-change entries that
        the hypothesis predicts correctly (1 = observationally equivalent). Reconstruction of the
        paper's score over colour-change matrices."""
        c = self.change_matrix(hyp)
        off = ~np.eye(self.n, dtype=bool)
        return float((c == self._truth)[off].mean())


def make_oracle(setting: str, n: int, density: float, seed: int, *, hops: int = 1) -> Oracle:
    from ..seeding import make_rng

    rng = make_rng(seed, "autobench", setting, n)
    adj = random_dag(n, density, rng) if setting == "chemistry" else random_social_graph(n, density, rng)
    return Oracle(setting, adj, hops=hops)
