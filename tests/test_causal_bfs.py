"""causal_bfs: query counts with a scripted expert, the cycle check under adversarial answers, lenient
parsing, the pairwise baseline and a run() smoke test (scripted backend; no real model)."""
import networkx as nx
import numpy as np
import pytest

from workbench import causal_bfs as cb
from workbench.graphs import edge_metrics, load_bnlearn
from workbench.llm import SamplingParams, load_llm, prompt_text

P = SamplingParams(temperature=0, max_tokens=64)


@pytest.fixture(scope="module")
def asia():
    net = load_bnlearn("asia")
    return net, cb.load_problem("asia", net.nodes)


def _llm(f):
    return load_llm("scripted", responses=f, cache="off")


@pytest.mark.parametrize("chat_history,level_batched", [(False, True), (False, False), (True, False)])
def test_bfs_perfect_expert_recovers_graph_with_n_plus_1_queries(asia, chat_history, level_batched):
    net, prob = asia
    llm = _llm(cb.perfect_expert(net.graph))
    res = cb.bfs_discover(llm, prob, P, 0, chat_history=chat_history, level_batched=level_batched)
    assert res["queries"] == 1 + len(res["visited"]) == len(net.nodes) + 1
    assert sum(len(c) for c in llm.calls) == res["queries"]
    assert {tuple(e) for e in res["edges"]} == set(net.edges)
    assert sorted(res["roots"]) == ["asia", "smoke"]
    if level_batched:  # init + one call per BFS level (roots; tub, lung, bronc; either, dysp; xray)
        assert res["calls"] == 1 + 4
    else:
        assert res["calls"] == res["queries"]
    if chat_history:  # one growing chat: every prompt holds the previous ones
        prompts = [c[0] for c in llm.calls]
        assert all(len(b) == len(a) + 2 for a, b in zip(prompts, prompts[1:]))


def test_bfs_queries_equal_one_plus_visited_when_not_all_reached(asia):
    net, prob = asia

    def expert(prompt, req):  # roots = asia only; asia causes tub; nothing else
        t = prompt_text(prompt)
        if "caused by asia." in t:
            return "<Answer>tub</Answer>"
        if "caused by" in t:
            return "<Answer></Answer>"
        return "<Answer>asia</Answer>"

    res = cb.bfs_discover(_llm(expert), prob, P, 0)
    assert res["visited"] == ["asia", "tub"] and res["queries"] == 3
    assert res["edges"] == [["asia", "tub"]]


def test_cycle_check_holds_on_adversarial_answers(asia):
    net, prob = asia
    names = prob.names
    for seed in range(8):
        rng = np.random.default_rng(seed)

        def adversary(prompt, req):  # random subsets of all names (plus junk) for every query
            picks = [n for n in names if rng.random() < 0.6] + ["not_a_variable"]
            return "blah <Answer>" + ", ".join(rng.permutation(picks)) + "</Answer>"

        for lb in (True, False):
            res = cb.bfs_discover(_llm(adversary), prob, P, seed, level_batched=lb)
            g = nx.DiGraph([tuple(e) for e in res["edges"]])
            assert nx.is_directed_acyclic_graph(g)
            assert res["queries"] == 1 + len(res["visited"])
            assert len(res["unknown_names"]) == res["queries"]  # the junk item is reported every time
            assert all(e[1] not in res["roots"] and e[0] != e[1] for e in res["edges"])
    # everything answers "all variables": the first expansion takes all non-roots, later ones cycle
    every = lambda p, r: "<Answer>" + ", ".join(names) + "</Answer>"
    res = cb.bfs_discover(_llm(lambda p, r: every(p, r) if "caused by" in prompt_text(p) else "<Answer>asia</Answer>"),
                          prob, P, 0)
    assert nx.is_directed_acyclic_graph(nx.DiGraph([tuple(e) for e in res["edges"]]))
    assert res["rejected_counts"].get("cycle", 0) > 0 and res["rejected_counts"]["root"] > 0


