"""autobench: oracles agree with the hidden graph, the baselines' evidence model is sound, the
one-per-node agent always recovers reachability, malformed output costs a round, scores, run() smoke."""
import networkx as nx
import numpy as np
import pytest

from workbench import autobench as ab
from workbench.graphs import reachability
from workbench.llm import load_llm
from workbench.seeding import make_rng


def _dags(k=40, sizes=range(2, 9), density=0.4):
    for n in sizes:
        for s in range(k):
            yield ab.random_dag(n, density, make_rng(s, "t", n))


def test_chemistry_oracle_reveals_descendants():
    for a in _dags(k=10):
        o = ab.Oracle("chemistry", a)
        g = nx.from_numpy_array(a, create_using=nx.DiGraph)
        for i in range(o.n):
            assert o.intervene(i) == sorted(nx.descendants(g, i))
        assert o.is_correct(a) and o.similarity(a) == 1.0


@pytest.mark.parametrize("hops", [1, 2])
def test_social_oracle_reveals_friends_within_hops(hops):
    for n in (3, 5, 8):
        for s in range(10):
            a = ab.random_social_graph(n, 0.4, make_rng(s, "soc", n))
            assert np.array_equal(a, a.T) and np.trace(a) == 0
            o = ab.Oracle("social", a, hops=hops)
            g = nx.from_numpy_array(a)
            for i in range(n):
                d = nx.single_source_shortest_path_length(g, i, cutoff=hops)
                assert o.intervene(i) == sorted(j for j, k in d.items() if 1 <= k <= hops)


def test_generators_seeded_and_dense_as_asked():
    a1 = ab.random_dag(6, 0.5, make_rng(3))
    assert np.array_equal(a1, ab.random_dag(6, 0.5, make_rng(3)))
    edges = [ab.random_dag(8, 0.3, make_rng(s)).sum() for s in range(300)]
    assert np.mean(edges) == pytest.approx(0.3 * 28, rel=0.05)
    for a in _dags(k=5):
        assert nx.is_directed_acyclic_graph(nx.from_numpy_array(a, create_using=nx.DiGraph))
    with pytest.raises(ValueError):
        ab.random_dag(1, 0.3, make_rng(0))
    with pytest.raises(ValueError, match="DAG"):
        ab.Oracle("chemistry", np.array([[0, 1], [1, 0]]))
    with pytest.raises(ValueError, match="symmetric"):
        ab.Oracle("social", np.array([[0, 1], [0, 0]]))
    with pytest.raises(ValueError, match="node index"):
        ab.Oracle("social", np.zeros((3, 3), dtype=int)).intervene(3)


def test_knowledge_inferences_are_sound():
    """Every entry the evidence model marks as known equals the true colour-change entry."""
    for idx, a in enumerate(_dags(k=15)):
        o = ab.Oracle("chemistry", a)
        rng = make_rng(idx, "subset")
        done = [int(i) for i in rng.permutation(o.n)[: rng.integers(0, o.n + 1)]]
        hist = [{"round": r + 1, "intervention": i, "observed": o.intervene(i), "malformed": False}
                for r, i in enumerate(done)]
        kn = ab.Knowledge(ab.EpisodeState(0, "chemistry", o.names, len(hist) + 1, 99, hist, 0))
        truth = o.change_matrix()
        known = kn.K >= 0
        assert np.array_equal(kn.K[known], truth[known])
        hyp = kn.hypothesis()
        assert np.array_equal(reachability(hyp)[known], truth[known])  # transitive reduction keeps closure


@pytest.mark.parametrize("agent", ["one_per_node", "greedy_info", "random"])
def test_baselines_always_recover_reachability_of_a_dag(agent):
    oracles = [ab.Oracle("chemistry", a) for a in _dags(k=15)]
    eps = ab.run_episodes(ab.BASELINES[agent](), oracles, max_rounds=9, seed=0)
    for e, o in zip(eps, oracles):
        assert e["success"] and e["rounds"] <= o.n + 1
        assert np.array_equal(o.change_matrix(np.array(e["final_hypothesis"])), o.change_matrix())
        assert e["justification_validity"] == 1.0 and e["malformed"] == 0
    s = ab.scores(eps)
    assert s["success_rate"] == 1.0 and s["similarity"] == 1.0


def test_greedy_needs_fewer_rounds_than_one_per_node_on_average():
    oracles = [ab.Oracle("chemistry", a) for a in _dags(k=20, sizes=[6, 8], density=0.3)]
    r = {a: np.mean([e["rounds"] for e in ab.run_episodes(ab.BASELINES[a](), oracles, 12, 0)])
         for a in ("one_per_node", "greedy_info")}
    assert r["greedy_info"] < r["one_per_node"]


