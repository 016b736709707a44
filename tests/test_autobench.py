"""autobench: oracles agree with the hidden graph, the baselines' evidence model is sound, the
one-per-node agent always recovers reachability, malformed output costs a round and earns nothing, the
JSON answer schema, strict vs lenient reading and scoring, template echoes, intervention forms, the
random-guess floor against its closed form, scores, run() smoke."""
import json

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


def _text_agent(responses, max_tokens=64):
    """An LLM agent on the scripted backend writing free text (no structure: scripted texts need not be JSON)."""
    return ab.LLMAgent(load_llm("scripted", responses=responses, cache="off"),
                       ab.agents.SamplingParams(max_tokens=max_tokens), structured=False)


CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
CHAIN_JSON = json.dumps({"hypothesis": CHAIN.tolist(), "intervention": "M2",
                         "justification": "nothing observed yet, a chain is my prior"})


def test_malformed_output_costs_a_round_and_is_logged():
    oracles = [ab.make_oracle("chemistry", 3, 0.5, s) for s in range(2)]
    agent = _text_agent(["I like molecules."], max_tokens=32)
    eps = ab.run_episodes(agent, oracles, max_rounds=3, seed=0)
    for e in eps:
        assert e["rounds_played"] == 3 and e["malformed"] == 3 and e["interventions"] == 0
        assert all(h["malformed"] and "no hypothesis matrix" in h["error"] for h in e["history"])
        assert not e["success"] and np.isnan(e["justification_validity"])
        assert e["parse_counts"] == {"strict": 0, "lenient": 0, "unparsed": 3}
    s = ab.scores(eps)
    assert s["malformed_rate"] == 1.0 and s["unparsed_rate"] == 1.0 and s["strict_rate"] == 0.0
    assert agent.queries == 6


def test_malformed_episode_earns_nothing():
    """12 malformed rounds used to score the empty graph's similarity (0.75 on chemistry); now 0."""
    o = ab.Oracle("chemistry", np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]))
    assert o.similarity(np.zeros((3, 3))) > 0.8  # what a malformed episode was credited with before
    [e] = ab.run_episodes(_text_agent(["no idea"]), [o], max_rounds=3, seed=0)
    assert e["final_similarity"] == 0.0 and e["lenient_final_similarity"] == 0.0
    assert e["final_hypothesis"] is None and not e["exact_match"]
    s = ab.scores([e])
    assert s["similarity"] == 0.0 and s["lenient_similarity"] == 0.0 and s["success_rate"] == 0.0


def test_llm_agent_correct_json_succeeds_in_round_one():
    o = ab.Oracle("chemistry", CHAIN)
    agent = ab.LLMAgent(load_llm("scripted", responses=[CHAIN_JSON], cache="off"),
                        ab.agents.SamplingParams(max_tokens=64))  # structured: the scripted text is checked
    [e] = ab.run_episodes(agent, [o], max_rounds=4, seed=0)
    assert e["success"] and e["rounds"] == 1 and e["justification_validity"] == 1.0
    assert e["history"][0]["parse"] == "strict" and not e["history"][0]["truncated"]


def test_strict_vs_lenient_scoring_on_a_text_answer():
    """A right matrix in free text is read only by the fallback: strict scoring does not use it (the
    round is malformed, no intervention), the lenient view credits it; accept='lenient' acts on it."""
    o = ab.Oracle("chemistry", CHAIN)
    reply = "Hypothesis:\n[0, 1, 0]\n[0, 0, 1]\n[0, 0, 0]\nIntervention: M2\nJustification: a chain is my prior."
    [e] = ab.run_episodes(_text_agent([reply]), [o], max_rounds=2, seed=0)
    assert not e["success"] and e["malformed"] == 2 and e["interventions"] == 0
    assert e["parse_counts"] == {"strict": 0, "lenient": 2, "unparsed": 0}
    assert "lenient fallback" in e["history"][0]["error"] and e["history"][0]["lenient_hypothesis"] == CHAIN.tolist()
    s = ab.scores([e])
    assert s["success_rate"] == 0.0 and s["similarity"] == 0.0 and s["lenient_only_rate"] == 1.0
    assert s["lenient_success_rate"] == 1.0 and s["lenient_similarity"] == 1.0
    [e2] = ab.run_episodes(_text_agent([reply]), [o], max_rounds=2, seed=0, accept="lenient")
    assert e2["success"] and e2["rounds"] == 1 and ab.scores([e2])["similarity"] == 1.0
    # the same content as schema-valid JSON is strict under both rules
    [e3] = ab.run_episodes(_text_agent([CHAIN_JSON]), [o], max_rounds=2, seed=0)
    assert e3["success"] and e3["parse_counts"]["strict"] == 1
    with pytest.raises(ValueError, match="accept"):
        ab.run_episodes(_text_agent([reply]), [o], 2, 0, accept="loose")


