"""causal_bfs: query counts with a scripted expert, the cycle check under adversarial answers, lenient
parsing, the pairwise baseline and a run() smoke test (scripted backend; no real model)."""
import re

import networkx as nx
import numpy as np
import pytest

from workbench import causal_bfs as cb
from workbench.causal_bfs import prompts as P_
from workbench.causal_bfs.core import score, use_structure
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


def test_pairwise_counts_and_perfect_expert(asia):
    net, prob = asia
    llm = _llm(cb.perfect_expert(net.graph))
    res = cb.pairwise_discover(llm, prob, P, 0)
    n = len(net.nodes)
    assert res["queries"] == n * (n - 1) // 2 and len(llm.calls) == 1
    assert {tuple(e) for e in res["edges"]} == set(net.edges)
    bad = cb.pairwise_discover(_llm(["I am not sure"]), prob, P, 0)
    assert bad["edges"] == [] and bad["parse"]["unparsed"] == bad["queries"] == len(bad["unparsed"])
    assert bad["choices"] == {"unparsed": bad["queries"]}


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
    cfg = cb.Config(datasets=("asia",), n_samples=300, scaling_networks=("asia", "sachs"), repeats=2)
    res = cb.run(cfg, llm=_llm(cb.perfect_expert(net.graph)), progress=False)
    s = res["summary"]
    assert res["structured"] is False  # auto: the scripted backend enforces nothing
    assert s["asia"]["bfs"]["f1"] == 1.0 and s["asia"]["bfs"]["queries"] == 2 * 9
    assert s["asia"]["bfs"]["strict_share"] == 1.0 and s["asia"]["bfs"]["f1_se"] == 0.0
    assert s["asia"]["pairwise"]["queries"] == 2 * 28 and s["asia"]["pairwise"]["pair_accuracy"] == 1.0
    orders = [r["variable_order"] for r in [res["datasets"]["asia"]["methods"]["bfs"]]]
    assert orders[0] != cb.load_problem("asia").names  # shuffled by default
    assert s["asia"]["pc"]["queries"] == 0 and 0 <= s["asia"]["pc"]["f1"] <= 1
    assert s["scaling"]["sachs"] == {"n": 11, "bfs_queries": 12, "pairwise_queries": 55}
    m = res["datasets"]["asia"]["methods"]["ges"]
    assert m["metrics"] == {**edge_metrics(net.edges, [tuple(e) for e in m["edges"]], net.nodes), "empty_prediction": False}


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
    with pytest.raises(ValueError, match="variable_order must be one of"):
        cb.run(cb.Config(variable_order="alphabetical"), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="structured must be one of"):
        cb.run(cb.Config(structured="yes"), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="parse_rule must be one of"):
        cb.run(cb.Config(parse_rule="loose"), llm=_llm(["x"]))
    with pytest.raises(ValueError, match="no reference variable order recorded for 'sachs'"):
        cb.load_problem("sachs").ordered("reference")


def test_description_files_cover_networks():
    for name in ("asia", "sachs", "child"):
        net = load_bnlearn(name)
        prob = cb.load_problem(name, net.nodes)  # raises if names differ
        assert all(len(d) > 10 for d in prob.variables.values())


@pytest.mark.model
def test_embedded_model_bfs_init_query_is_counted():
    llm = load_llm("default", threads=1)  # one torch thread: a shared CPU makes more threads far slower
    prob = cb.load_problem("asia")

    res = cb.bfs_discover(llm, prob, SamplingParams(temperature=0.7, max_tokens=24), 0, structured=True)
    assert res["queries"] == 1 + len(res["visited"])
    p = res["parse"]
    assert p["strict"] + p["lenient_only"] + p["unparsed"] == res["queries"]
    # constrained answers: every finished answer is in the strict format
    assert p["strict"] == res["queries"] - p["truncated"]


def _listed(text, names):
    return [m.group(1) for m in re.finditer(r"^(\S+): ", text, re.M) if m.group(1) in names]


def content_free(prompt, req):
    """Reads no description: the first listed variable is the root, each variable causes the next two
    listed. It scores only through the order the prompt lists variables in."""
    t = prompt_text(prompt)
    order = _listed(t, set(load_bnlearn("asia").nodes))
    asked = re.findall(r"caused by (\S+?)\.\n", t)
    if not asked:
        return "<Answer>" + order[0] + "</Answer>"
    i = order.index(asked[-1])
    return "<Answer>" + (", ".join(order[i + 1:i + 3]) or "none") + "</Answer>"


