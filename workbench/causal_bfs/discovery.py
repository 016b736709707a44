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
- answers are read by a strict rule (the authors' format, see ``parse``) that drives the traversal and
  the headline metrics; the same answers re-read by a lenient fallback give ``edges_lenient`` beside
  them (config ``parse_rule``; a BFS traversal under one rule only, so the lenient re-read never expands
  nodes the strict traversal did not reach). The reference splits on the tag, which crashes when the
  model omits it; unknown names are returned and counted; the reference also mutates the list it
  iterates over, which silently keeps some invalid items; we do not;
- constrained decoding (config ``structured``): answers held to ``<Answer>`` + ``none`` or a list of the
  variable names (pairwise: A/B/C) + ``</Answer>``, after bounded reasoning in the reference style;
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
from .parse import METHODS, parse_answer, parse_choice


class QueryCounter:
    """Sends batched requests and keeps query / call / token / truncation counts (summed from the
    completions, so a cached rerun reports the same counts as the original run)."""

    def __init__(self, llm, params: SamplingParams):
        if params.n != 1:
            raise ValueError("discovery queries use one sample per prompt (n=1)")
        self.llm, self.params = llm, params
        self.queries = self.calls = self.prompt_tokens = self.completion_tokens = self.truncated = 0

    def __call__(self, prompts: list, seeds: list[int]) -> list:
        comps = self.llm.generate(prompts, self.params, seeds=seeds)
        if len(comps) != len(prompts):
            raise RuntimeError(f"backend returned {len(comps)} completions for {len(prompts)} prompts")
        comps = sorted(comps, key=lambda c: c.index)
        self.calls += 1
        self.queries += len(prompts)
        self.prompt_tokens += sum(c.prompt_tokens for c in comps)
        self.completion_tokens += sum(c.completion_tokens for c in comps)
        self.truncated += sum(c.finish_reason == "length" for c in comps)
        return comps

    def counts(self) -> dict:
        return {"queries": self.queries, "calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "truncated": self.truncated}


PARSE_RULES = ("strict", "lenient")


def _category(strict_ok: bool, lenient_ok: bool) -> str:
    return "strict" if strict_ok else ("lenient_only" if lenient_ok else "unparsed")


def parse_shares(counts: Counter, queries: int, truncated: int) -> dict:
    """Per-method shares: parsed by the strict rule, only by a lenient fallback, unparsed, truncated."""
    q = max(queries, 1)
    return {"strict": counts.get("strict", 0), "lenient_only": counts.get("lenient_only", 0),
            "unparsed": counts.get("unparsed", 0), "truncated": truncated,
            "strict_share": counts.get("strict", 0) / q, "lenient_only_share": counts.get("lenient_only", 0) / q,
            "unparsed_share": counts.get("unparsed", 0) / q, "truncated_share": truncated / q}


def _check_rule(parse_rule: str) -> None:
    if parse_rule not in PARSE_RULES:
        raise ValueError(f"parse_rule must be one of {PARSE_RULES}, got {parse_rule!r}")


def bfs_discover(llm, problem: P.Problem, params: SamplingParams, seed: int, *, corr: pd.DataFrame | None = None,
                 style: str = "short", chat_history: bool = False, level_batched: bool = True,
                 progress: bool = False, structured: bool = False, reasoning_chars: int = 240,
                 parse_rule: str = "strict") -> dict:
    """Run BFS discovery. Returns plain data: ``edges`` (the traversal, read under ``parse_rule``),
    ``edges_lenient`` (the same answers re-read by the lenient parser), ``roots``, ``visited`` (query
    order), counts, parse shares, rejected edges and a per-query ``trace`` (prompt, response, edges so far).

    ``structured``: constrain every answer to ``<Answer>`` + ``none`` or a list of the variable names +
    ``</Answer>`` (after at most ``reasoning_chars`` characters of reasoning in the reference style)."""
    _check_rule(parse_rule)
    P.bfs_format(style, problem)  # raises on an unknown style
    names = problem.names
    init_ask = ask = QueryCounter(llm, params)
    if structured:  # the initialisation answer names at least one root (a DAG has one)
        ask = QueryCounter(llm, params.replace(structure=P.bfs_structure(problem, style, reasoning_chars)))
        init_ask = QueryCounter(llm, params.replace(structure=P.bfs_structure(problem, style, reasoning_chars, False)))
    cats: Counter = Counter()
    methods: Counter = Counter()
    unknown: list[dict] = []
    rejected: list[dict] = []
    trace: list[dict] = []
    g, g_len = nx.DiGraph(), nx.DiGraph()
    g.add_nodes_from(names)
    g_len.add_nodes_from(names)

    def read(comp, query):
        st = parse_answer(comp.text, names, "strict")
        le = parse_answer(comp.text, names, "lenient")
        cats[_category(st.parsed, le.parsed)] += 1
        methods[le.method] += 1
        pa = st if parse_rule == "strict" else le
        unknown.extend({"query": query, "item": u} for u in pa.unknown)
        return pa, le, {"parse": _category(st.parsed, le.parsed), "method": le.method, "note": le.note,
                        "truncated": comp.finish_reason == "length", "strict_answer": st.names,
                        "lenient_answer": le.names}

    def link(graph, node, children, root_set):
        added, rej = [], []
        for child in children:
            reason = ("self" if child == node else "root" if child in root_set
                      else "cycle" if would_create_cycle(graph, node, child) else None)
            if reason:
                rej.append({"edge": [node, child], "reason": reason})
                continue
            graph.add_edge(node, child)
            added.append(child)
        return added, rej

    sys_msg = P.system(problem)
    first = P.init_message(problem, style)
    chat = [sys_msg, {"role": "user", "content": first}]
    [comp] = init_ask([list(chat)], [derive_seed(seed, "bfs", problem.network, "init")])
    pa, le, info = read(comp, "init")
    roots, roots_len = list(pa.names), set(le.names)
    trace.append({"node": None, "prompt": prompt_text(chat), "response": comp.text, "answer": roots, **info,
                  "added": [], "rejected": [], "edges": []})
    if chat_history:
        chat.append({"role": "assistant", "content": comp.text})
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
            comps = ask(prompts, [derive_seed(seed, "bfs", problem.network, "expand", node) for node in chunk])
            for node, prompt, comp in zip(chunk, prompts, comps):
                if chat_history:
                    chat.append({"role": "assistant", "content": comp.text})
                pa, le, info = read(comp, node)
                added, rej = link(g, node, pa.names, set(roots))
                link(g_len, node, le.names, roots_len)
                for child in added:
                    if child in unvisited and child not in frontier:
                        frontier.append(child)
                known[node] = added
                rejected += rej
                visited.append(node)
                bar.update(1)
                trace.append({"node": node, "prompt": prompt_text(prompt), "response": comp.text, "answer": pa.names,
                              **info, "added": added, "rejected": rej, "edges": sorted(map(list, g.edges()))})
        unvisited -= set(frontier)
        level = frontier
    bar.close()
    assert nx.is_directed_acyclic_graph(g)
    counts = ask.counts()
    if init_ask is not ask:
        counts = {k: v + init_ask.counts()[k] for k, v in counts.items()}
    return {"edges": sorted(map(list, g.edges())), "edges_lenient": sorted(map(list, g_len.edges())),
            "roots": roots, "visited": visited, **counts, "parse_rule": parse_rule, "structured": structured,
            "parse": parse_shares(cats, counts["queries"], counts["truncated"]),
            "parse_methods": {k: methods.get(k, 0) for k in METHODS},
            "unknown_names": unknown, "rejected": rejected,
            "rejected_counts": dict(Counter(r["reason"] for r in rejected)), "trace": trace}


def pairwise_discover(llm, problem: P.Problem, params: SamplingParams, seed: int, *,
                      corr: pd.DataFrame | None = None, style: str = "short", structured: bool = False,
                      reasoning_chars: int = 240, parse_rule: str = "strict") -> dict:
    """Pairwise prompting: one A/B/C query per unordered pair, all in one batched call. ``edges`` are
    read under ``parse_rule``, ``edges_lenient`` by the lenient parser; an unreadable answer adds no
    edge and is counted as ``unparsed`` (in ``choices`` too), never read as an option."""
    _check_rule(parse_rule)
    names = problem.names
    if structured:
        params = params.replace(structure=P.pair_structure(style, reasoning_chars))
    rng = make_rng(seed, "pairwise", problem.network)
    pairs = []
    for a, b in combinations(names, 2):
        pairs.append((a, b) if rng.random() < 0.5 else (b, a))
    prompts = [[P.system(problem), {"role": "user", "content": P.pair_message(
        problem, a, b, style, None if corr is None else float(corr.loc[a, b]))}] for a, b in pairs]
    ask = QueryCounter(llm, params)
    comps = ask(prompts, [derive_seed(seed, "pairwise", problem.network, a, b) for a, b in pairs]) if pairs else []
    edges, edges_len, cats, methods, trace, unparsed = [], [], Counter(), Counter(), [], []

    def to_edge(choice, a, b):
        return [a, b] if choice == "A" else [b, a] if choice == "B" else None

    for (a, b), comp in zip(pairs, comps):
        st, _ = parse_choice(comp.text, "strict")
        le, how = parse_choice(comp.text, "lenient")
        cats[_category(st is not None, le is not None)] += 1
        methods[how] += 1
        choice = st if parse_rule == "strict" else le
        for c, out in ((choice, edges), (le, edges_len)):
            e = to_edge(c, a, b)
            if e:
                out.append(e)
        if choice is None:
            unparsed.append({"pair": [a, b], "response": comp.text[:200]})
        trace.append({"pair": [a, b], "response": comp.text, "choice": choice, "lenient_choice": le,
                      "parse": _category(st is not None, le is not None), "method": how,
                      "truncated": comp.finish_reason == "length"})
    counts = ask.counts()
    return {"edges": sorted(edges), "edges_lenient": sorted(edges_len), **counts, "parse_rule": parse_rule,
            "structured": structured, "parse": parse_shares(cats, counts["queries"], counts["truncated"]),
            "parse_methods": {k: methods.get(k, 0) for k in METHODS},
            "unparsed": unparsed, "choices": {k: v for k, v in sorted(Counter(
                t["choice"] or "unparsed" for t in trace).items())},
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
            return "<Answer>" + (", ".join(graph.successors(m[-1])) or "none") + "</Answer>"
        return "<Answer>" + ", ".join(roots) + "</Answer>"

    return respond