def test_truncated_answer_is_never_strict_and_is_counted():
    names = ["M1", "M2", "M3"]
    a = ab.parse_llm_action(CHAIN_JSON, names, "chemistry", finish_reason="length")
    assert a.mode == "lenient" and a.truncated and a.intervention == 1  # complete JSON, but cut: not strict
    cut = CHAIN_JSON[:CHAIN_JSON.index('"justification"') + 20]
    b = ab.parse_llm_action(cut, names, "chemistry", finish_reason="length")
    assert b.mode == "lenient" and b.hypothesis.tolist() == CHAIN.tolist() and b.intervention == 1
    # the scripted backend cuts at max_tokens whitespace tokens and reports finish_reason "length"
    o = ab.Oracle("chemistry", CHAIN)
    [e] = ab.run_episodes(_text_agent([CHAIN_JSON], max_tokens=8), [o], max_rounds=2, seed=0)
    assert e["truncated"] == 2 and all(h["truncated"] for h in e["history"])
    assert ab.scores([e])["truncated_rate"] == 1.0 and not e["success"]


def test_parse_llm_action_formats():
    names = ["Ann", "Bob", "Cara"]
    a = ab.parse_llm_action("Ann - Bob\nBob - Cara\nintervene on cara", names, "social")
    assert a.error is None and a.parse["hypothesis"] == "edges" and a.intervention == 2 and a.mode == "lenient"
    assert a.hypothesis[0, 1] == 1 and a.hypothesis[1, 2] == 1
    b = ab.parse_llm_action("Hypothesis:\n0 1\n1 0\nIntervention: Zed", names, "social")
    assert b.error == "no hypothesis matrix; no valid intervention" and b.mode == "unparsed"
    c = ab.parse_llm_action("[[0, 1, 0], [1, 0, 0], [0, 0, 0]] then intervene on person Bob", names, "social")
    assert c.mode == "lenient" and c.parse["hypothesis"] == "matrix" and c.intervention == 1
    d = ab.parse_llm_action('{"hypothesis": [[0,1,1],[1,0,0],[1,0,0]], "intervention": "person cara"}', names,
                            "social")
    assert d.mode == "lenient" and d.parse["hypothesis"] == "loose json" and d.intervention == 2


@pytest.mark.parametrize("text, want", [
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nIntervention: molecule M2\nJustification: x", 1),
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nIntervention: [M2]", 1),
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\n[M2]", 1),
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nIntervention: **M3**", 2),
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nI will intervene on molecule m1.", 0),
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nIntervention: M12", None),  # not read as M1
    ("Hypothesis:\n0 1 0\n0 0 1\n0 0 0\nIntervention: molecule", None),
])
def test_intervention_forms_in_the_lenient_path(text, want):
    a = ab.parse_llm_action(text, ["M1", "M2", "M3"], "chemistry")
    assert a.intervention == want
    assert a.mode == ("lenient" if want is not None else "unparsed")


def test_action_schema_constrains_shape_values_and_targets():
    from workbench.llm import JsonSchema

    js = JsonSchema(ab.action_schema(["M1", "M2", "M3"], justification_max_chars=20))
    ok = {"hypothesis": CHAIN.tolist(), "intervention": "M3", "justification": "short reason"}
    assert js.matches(json.dumps(ok))
    bad = [{**ok, "hypothesis": [[0, 1], [0, 0], [0, 0]]}, {**ok, "hypothesis": CHAIN.tolist()[:2]},
           {**ok, "hypothesis": [[0, 2, 0], [0, 0, 1], [0, 0, 0]]}, {**ok, "intervention": "M4"},
           {**ok, "intervention": "molecule M3"}, {**ok, "justification": "x" * 21},
           {k: v for k, v in ok.items() if k != "intervention"}, {**ok, "extra": 1}]
    for b in bad:
        assert not js.matches(json.dumps(b)), b
        assert ab.parse_llm_action(json.dumps(b), ["M1", "M2", "M3"], "chemistry", js).mode != "strict"
    with pytest.raises(ValueError, match="at least 2"):
        ab.action_schema(["M1"])


def test_template_echoes_fail_the_justification_check():
    o = ab.Oracle("chemistry", CHAIN)
    s = ab.EpisodeState(0, "chemistry", o.names, 1, 3, [], 0)
    tmpl = ab.template_text(s)
    for echo in ("...", "", "…", "M3", "One short sentence", "one short sentence explaining your hypothesis "
                 "from the history", "Justification", "row i, column j is 1", "One short sentence explaining the point.",
                 "The next molecule to intervene on is M1"):
        a = ab.Action(CHAIN, 0, echo)
        jc = ab.justification_check(o, a, [], tmpl)
        assert jc["echo"] and not jc["valid"], echo
    a = ab.Action(CHAIN, 0, "No data yet; I guess a chain M1 -> M2 -> M3.")
    assert ab.justification_check(o, a, [], tmpl)["valid"]
    # through the loop: a right, strictly read answer whose justification is an echo
    reply = json.dumps({"hypothesis": CHAIN.tolist(), "intervention": "M1", "justification": "..."})
    [e] = ab.run_episodes(_text_agent([reply]), [o], max_rounds=1, seed=0)
    assert e["success"] and e["justification_validity"] == 0.0


