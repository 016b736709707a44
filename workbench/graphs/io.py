"""Graph I/O: networkx graphs, adjacency matrices, edge lists, JSON, and the bnlearn networks.

The bnlearn networks (asia, sachs, child, alarm, ...) are read offline from the ``*.bif.gz`` files that
pgmpy ships in ``pgmpy/utils/example_models/`` with ``pgmpy.readwrite.BIFReader`` (pgmpy's
``get_example_model`` is deprecated and its replacement downloads from a hub).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import networkx as nx
import numpy as np

Edge = tuple[str, str]
COLUMN_ORDERS = ("bnlearn", "file", "topological")


def _example_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pgmpy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("reading bnlearn networks needs pgmpy (pip install 'pgmpy<1.3')")
    return Path(list(spec.submodule_search_locations)[0]) / "utils" / "example_models"


def available_networks() -> list[str]:
    """Names of the bnlearn networks shipped with pgmpy (``asia``, ``child``, ...)."""
    return sorted(p.name[: -len(".bif.gz")] for p in _example_dir().glob("*.bif.gz"))


@dataclass
class BayesNet:
    """A discrete Bayesian network in plain arrays.

    ``nodes`` is a topological order. ``cpts[v]`` has shape ``(card[v], card[p1], ..., card[pk])`` for
    ``parents[v] == [p1, ..., pk]``: ``cpts[v][s, a1, ..., ak] = P(v = s | p1 = a1, ..., pk = ak)``.
    ``file_order`` is the order the variables are declared in the ``.bif`` file; ``bnlearn_order`` the
    order in which they first appear in the file's parent -> child edge list (probability blocks in file
    order, parents as listed), then any variable in no edge: the node order of the network that the
    ``bnlearn`` package builds (``BayesianNetwork(BIFReader.variable_edges)``), hence the column order of
    data sampled from it with pgmpy, as in the causal-llm-bfs reference code. Empty means unknown (then
    ``nodes`` is used).
    """

    name: str
    nodes: list[str]
    parents: dict[str, list[str]]
    cpts: dict[str, np.ndarray]
    states: dict[str, list[str]] = field(default_factory=dict)
    file_order: list[str] = field(default_factory=list)
    bnlearn_order: list[str] = field(default_factory=list)

    @property
    def edges(self) -> list[Edge]:
        return [(p, v) for v in self.nodes for p in self.parents[v]]

    @property
    def graph(self) -> nx.DiGraph:
        return graph_from_edges(self.edges, self.nodes)

    def card(self, v: str) -> int:
        return int(self.cpts[v].shape[0])

    def column_order(self, order: str | Sequence[str] = "bnlearn") -> list[str]:
        """Resolve a column order: ``"bnlearn"`` (see the class docstring: what the reference code's data
        has), ``"file"`` (the ``.bif`` declaration order), ``"topological"`` (``nodes``) or an explicit
        permutation of the node names.

        Constraint-based learners such as PC orient edges differently under different column orders of
        the same data, so the order is a parameter wherever data is handed to them.
        """
        if isinstance(order, str):
            if order == "bnlearn":
                return list(self.bnlearn_order or self.nodes)
            if order == "file":
                return list(self.file_order or self.nodes)
            if order == "topological":
                return list(self.nodes)
            raise ValueError(f"column order must be one of {COLUMN_ORDERS} or a list of the node names, "
                             f"got {order!r}")
        order = [str(v) for v in order]
        if sorted(order) != sorted(self.nodes):
            missing, extra = set(self.nodes) - set(order), set(order) - set(self.nodes)
            raise ValueError(f"column order must list each node of {self.name!r} once "
                             f"(missing {sorted(missing)}, unknown {sorted(extra)}, {len(order)} names for "
                             f"{len(self.nodes)} nodes)")
        return order


def _cache_dir() -> Path:
    env = os.environ.get("WORKBENCH_CACHE_DIR")
    if env:
        return Path(env) / "bnlearn"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("workbench")) / "bnlearn"


def _parse_bif(path: Path) -> BayesNet:
    from pgmpy.readwrite import BIFReader  # heavy import (~5-25 s on a shared 2-core CPU), kept lazy

    with gzip.open(path, "rt") as f:
        reader = BIFReader(string=f.read())
    model = reader.get_model()
    name = path.name[: -len(".bif.gz")]
    file_order = [str(v) for v in reader.variable_names]  # declaration order
    bnlearn_order: list[str] = []  # first appearance in the edge list, then the variables in no edge
    for v in [x for e in reader.variable_edges for x in e] + file_order:
        if str(v) not in bnlearn_order:
            bnlearn_order.append(str(v))
    g = nx.DiGraph()
    g.add_nodes_from(model.nodes())
    g.add_edges_from(model.edges())
    order = list(nx.lexicographical_topological_sort(g, key=list(model.nodes()).index))
    parents, cpts, states = {}, {}, {}
    for v in order:
        cpd = model.get_cpds(v)
        card = [int(c) for c in cpd.cardinality]
        parents[v] = list(cpd.variables[1:])
        cpts[v] = np.asarray(cpd.values, dtype=float).reshape(card)  # (card[v], card[ev0], ...)
        states[v] = [str(s) for s in cpd.state_names[v]]
    return BayesNet(name=name, nodes=order, parents=parents, cpts=cpts, states=states, file_order=file_order,
                    bnlearn_order=bnlearn_order)


@functools.lru_cache(maxsize=32)
def load_bnlearn(name: str, *, use_cache: bool = True) -> BayesNet:
    """Load a bnlearn network shipped with pgmpy as a :class:`BayesNet` (offline).

    The ``.bif.gz`` file is parsed with pgmpy's ``BIFReader`` (slow: ~1-8 s per network plus pgmpy's
    import); the parsed arrays are kept in a JSON cache under ``$WORKBENCH_CACHE_DIR/bnlearn`` (or the
    user cache dir) keyed by the file's SHA-256, so a changed pgmpy file is re-parsed. ``nodes`` is a
    topological order (ties broken by the file's order), so it is stable; ``file_order`` and
    ``bnlearn_order`` keep the file's declaration and edge-list orders (see :meth:`BayesNet.column_order`).
    """
    name = name.lower()
    path = _example_dir() / f"{name}.bif.gz"
    if not path.exists():
        raise ValueError(f"unknown bnlearn network {name!r}; pgmpy ships: {', '.join(available_networks())}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cpath = _cache_dir() / f"{name}-{digest}.v2.json"  # v2: holds file_order and bnlearn_order
    if use_cache and cpath.exists():
        try:
            d = json.loads(cpath.read_text())
            return BayesNet(name=d["name"], nodes=d["nodes"], parents=d["parents"],
                            cpts={k: np.asarray(v, dtype=float) for k, v in d["cpts"].items()}, states=d["states"],
                            file_order=d["file_order"], bnlearn_order=d["bnlearn_order"])
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: parse again below and overwrite it
    net = _parse_bif(path)
    if use_cache:
        try:
            cpath.parent.mkdir(parents=True, exist_ok=True)
            tmp = cpath.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"name": net.name, "nodes": net.nodes, "parents": net.parents,
                                       "cpts": {k: v.tolist() for k, v in net.cpts.items()},
                                       "states": net.states, "file_order": net.file_order,
                                       "bnlearn_order": net.bnlearn_order}))
            os.replace(tmp, cpath)
        except OSError:
            pass  # a read-only cache dir only costs the parse next time
    return net


def graph_from_edges(edges: Iterable[Edge], nodes: Sequence[str] | None = None) -> nx.DiGraph:
    """A ``DiGraph`` holding ``nodes`` (in order) and ``edges``; edges may name nodes not listed."""
    g = nx.DiGraph()
    if nodes is not None:
        g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g


def edges_of(graph) -> set[Edge]:
    """Directed edges of a ``DiGraph``, an edge iterable, or ``(adjacency, nodes)``.

    >>> sorted(edges_of([("a", "b"), ("b", "c")]))
    [('a', 'b'), ('b', 'c')]
    """
    if isinstance(graph, nx.Graph):
        if not graph.is_directed():
            return {(u, v) for u, v in graph.edges()} | {(v, u) for u, v in graph.edges()}
        return set(graph.edges())
    if isinstance(graph, tuple) and len(graph) == 2 and isinstance(graph[0], np.ndarray):
        a, nodes = graph
        return {(nodes[i], nodes[j]) for i, j in zip(*np.nonzero(a))}
    return {(u, v) for u, v in graph}


def adjacency(graph, nodes: Sequence[str]) -> np.ndarray:
    """``(n, n)`` 0/1 int matrix with ``A[i, j] = 1`` iff ``nodes[i] -> nodes[j]``.

    >>> adjacency([("a", "b")], ["a", "b"]).tolist()
    [[0, 1], [0, 0]]
    """
    idx = {v: i for i, v in enumerate(nodes)}
    a = np.zeros((len(nodes), len(nodes)), dtype=int)
    for u, v in edges_of(graph):
        if u not in idx or v not in idx:
            raise ValueError(f"edge {u}->{v} names a node not in the node list")
        a[idx[u], idx[v]] = 1
    return a


def causallearn_to_edges(g: np.ndarray, nodes: Sequence[str]) -> set[Edge]:
    """Directed edges of a causal-learn ``GeneralGraph.graph`` matrix.

    causal-learn encodes ``i -> j`` as ``G[j, i] == 1 and G[i, j] == -1``; an undirected CPDAG edge
    ``i -- j`` as ``G[i, j] == G[j, i] == -1`` and a bidirected ``i <-> j`` as ``G[i, j] == G[j, i] == 1``.
    Following the reference evaluation, an undirected or bidirected edge counts as both directions.
    """
    g = np.asarray(g)
    out = set()
    n = len(nodes)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if g[j, i] == 1 and g[i, j] == -1:
                out.add((nodes[i], nodes[j]))
            elif g[i, j] == g[j, i] and g[i, j] in (-1, 1):
                out.add((nodes[i], nodes[j]))
    return out


def to_dict(graph: nx.DiGraph) -> dict:
    """JSON-ready dict: ``{"nodes": [...], "edges": [[u, v], ...]}`` (node order kept)."""
    return {"nodes": list(graph.nodes()), "edges": [list(e) for e in graph.edges()]}


def from_dict(d: dict) -> nx.DiGraph:
    """Inverse of :func:`to_dict`."""
    if not isinstance(d, dict) or "nodes" not in d or "edges" not in d:
        raise ValueError("expected a dict with 'nodes' and 'edges'")
    return graph_from_edges([tuple(e) for e in d["edges"]], d["nodes"])
