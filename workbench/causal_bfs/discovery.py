"""LLM causal discovery: the BFS algorithm of Jiralerspong et al. (2024) and the pairwise baseline.

BFS (paper, Algorithm 1): one initialisation query asks which variables are not affected by any other
(the roots); then each visited node X gets one expansion query listing the roots and the relationships
found so far ("which variables are caused by X?"), optionally with the Pearson correlations between X
and every other variable. Children not yet visited join the FIFO frontier, so the number of queries is
``1 + (number of visited nodes)``, at most ``n + 1``.

Differences from the public reference code, all deliberate:
- an explicit cycle check before each edge is added (the reference has none and can return a cyclic
  graph); rejected edges are counted. Answers naming a root, or the node itself, are rejected too (the
  reference drops roots; a self-loop is never a valid edge);
- lenient parsing (``parse.parse_answer``) instead of splitting on the tag, which crashes the reference
  when the model omits it; unknown names are returned and counted; the reference also mutates the list
  it iterates over, which silently keeps some invalid items; we do not;
- reconstruction (config ``chat_history``): the reference sends one growing chat; by default each query
  is a fresh prompt (variable list + roots + known relationships), which holds the same information and
  lets a level of the BFS be batched (config ``level_batched``: every frontier node of one BFS level is
  queried in one call and sees the relationships known when its level began; the visit order and the
  query count are the same as the FIFO order).

Pairwise baseline: one query per unordered pair (``n(n-1)/2``), options A / B / C with a seeded random
orientation per pair, optionally with the pair's Pearson correlation. Reconstruction: the reference also
lists previously decided edges in each pairwise prompt, which forces sequential queries; ours are
independent so they batch. No cycle check (as in the baseline), so its output may be cyclic.
"""
from __future__ import annotations

import re
from collections import Counter
from itertools import combinations
from typing import Callable

import networkx as nx
import pandas as pd
from tqdm.auto import tqdm

from ..graphs import would_create_cycle
from ..llm import SamplingParams, prompt_text
from ..seeding import derive_seed, make_rng
from . import prompts as P
from .parse import parse_answer, parse_choice


