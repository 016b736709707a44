"""Claim: BFS causal discovery needs a number of LLM queries linear in the number of variables
(1 + visited <= n + 1) where pairwise prompting needs n(n-1)/2, and level batching cuts the sequential
model calls to the BFS depth + 1.

Measured on the bnlearn networks pgmpy ships, with a perfect expert (a scripted responder that reads
the true graph), so the counts reflect the algorithm rather than a model's mistakes. Also reports the
prompt size each strategy sends (characters, a tokenizer-free proxy): fresh prompts versus the
reference's single growing chat. No timing: the figures are counts, exact on any machine.

    .venv/bin/python benchmarks/causal_queries.py
"""
from __future__ import annotations

from workbench.causal_bfs import bfs_discover, load_problem, pairwise_discover, perfect_expert
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
    return rows


if __name__ == "__main__":
    for r in main():
        print(f"{r['figure']:<50} {r['value']:>12} {r['unit']}")
