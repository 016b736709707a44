"""Claim: BFS causal discovery needs a number of LLM queries linear in the number of variables
(1 + visited <= n + 1) where pairwise prompting needs n(n-1)/2, and level batching cuts the sequential
model calls to the BFS depth + 1.

Measured on the bnlearn networks pgmpy ships, with a perfect expert (a scripted responder that reads
the true graph), so the counts reflect the algorithm rather than a model's mistakes. Also reports the
prompt size each strategy sends (characters, a tokenizer-free proxy): fresh prompts versus the
reference's single growing chat. No timing: the figures are counts, exact on any machine.

Also: the F1 a content-free responder reaches on Asia only through the order the prompt lists the
variables in (root = first listed, each variable causes the next two listed), for the description
file's (topological) order, the reference code's order and seeded shuffles (the notebook's default).

    .venv/bin/python benchmarks/causal_queries.py
"""
from __future__ import annotations

import re

import numpy as np

from workbench.causal_bfs import bfs_discover, load_problem, pairwise_discover, perfect_expert
from workbench.causal_bfs.core import score
from workbench.graphs import load_bnlearn
from workbench.llm import SamplingParams, load_llm, prompt_text

NETWORKS = ("asia", "sachs", "child", "insurance", "alarm", "hepar2")


def _chars(llm) -> int:
    return sum(len(prompt_text(p)) for call in llm.calls for p in call)


def main(networks=NETWORKS, pairwise_max_nodes: int = 40) -> list[dict]:
    params = SamplingParams(temperature=0, max_tokens=512)
    rows = []
    for name in networks:
        net = load_bnlearn(name)
        n = len(net.nodes)
        prob = load_problem(name, net.nodes)
        runs = {}
        for mode, kw in (("batched", dict(level_batched=True)), ("sequential", dict(level_batched=False)),
                         ("growing chat", dict(chat_history=True))):
            llm = load_llm("scripted", responses=perfect_expert(net.graph), cache="off")
            res = bfs_discover(llm, prob, params, 0, **kw)
            assert {tuple(e) for e in res["edges"]} == set(net.edges)
            runs[mode] = (res, _chars(llm))
        res, chars = runs["batched"]
        pw_q = n * (n - 1) // 2
        rows += [{"figure": f"{name}: variables", "value": n, "unit": "nodes"},
                 {"figure": f"{name}: BFS queries", "value": res["queries"], "unit": "queries"},
                 {"figure": f"{name}: pairwise queries n(n-1)/2", "value": pw_q, "unit": "queries"},
                 {"figure": f"{name}: pairwise / BFS queries", "value": round(pw_q / res["queries"], 2), "unit": "x"},
                 {"figure": f"{name}: BFS sequential calls, level-batched", "value": res["calls"], "unit": "calls"},
                 {"figure": f"{name}: BFS prompt chars, fresh prompts", "value": chars, "unit": "chars"},
                 {"figure": f"{name}: BFS prompt chars, growing chat", "value": runs["growing chat"][1], "unit": "chars"}]
        if n <= pairwise_max_nodes:
            llm = load_llm("scripted", responses=perfect_expert(net.graph), cache="off")
            pw = pairwise_discover(llm, prob, SamplingParams(temperature=0, max_tokens=8), 0)
            assert pw["queries"] == pw_q
            rows.append({"figure": f"{name}: pairwise prompt chars", "value": _chars(llm), "unit": "chars"})
    return rows + content_free_rows()


def content_free_rows(n_shuffles: int = 30) -> list[dict]:
    net = load_bnlearn("asia")
    prob = load_problem("asia", net.nodes)

    def respond(prompt, req):
        t = prompt_text(prompt)
        order = [m.group(1) for m in re.finditer(r"^(\S+): ", t, re.M) if m.group(1) in prob.variables]
        asked = re.findall(r"caused by (\S+?)\.\n", t)
        if not asked:
            return "<Answer>" + order[0] + "</Answer>"
        i = order.index(asked[-1])
        return "<Answer>" + (", ".join(order[i + 1:i + 3]) or "none") + "</Answer>"

    def f1(p):
        res = bfs_discover(load_llm("scripted", responses=respond, cache="off"), p, SamplingParams(max_tokens=64), 0)
        return score(net.edges, [tuple(e) for e in res["edges"]], net.nodes)["f1"]

    sh = [f1(prob.ordered("shuffled", s)) for s in range(n_shuffles)]
    return [{"figure": "asia content-free F1, file (topological) order", "value": round(f1(prob.ordered("file")), 3), "unit": "F1"},
            {"figure": "asia content-free F1, reference code's order", "value": round(f1(prob.ordered("reference")), 3), "unit": "F1"},
            {"figure": f"asia content-free F1, {n_shuffles} shuffles: mean", "value": round(float(np.mean(sh)), 3), "unit": "F1"},
            {"figure": f"asia content-free F1, {n_shuffles} shuffles: SE", "value": round(float(np.std(sh, ddof=1) / np.sqrt(len(sh))), 3), "unit": "F1"}]


if __name__ == "__main__":
    for r in main():
        print(f"{r['figure']:<50} {r['value']:>12} {r['unit']}")