class QueryCounter:
    """Sends batched requests and keeps query / call / token counts (summed from the completions, so a
    cached rerun reports the same counts as the original run)."""

    def __init__(self, llm, params: SamplingParams):
        if params.n != 1:
            raise ValueError("discovery queries use one sample per prompt (n=1)")
        self.llm, self.params = llm, params
        self.queries = self.calls = self.prompt_tokens = self.completion_tokens = 0

    def __call__(self, prompts: list, seeds: list[int]) -> list[str]:
        comps = self.llm.generate(prompts, self.params, seeds=seeds)
        if len(comps) != len(prompts):
            raise RuntimeError(f"backend returned {len(comps)} completions for {len(prompts)} prompts")
        comps = sorted(comps, key=lambda c: c.index)
        self.calls += 1
        self.queries += len(prompts)
        self.prompt_tokens += sum(c.prompt_tokens for c in comps)
        self.completion_tokens += sum(c.completion_tokens for c in comps)
        return [c.text for c in comps]

    def counts(self) -> dict:
        return {"queries": self.queries, "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


def bfs_discover(llm, problem: P.Problem, params: SamplingParams, seed: int, *, corr: pd.DataFrame | None = None,
                 style: str = "short", chat_history: bool = False, level_batched: bool = True,
                 progress: bool = False) -> dict:
    """Run BFS discovery. Returns plain data: ``edges``, ``roots``, ``visited`` (query order), counts,
    parse statistics, rejected edges and a per-query ``trace`` (prompt, response, edges so far)."""
    names = problem.names
    ask = QueryCounter(llm, params)
    parse_counts: Counter = Counter()
    unknown: list[dict] = []
    rejected: list[dict] = []
    trace: list[dict] = []
    g = nx.DiGraph()
    g.add_nodes_from(names)
    sys_msg = P.system(problem)
    first = P.init_message(problem, style)
    chat = [sys_msg, {"role": "user", "content": first}]
    [text] = ask([list(chat)], [derive_seed(seed, "bfs", problem.network, "init")])
    pa = parse_answer(text, names)
    parse_counts[pa.method] += 1
    unknown += [{"query": "init", "item": u} for u in pa.unknown]
    roots = list(pa.names)
    trace.append({"node": None, "prompt": prompt_text(chat), "response": text, "answer": roots,
                  "parse": pa.method, "added": [], "rejected": [], "edges": []})
    if chat_history:
        chat.append({"role": "assistant", "content": text})
    known: dict[str, list[str]] = {}
    unvisited = set(names) - set(roots)
    visited: list[str] = []
    level = list(roots)
    bar = tqdm(total=len(names), desc=f"BFS {problem.network}", disable=not progress, leave=False)
    while level:
        batched = level_batched and not chat_history
        chunks = [level] if batched else [[x] for x in level]
        frontier: list[str] = []
        for chunk in chunks:
            prompts = []
            for node in chunk:
                if chat_history:
                    chat.append({"role": "user", "content": P.expansion_message(
                        problem, node, roots, known, style, corr, with_intro=False)})
                    prompts.append(list(chat))
                else:
                    prompts.append([sys_msg, {"role": "user", "content": P.expansion_message(
                        problem, node, roots, known, style, corr)}])
            texts = ask(prompts, [derive_seed(seed, "bfs", problem.network, "expand", node) for node in chunk])
            for node, prompt, text in zip(chunk, prompts, texts):
                if chat_history:
                    chat.append({"role": "assistant", "content": text})
                pa = parse_answer(text, names)
                parse_counts[pa.method] += 1
                unknown += [{"query": node, "item": u} for u in pa.unknown]
                added, rej = [], []
                for child in pa.names:
                    reason = ("self" if child == node else "root" if child in roots
                              else "cycle" if would_create_cycle(g, node, child) else None)
                    if reason:
                        rej.append({"edge": [node, child], "reason": reason})
                        continue
                    g.add_edge(node, child)
                    added.append(child)
                    if child in unvisited and child not in frontier:
                        frontier.append(child)
                known[node] = added
                rejected += rej
                visited.append(node)
                bar.update(1)
                trace.append({"node": node, "prompt": prompt_text(prompt), "response": text, "answer": pa.names,
                              "parse": pa.method, "added": added, "rejected": rej,
                              "edges": sorted(map(list, g.edges()))})
        unvisited -= set(frontier)
        level = frontier
    bar.close()
    assert nx.is_directed_acyclic_graph(g)
    return {"edges": sorted(map(list, g.edges())), "roots": roots, "visited": visited, **ask.counts(),
            "parse": {k: parse_counts.get(k, 0) for k in ("tag", "last_line", "text", "none")},
            "unknown_names": unknown, "rejected": rejected,
            "rejected_counts": dict(Counter(r["reason"] for r in rejected)), "trace": trace}


def pairwise_discover(llm, problem: P.Problem, params: SamplingParams, seed: int, *,
                      corr: pd.DataFrame | None = None, style: str = "short") -> dict:
    """Pairwise prompting: one A/B/C query per unordered pair, all in one batched call."""
    names = problem.names
    rng = make_rng(seed, "pairwise", problem.network)
    pairs = []
    for a, b in combinations(names, 2):
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    prompts = [[P.system(problem), {"role": "user", "content": P.pair_message(
        problem, a, b, style, None if corr is None else float(corr.loc[a, b]))}] for a, b in pairs]
    ask = QueryCounter(llm, params)
    texts = ask(prompts, [derive_seed(seed, "pairwise", problem.network, a, b) for a, b in pairs]) if pairs else []
    edges, parse_counts, trace, unparsed = [], Counter(), [], []
    for (a, b), text in zip(pairs, texts):
        choice, how = parse_choice(text)
        parse_counts[how] += 1
        if choice == "A":
            edges.append([a, b])
        elif choice == "B":
            edges.append([b, a])
        elif choice is None:
            unparsed.append({"pair": [a, b], "response": text[:200]})
        trace.append({"pair": [a, b], "response": text, "choice": choice, "parse": how})
    return {"edges": sorted(edges), **ask.counts(),
            "parse": {k: parse_counts.get(k, 0) for k in ("tag", "last_line", "text", "none")},
            "unparsed": unparsed, "choices": dict(Counter(t["choice"] or "unparsed" for t in trace)),
            "trace": trace}


def perfect_expert(graph: nx.DiGraph) -> Callable:
    """A scripted-backend responder that answers every BFS / pairwise prompt from the true graph.

    Used for the query-count curve and in tests (it is an oracle, not a model)."""
    roots = [v for v in graph.nodes if graph.in_degree(v) == 0]

    def respond(prompt, request) -> str:
        text = prompt_text(prompt)
        pair = re.findall(r'relationship between "([^"]+)" and "([^"]+)"', text)
        if pair:
            a, b = pair[-1]
            return "<Answer>A</Answer>" if graph.has_edge(a, b) else (
                "<Answer>B</Answer>" if graph.has_edge(b, a) else "<Answer>C</Answer>")
        m = re.findall(r"Select the variables that are caused by (\S+?)\.\n", text)
        if m:  # the last expansion question of the prompt (a growing chat holds several)
            return "<Answer>" + ", ".join(graph.successors(m[-1])) + "</Answer>"
        return "<Answer>" + ", ".join(roots) + "</Answer>"

    return respond