def test_malformed_output_costs_a_round_and_is_logged():
    oracles = [ab.make_oracle("chemistry", 3, 0.5, s) for s in range(2)]
    agent = ab.LLMAgent(load_llm("scripted", responses=["I like molecules."], cache="off"),
                        ab.agents.SamplingParams(max_tokens=32))
    eps = ab.run_episodes(agent, oracles, max_rounds=3, seed=0)
    for e in eps:
        assert e["rounds_played"] == 3 and e["malformed"] == 3 and e["interventions"] == 0
        assert all(h["malformed"] and "no hypothesis matrix" in h["error"] for h in e["history"])
        assert not e["success"] and np.isnan(e["justification_validity"])
    assert ab.scores(eps)["malformed_rate"] == 1.0
    assert agent.queries == 6


def test_llm_agent_correct_matrix_succeeds_in_round_one():
    o = ab.Oracle("chemistry", np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]))
    reply = ("Hypothesis:\n[0, 1, 0]\n[0, 0, 1]\n[0, 0, 0]\nIntervention: M2\n"
             "Justification: nothing observed yet, a chain is my prior.")
    agent = ab.LLMAgent(load_llm("scripted", responses=[reply], cache="off"), ab.agents.SamplingParams(max_tokens=64))
    [e] = ab.run_episodes(agent, [o], max_rounds=4, seed=0)
    assert e["success"] and e["rounds"] == 1 and e["justification_validity"] == 1.0


def test_parse_llm_action_formats():
    names = ["Ann", "Bob", "Cara"]
    a = ab.parse_llm_action("Ann - Bob\nBob - Cara\nintervene on cara", names, "social")
    assert a.error is None and a.parse["hypothesis"] == "edges" and a.intervention == 2
    assert a.hypothesis[0, 1] == 1 and a.hypothesis[1, 2] == 1
    b = ab.parse_llm_action("Hypothesis:\n0 1\n1 0\nIntervention: Zed", names, "social")
    assert b.error == "no hypothesis matrix; no valid intervention"


def test_justification_validity_checks_citations_and_consistency():
    o = ab.Oracle("chemistry", np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]))
    hist = [{"round": 1, "intervention": 0, "observed": [1], "malformed": False}]
    good = ab.Action(np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]), 2, "I intervened on M1 and M2 changed.")
    assert ab.justification_check(o, good, hist)["valid"]
    invented = ab.Action(good.hypothesis, 2, "I intervened on M3 and nothing changed.")
    assert not ab.justification_check(o, invented, hist)["valid"]
    wrong = ab.Action(np.zeros((3, 3), dtype=int), 2, "I intervened on M1.")
    jc = ab.justification_check(o, wrong, hist)
    assert jc["cites_ok"] and not jc["consistent"] and not jc["valid"]


def test_similarity_hand_made():
    o = ab.Oracle("chemistry", np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]))  # C: 0->1, 0->2, 1->2
    assert o.similarity(np.zeros((3, 3))) == pytest.approx(3 / 6)
    assert o.similarity(np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])) == 1.0  # transitive edge: same C


def test_run_smoke_scripted():
    cfg = ab.Config(sizes=(3, 5), graphs_per_size=3, llm_sizes=(3,), llm_graphs_per_size=2, max_rounds=6)
    res = ab.run(cfg, llm=load_llm("scripted", responses=["no idea"], cache="off"), progress=False)
    s = res["summary"]
    assert s["chemistry"]["one_per_node"]["success_rate"] == 1.0
    assert s["head_to_head"]["llm"]["social"]["malformed_rate"] == 1.0
    assert s["llm_queries"] == 2 * 2 * cfg.llm_max_rounds
    assert {r["n"] for r in res["sweep"]} == {3, 5}
    with pytest.raises(ValueError, match="unknown agents"):
        ab.run(ab.Config(agents=("oracle",)))


def test_baselines_refuse_social_hops_above_one():
    o = ab.Oracle("social", ab.random_social_graph(4, 0.5, make_rng(0)), hops=2)
    with pytest.raises(ValueError, match="hops=1"):
        ab.run_episodes(ab.OnePerNodeAgent(), [o], 3, 0)
    with pytest.raises(ValueError, match="hops=1"):
        ab.run(ab.Config(hops=2, agents=("random",)))