def test_parse_answer_lenient():
    names = ["asia", "tub", "lung"]
    assert cb.parse_answer("<answer> Tub; LUNG </answer>", names).names == ["tub", "lung"]
    r = cb.parse_answer("<Answer>tub, pulmonary cancer, zebra", names)  # unclosed tag
    assert r.method == "tag" and r.names == ["tub"] and r.unknown == ["pulmonary cancer", "zebra"]
    assert cb.parse_answer("<Answer>cancer of the lung (lung)</Answer>", names).names == ["lung"]
    r = cb.parse_answer("I think the effects are\n**tub** and lung.", names)
    assert r.method == "last_line" and r.names == ["tub", "lung"]
    r = cb.parse_answer("Smoking can cause lung problems.\nThat is all.", names)
    assert r.method == "text" and r.names == ["lung"]
    r = cb.parse_answer("no idea", names)
    assert r.method == "none" and r.names == [] and r.unknown == ["no idea"]
    assert cb.parse_answer("tuberculosis", names).names == []  # no substring matches inside words


def test_parse_choice():
    assert cb.parse_choice("<Answer> (b) </Answer>") == ("B", "tag")
    assert cb.parse_choice("So the answer is A.") == ("A", "last_line")
    assert cb.parse_choice("Option C. is right\nbecause reasons")[0] == "C"
    assert cb.parse_choice("") == (None, "none")


def test_pairwise_counts_and_perfect_expert(asia):
    net, prob = asia
    llm = _llm(cb.perfect_expert(net.graph))
    res = cb.pairwise_discover(llm, prob, P, 0)
    n = len(net.nodes)
    assert res["queries"] == n * (n - 1) // 2 and len(llm.calls) == 1
    assert {tuple(e) for e in res["edges"]} == set(net.edges)
    bad = cb.pairwise_discover(_llm(["I am not sure"]), prob, P, 0)
    assert bad["edges"] == [] and bad["parse"]["none"] == bad["queries"] == len(bad["unparsed"])


def test_correlations_enter_the_prompt(asia):
    net, prob = asia
    import pandas as pd

    corr = pd.DataFrame(np.eye(8) * 0 + 0.25, index=prob.names, columns=prob.names)
    llm = _llm(cb.perfect_expert(net.graph))
    cb.bfs_discover(llm, prob, P, 0, corr=corr)
    expansion = prompt_text(llm.calls[1][0])
    assert "Pearson correlation" in expansion and "tub: 0.25" in expansion
    assert "Pearson" not in prompt_text(llm.calls[0][0])  # not in the initialisation query


def test_run_smoke_scripted(asia):
    net, _ = asia
    cfg = cb.Config(datasets=("asia",), n_samples=300, scaling_networks=("asia", "sachs"))
    res = cb.run(cfg, llm=_llm(cb.perfect_expert(net.graph)), progress=False)
    s = res["summary"]
    assert s["asia"]["bfs"]["f1"] == 1.0 and s["asia"]["bfs"]["queries"] == 9
    assert s["asia"]["pairwise"]["queries"] == 28
    assert s["asia"]["pc"]["queries"] == 0 and 0 <= s["asia"]["pc"]["f1"] <= 1
    assert s["scaling"]["sachs"] == {"n": 11, "bfs_queries": 12, "pairwise_queries": 55}
    m = res["datasets"]["asia"]["methods"]["ges"]
    assert m["metrics"] == edge_metrics(net.edges, [tuple(e) for e in m["edges"]], net.nodes)


def test_run_config_errors():
    with pytest.raises(ValueError, match="unknown methods"):
        cb.run(cb.Config(methods=("bfs", "magic")), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="no variable descriptions"):
        cb.run(cb.Config(datasets=("alarm",)), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="column_order must be one of"):
        cb.run(cb.Config(column_order="sorted"), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="ges_score must be one of"):
        cb.run(cb.Config(ges_score="bdeu"), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="prompt_style"):
        cb.bfs_discover(_llm(["x"]), cb.load_problem("asia"), P, 0, style="fancy")


def test_description_files_cover_networks():
    for name in ("asia", "sachs", "child"):
        net = load_bnlearn(name)
        prob = cb.load_problem(name, net.nodes)  # raises if names differ
        assert all(len(d) > 10 for d in prob.variables.values())


@pytest.mark.model
def test_embedded_model_bfs_init_query_is_counted():
    llm = load_llm("default", threads=1)  # one torch thread: a shared CPU makes more threads far slower
    prob = cb.load_problem("asia")

    res = cb.bfs_discover(llm, prob, SamplingParams(temperature=0.7, max_tokens=16), 0)  # <= 9 short queries
    assert res["queries"] == 1 + len(res["visited"])
    assert sum(res["parse"].values()) == res["queries"]
