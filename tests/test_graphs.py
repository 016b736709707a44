"""workbench.graphs: metrics on hand-made graphs, reachability, bnlearn loading, ancestral sampling
against exact enumeration, and PC / GES recovering a linear-Gaussian DAG's CPDAG."""
import itertools

import networkx as nx
import numpy as np
import pytest

from workbench.graphs import (adjacency, causallearn_to_edges, classify_edges, edge_metrics, from_dict, is_dag,
                              load_bnlearn, reachability, sample_bayesnet, sample_linear_gaussian, shd, to_dict,
                              would_create_cycle)

TRUE = [("a", "b"), ("b", "c"), ("c", "d")]
NODES = ["a", "b", "c", "d"]


def test_metrics_hand_made():
    pred = [("a", "b"), ("c", "b"), ("a", "d")]  # 1 correct, 1 reversed, 1 extra, c->d missing
    m = edge_metrics(TRUE, pred, NODES)
    assert m["tp"] == 1 and m["n_pred"] == 3 and m["n_true"] == 3
    assert m["precision"] == pytest.approx(1 / 3) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(1 / 3)
    # SHD: pair {b,c} reversed, {a,d} extra, {c,d} missing -> 3
    assert m["shd"] == 3
    # symmetric difference: (c,b),(a,d) predicted-only + (b,c),(c,d) true-only = 4 entries, m = 4 nodes
    assert m["nhd"] == pytest.approx(4 / 16) and m["ref_nhd"] == pytest.approx(6 / 16)
    assert m["ratio"] == pytest.approx(1 - m["f1"])
    c = classify_edges(TRUE, pred)
    assert c == {"correct": [("a", "b")], "reversed": [("c", "b")], "extra": [("a", "d")], "missing": [("c", "d")]}


def test_nhd_m_choices_and_ratio_identity():
    pred = [("a", "b"), ("b", "c")]
    all_m = edge_metrics(TRUE, pred, NODES + ["e"], nhd_nodes="all")
    ref_m = edge_metrics(TRUE, pred, NODES + ["e"], nhd_nodes="predicted")
    assert all_m["nhd_m"] == 5 and ref_m["nhd_m"] == 3  # reference: only a, b, c appear in predicted edges
    assert all_m["nhd"] == pytest.approx(1 / 25) and ref_m["nhd"] == pytest.approx(1 / 9)
    assert all_m["ratio"] == pytest.approx(ref_m["ratio"]) == pytest.approx(1 - all_m["f1"])
    rng = np.random.default_rng(0)
    for _ in range(20):  # ratio == 1 - F1 whenever both graphs are non-empty
        t = {(u, v) for u, v in itertools.permutations(NODES, 2) if rng.random() < 0.3} or {("a", "b")}
        p = {(u, v) for u, v in itertools.permutations(NODES, 2) if rng.random() < 0.3} or {("b", "a")}
        m = edge_metrics(t, p, NODES)
        assert m["ratio"] == pytest.approx(1 - m["f1"])


def test_metrics_perfect_empty_cyclic_and_errors():
    m = edge_metrics(TRUE, TRUE, NODES)
    assert (m["f1"], m["shd"], m["nhd"], m["is_dag"]) == (1.0, 0, 0.0, True)
    e = edge_metrics(TRUE, [], NODES)
    assert np.isnan(e["precision"]) and e["recall"] == 0 and np.isnan(e["f1"]) and e["shd"] == 3
    cyc = edge_metrics(TRUE, [("a", "b"), ("b", "a")], NODES)
    assert cyc["is_dag"] is False and cyc["shd"] == 3  # {a,b} status differs (both vs one) + 2 missing
    with pytest.raises(ValueError, match="not in the node list"):
        edge_metrics(TRUE, [("a", "zzz")], NODES)
    with pytest.raises(ValueError, match="nhd_nodes"):
        edge_metrics(TRUE, TRUE, NODES, nhd_nodes="bogus")


def test_shd_against_networkx_pairs():
    rng = np.random.default_rng(1)
    for _ in range(30):
        t = {(u, v) for u, v in itertools.permutations(NODES, 2) if rng.random() < 0.3}
        p = {(u, v) for u, v in itertools.permutations(NODES, 2) if rng.random() < 0.3}
        # independent count: compare 2x2 adjacency blocks per unordered pair
        at, ap = adjacency(t, NODES), adjacency(p, NODES)
        want = sum((at[i, j], at[j, i]) != (ap[i, j], ap[j, i]) for i, j in itertools.combinations(range(4), 2))
        assert shd(t, p) == want


def test_cycle_check_and_dag():
    g = nx.DiGraph([("a", "b"), ("b", "c")])
    assert would_create_cycle(g, "c", "a") and would_create_cycle(g, "b", "b")
    assert not would_create_cycle(g, "a", "c") and not would_create_cycle(g, "c", "new")
    assert is_dag(TRUE) and not is_dag(TRUE + [("d", "a")])