def test_random_guess_matches_its_closed_form():
    """Chemistry, 2 nodes, empty hidden graph: a uniform 2x2 0/1 guess (diagonal ignored) is right iff
    both off-diagonal entries are 0, probability 1/4 per round; over 3 rounds 1 - (3/4)**3."""
    o = ab.Oracle("chemistry", np.zeros((2, 2), dtype=int))
    eps = ab.run_episodes(ab.RandomGuessAgent(), [o] * 800, max_rounds=3, seed=5)
    first = np.mean([e["history"][0].get("correct", False) for e in eps])
    assert first == pytest.approx(0.25, abs=3 * np.sqrt(0.25 * 0.75 / 800))
    p3 = 1 - 0.75 ** 3
    assert ab.scores(eps)["success_rate"] == pytest.approx(p3, abs=3 * np.sqrt(p3 * (1 - p3) / 800))
    assert all(np.isnan(e["justification_validity"]) or e["justification_validity"] == 0.0 for e in eps)


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
    cfg = ab.Config(sizes=(3, 5), graphs_per_size=3, llm_sizes=(3,), llm_graphs_per_size=2, max_rounds=6,
                    structured=False)
    res = ab.run(cfg, llm=load_llm("scripted", responses=["no idea"], cache="off"), progress=False)
    s = res["summary"]
    assert s["chemistry"]["one_per_node"]["success_rate"] == 1.0
    h = s["head_to_head"]["llm"]["social"]
    assert h["unparsed_rate"] == 1.0 and h["strict_rate"] == 0.0 and h["similarity"] == 0.0
    assert s["llm_queries"] == 2 * 2 * cfg.llm_max_rounds
    assert set(s["effect"]) == {"chemistry", "social"}
    assert {r["n"] for r in res["sweep"]} == {3, 5}
    with pytest.raises(ValueError, match="unknown agents"):
        ab.run(ab.Config(agents=("oracle",)))


def test_baselines_refuse_social_hops_above_one():
    o = ab.Oracle("social", ab.random_social_graph(4, 0.5, make_rng(0)), hops=2)
    with pytest.raises(ValueError, match="hops=1"):
        ab.run_episodes(ab.OnePerNodeAgent(), [o], 3, 0)
    with pytest.raises(ValueError, match="hops=1"):
        ab.run(ab.Config(hops=2, agents=("random",)))


def test_effect_is_the_paired_difference_to_random_guess():
    """run()'s effect: per-episode LLM minus random_guess on the same graphs, with the SE of the mean
    paired difference, checked against the episodes themselves."""
    def answer(prompt, req):  # always the empty graph, strictly valid JSON
        names = ["M1", "M2", "M3"] if "M1" in prompt else ["Ann", "Bob", "Cara"]
        return json.dumps({"hypothesis": [[0] * 3] * 3, "intervention": names[0], "justification": "no edges"})
    cfg = ab.Config(sizes=(3,), graphs_per_size=6, llm_sizes=(3,), llm_graphs_per_size=6, llm_max_rounds=2,
                    agents=("random_guess", "llm"))
    res = ab.run(cfg, llm=load_llm("scripted", responses=answer, cache="off"), progress=False)
    llm = [e for e in res["llm_episodes"] if e["setting"] == "chemistry"]
    assert all(e["parse_counts"]["unparsed"] == 0 and e["parse_counts"]["lenient"] == 0 for e in llm)
    sim_llm = np.array([e["final_similarity"] for e in llm])
    eff = res["summary"]["effect"]["chemistry"]
    h = res["llm"]["head_to_head"]
    assert eff["similarity_diff"] == pytest.approx(h["llm"]["chemistry"]["similarity"]
                                                   - h["random_guess"]["chemistry"]["similarity"])
    assert h["llm"]["chemistry"]["similarity_se"] == pytest.approx(sim_llm.std(ddof=1) / np.sqrt(6))
    assert eff["similarity_diff_se"] >= 0 and eff["success_diff_se"] >= 0


@pytest.mark.model
def test_embedded_model_answers_are_strict_under_the_schema(embedded_llm, one_torch_thread):
    """Constrained decoding on the embedded model: every answer that is not cut by max_tokens is read
    strictly (schema-valid JSON, an n x n 0/1 matrix and a node name), on both settings."""
    oracles = [ab.make_oracle("chemistry", 3, 0.4, 0), ab.make_oracle("social", 3, 0.4, 1)]
    agent = ab.LLMAgent(embedded_llm, ab.agents.SamplingParams(temperature=0.7, max_tokens=96),
                        justification_max_chars=40)
    eps = ab.run_episodes(agent, oracles, max_rounds=1, seed=0)
    for e in eps:
        [h] = e["history"]
        assert h["parse"] == "strict" or h["truncated"], h["raw"]
        if h["parse"] == "strict":
            d = json.loads(h["raw"])
            assert np.shape(d["hypothesis"]) == (3, 3) and d["intervention"] in e["names"]
            assert len(d["justification"]) <= 40