def test_shuffled_variable_order_removes_the_content_free_advantage(asia):
    net, prob = asia

    def f1(p):
        res = cb.bfs_discover(_llm(content_free), p, P, 0)
        return score(net.edges, [tuple(e) for e in res["edges"]], net.nodes)["f1"]

    assert f1(prob.ordered("file")) == pytest.approx(4 / 7)  # the description file lists asia topologically
    assert f1(prob.ordered("reference")) == pytest.approx(2 / 21)  # the reference code's order
    shuffled = [f1(prob.ordered("shuffled", s)) for s in range(30)]
    assert max(shuffled) < 4 / 7 and np.mean(shuffled) < 0.3
    assert len({tuple(prob.ordered("shuffled", s).names) for s in range(30)}) > 20  # the seed moves the order
    assert prob.ordered("shuffled", 3).names == prob.ordered("shuffled", 3).names


@pytest.mark.parametrize("network", cb.described_problems())
def test_format_example_is_not_an_edge_of_any_bundled_network(network):
    net = load_bnlearn(network)
    prob = cb.load_problem(network, net.nodes)
    for style in ("short", "reference"):
        fmt = P_.bfs_format(style, prob)
        for ex in re.findall(r"<Answer>([^<.]+)</Answer>", fmt):
            named = cb.parse_answer(f"<Answer>{ex}</Answer>", prob.names, "lenient").names
            assert named == [], (network, style, ex)  # placeholders name no variable...
            for node in prob.names:  # ...so read as any query's answer they state no edge
                assert not ({(node, c) for c in named} | {(c, node) for c in named}) & set(net.edges)
    # the old example (the first two listed variables) was a true edge on every bundled network
    assert (prob.names[0], prob.names[1]) in set(net.edges) or network not in ("asia", "child", "sachs")


def test_empty_prediction_scores_zero_flagged_and_recorded(asia, tmp_path):
    net, _ = asia
    m = score(net.edges, [], net.nodes)
    assert m["f1"] == 0.0 and m["empty_prediction"] and m["n_pred"] == 0
    assert np.isnan(edge_metrics(net.edges, [], net.nodes)["f1"])  # the shared metric leaves 0/0 undefined
    cfg = cb.Config(methods=("bfs",), scaling_networks=(), repeats=2)
    res = cb.run(cfg, llm=_llm(["<Answer>none</Answer>"]), progress=False)
    s = res["summary"]["asia"]["bfs"]
    assert s["f1"] == 0.0 and s["empty_predictions"] == 2 and s["strict_share"] == 1.0
    from workbench.results import record
    record(res, cfg, str(tmp_path / "run"), notebook_id="causal_bfs", print_summary=False)
    import json
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["metrics"]["summary"]["asia"]["bfs"]["f1"] == 0.0


def test_structured_answers_are_held_to_the_format(asia):
    net, prob = asia
    from workbench.llm.structure import StructureViolationError

    # the scripted backend checks every reply against the structure: a prose answer cannot pass
    with pytest.raises(StructureViolationError):
        cb.bfs_discover(_llm(["tub and lung"]), prob, P, 0, structured=True)
    with pytest.raises(StructureViolationError):
        cb.bfs_discover(_llm(["<Answer>tub, dragon</Answer>"]), prob, P, 0, structured=True)
    with pytest.raises(StructureViolationError):
        cb.pairwise_discover(_llm(["<Answer>D</Answer>"]), prob, P, 0, structured=True)
    with pytest.raises(StructureViolationError):  # the initialisation answer must name a root
        cb.bfs_discover(_llm(["<Answer>none</Answer>"]), prob, P, 0, structured=True)
    # the true graph's answers fit (short style: answer at once; reference: reasoning, then the tag)
    res = cb.bfs_discover(_llm(cb.perfect_expert(net.graph)), prob, P, 0, structured=True)
    assert {tuple(e) for e in res["edges"]} == set(net.edges) and res["parse"]["strict_share"] == 1.0
    s = P_.bfs_structure(prob, "reference", 40)
    assert s.matches("Smoking harms lungs. <Answer>lung, bronc</Answer>") and s.matches("<Answer>none</Answer>")
    assert not s.matches("x" * 41 + "<Answer>none</Answer>") and not s.matches("<Answer>lung,bronc</Answer>")
    pw = P_.pair_structure("reference", 30)
    assert pw.matches("No link. <Answer>C</Answer>") and not pw.matches("<Answer>A/B/C</Answer>")


def test_structured_auto_is_on_for_enforcing_engines_only():
    class Fake:
        def __init__(self, name):
            self.name = name

    cfg = cb.Config()
    assert [use_structure(cfg, Fake(n)) for n in ("transformers", "vllm", "openai", "scripted")] == \
        [True, True, False, False]
    assert use_structure(cb.Config(structured="off"), Fake("transformers")) is False
    assert use_structure(cb.Config(structured="on"), Fake("scripted")) is True