def test_reachability_matches_transitive_closure():
    rng = np.random.default_rng(2)
    for n in (1, 3, 6, 10):
        for _ in range(5):
            a = (rng.random((n, n)) < 0.25).astype(int)
            np.fill_diagonal(a, 0)
            g = nx.from_numpy_array(a, create_using=nx.DiGraph)
            tc = nx.transitive_closure(g, reflexive=False)
            want = nx.to_numpy_array(tc, nodelist=range(n), dtype=int)
            assert np.array_equal(reachability(a), want)


def test_causallearn_encoding():
    g = np.zeros((3, 3), dtype=int)
    g[1, 0], g[0, 1] = 1, -1  # 0 -> 1
    g[1, 2] = g[2, 1] = -1  # 1 -- 2 (undirected: both directions)
    assert causallearn_to_edges(g, ["x", "y", "z"]) == {("x", "y"), ("y", "z"), ("z", "y")}


def test_json_roundtrip():
    g = nx.DiGraph(TRUE)
    h = from_dict(to_dict(g))
    assert list(h.nodes) == list(g.nodes) and set(h.edges) == set(g.edges)
    with pytest.raises(ValueError):
        from_dict({"nodes": []})


def test_load_bnlearn_networks():
    asia = load_bnlearn("asia")
    assert len(asia.nodes) == 8 and set(asia.edges) == {
        ("asia", "tub"), ("tub", "either"), ("smoke", "lung"), ("smoke", "bronc"), ("lung", "either"),
        ("bronc", "dysp"), ("either", "xray"), ("either", "dysp")}
    for name, n, e in (("sachs", 11, 17), ("child", 20, 25)):
        net = load_bnlearn(name)
        assert (len(net.nodes), len(net.edges)) == (n, e)
        assert nx.is_directed_acyclic_graph(net.graph)
        for v in net.nodes:  # CPTs are normalised and node order is topological
            assert np.allclose(net.cpts[v].sum(axis=0), 1.0)
            assert all(net.nodes.index(p) < net.nodes.index(v) for p in net.parents[v])
    with pytest.raises(ValueError, match="unknown bnlearn network"):
        load_bnlearn("no_such_net")


def _exact_marginals(net):
    """Exact marginals by enumerating every joint state (independent of the sampler)."""
    cards = [net.card(v) for v in net.nodes]
    marg = {v: np.zeros(net.card(v)) for v in net.nodes}
    for states in itertools.product(*[range(c) for c in cards]):
        s = dict(zip(net.nodes, states))
        p = 1.0
        for v in net.nodes:
            p *= net.cpts[v][(s[v],) + tuple(s[q] for q in net.parents[v])]
        for v in net.nodes:
            marg[v][s[v]] += p
    return marg


def test_ancestral_sampling_matches_exact_enumeration():
    net = load_bnlearn("asia")
    df = sample_bayesnet(net, 40000, seed=3)
    assert list(df.columns) == net.nodes and df.shape == (40000, 8)
    exact = _exact_marginals(net)
    for v in net.nodes:
        freq = np.bincount(df[v], minlength=net.card(v)) / len(df)
        assert np.allclose(freq, exact[v], atol=0.01), v
    # a deterministic CPT (either = tub OR lung) holds on every row; codes: 0 = yes
    assert ((df["either"] == 0) == ((df["tub"] == 0) | (df["lung"] == 0))).all()
    assert sample_bayesnet(net, 50, seed=3).equals(sample_bayesnet(net, 50, seed=3))
    with pytest.raises(ValueError):
        sample_bayesnet(net, 0)


V_STRUCT = nx.DiGraph([("x", "z"), ("y", "z"), ("z", "w")])


def test_pc_recovers_linear_gaussian_cpdag():
    from workbench.causal_bfs.baselines import run_pc

    # v-structure x -> z <- y plus z -> w: the CPDAG is fully oriented
    df, _ = sample_linear_gaussian(V_STRUCT, 3000, seed=0, weight_range=(0.8, 1.5), nodes=["x", "y", "z", "w"])
    res = run_pc(df, alpha=0.01, seed=0)
    assert {tuple(e) for e in res["edges"]} == set(V_STRUCT.edges)
    # a chain a -> b -> c is Markov equivalent to its reversals: the CPDAG leaves both edges undirected
    chain = nx.DiGraph([("a", "b"), ("b", "c")])
    df, _ = sample_linear_gaussian(chain, 3000, seed=1, weight_range=(0.8, 1.5))
    res = run_pc(df, alpha=0.01, seed=0)
    assert {tuple(e) for e in res["edges"]} == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}


def test_ges_recovers_v_structure():
    from workbench.causal_bfs.baselines import run_ges

    df, _ = sample_linear_gaussian(V_STRUCT, 3000, seed=0, weight_range=(0.8, 1.5), nodes=["x", "y", "z", "w"])
    assert {tuple(e) for e in run_ges(df, seed=0)["edges"]} == set(V_STRUCT.edges)


def test_linear_gaussian_rejects_cycles():
    with pytest.raises(ValueError, match="DAG"):
        sample_linear_gaussian(nx.DiGraph([("a", "b"), ("b", "a")]), 10)
