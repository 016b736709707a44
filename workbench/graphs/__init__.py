"""Causal graph utilities shared by ``causal_bfs`` and ``autobench``.

- :mod:`.io`: graphs as networkx ``DiGraph`` / adjacency matrices / edge lists / JSON; the bnlearn
  networks that pgmpy ships in its wheel, read offline with ``BIFReader``.
- :mod:`.sampling`: ancestral sampling of observational data (discrete Bayesian networks, linear-Gaussian SEMs).
- :mod:`.metrics`: precision / recall / F1 over directed edges, SHD, NHD, reference NHD, ratio, DAG check,
  edge classification (correct / extra / missing / reversed), reachability.
"""
from .io import (COLUMN_ORDERS, BayesNet, adjacency, available_networks, causallearn_to_edges, edges_of,
                 from_dict, graph_from_edges, load_bnlearn, to_dict)
from .metrics import (classify_edges, edge_metrics, is_dag, reachability, shd, would_create_cycle)
from .sampling import sample_bayesnet, sample_linear_gaussian

__all__ = ["COLUMN_ORDERS", "BayesNet", "adjacency", "available_networks", "causallearn_to_edges", "edges_of",
           "from_dict", "graph_from_edges", "load_bnlearn", "to_dict", "classify_edges", "edge_metrics", "is_dag",
           "reachability", "shd", "would_create_cycle", "sample_bayesnet", "sample_linear_gaussian"]
