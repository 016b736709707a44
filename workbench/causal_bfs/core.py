"""``run(cfg)``: BFS and pairwise LLM discovery beside PC and GES on bnlearn networks, plus the
query-count curve (BFS ~ n + 1 versus pairwise n(n-1)/2) answered by a perfect expert."""
from __future__ import annotations

import time

import numpy as np
from tqdm.auto import tqdm

from ..graphs import COLUMN_ORDERS, edge_metrics, load_bnlearn, sample_bayesnet
from ..llm import SamplingParams, load_llm
from ..seeding import derive_seed
from . import prompts as P
from .baselines import GES_SCORES, run_ges, run_pc
from .config import Config
from .discovery import bfs_discover, pairwise_discover, perfect_expert

METHODS = ("bfs", "bfs_stats", "pairwise", "pairwise_stats", "pc", "ges")


def _check(cfg: Config) -> None:
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad:
        raise ValueError(f"unknown methods {bad}; choose from {METHODS}")
    missing = [d for d in cfg.datasets if d not in P.described_problems()]
    if missing:
        raise ValueError(f"no variable descriptions for {missing}; described: {P.described_problems()} "
                         f"(add workbench/causal_bfs/data/<network>.json)")
    if cfg.nhd_nodes not in ("all", "predicted"):
        raise ValueError("nhd_nodes must be 'all' or 'predicted'")
    if cfg.n_samples < 2:
        raise ValueError("n_samples must be >= 2")
    if cfg.column_order not in COLUMN_ORDERS:
        raise ValueError(f"column_order must be one of {COLUMN_ORDERS}, got {cfg.column_order!r}")
    if cfg.ges_score not in GES_SCORES:
        raise ValueError(f"ges_score must be one of {GES_SCORES}, got {cfg.ges_score!r}")


def query_scaling(networks, seed: int = 0, progress: bool = False) -> list[dict]:
    """Queries BFS issues with a perfect expert on each network, beside pairwise n(n-1)/2 (counted by
    running the pairwise method on the smaller networks and checked to equal the formula)."""
    rows = []
    for name in tqdm(networks, desc="query scaling", disable=not progress, leave=False):
        net = load_bnlearn(name)
        g = net.graph
        prob = P.load_problem(name, net.nodes)
        llm = load_llm("scripted", responses=perfect_expert(g), cache="off")
        res = bfs_discover(llm, prob, SamplingParams(temperature=0, max_tokens=512), seed)
        n = len(net.nodes)
        row = {"network": name, "n": n, "true_edges": len(net.edges), "bfs_queries": res["queries"],
               "pairwise_queries": n * (n - 1) // 2,
               "bfs_f1": edge_metrics(net.edges, [tuple(e) for e in res["edges"]], net.nodes)["f1"]}
        if n <= 40:
            pw = pairwise_discover(llm, prob, SamplingParams(temperature=0, max_tokens=8), seed)
            if pw["queries"] != row["pairwise_queries"]:
                raise AssertionError("pairwise query count differs from n(n-1)/2")
            row["pairwise_f1"] = edge_metrics(net.edges, [tuple(e) for e in pw["edges"]], net.nodes)["f1"]
        rows.append(row)
    return rows


def run(cfg: Config, llm=None, progress: bool = True) -> dict:
    """Run every method of ``cfg.methods`` on every network of ``cfg.datasets``.

    Returns ``{"datasets": {name: {"nodes", "true_edges", "methods": {method: {...}}}}, "scaling": [...],
    "summary": {...}}``; each method entry holds ``edges``, ``metrics`` and counts (queries, tokens)."""
    _check(cfg)
    llm_methods = [m for m in cfg.methods if m.startswith(("bfs", "pairwise"))]
    if llm_methods and llm is None:
        llm = load_llm(cfg.backend)
    bfs_params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
    pw_params = bfs_params.replace(max_tokens=cfg.pairwise_max_tokens)
    out: dict = {"datasets": {}}
    summary: dict = {}
    jobs = [(d, m) for d in cfg.datasets for m in cfg.methods]
    bar = tqdm(jobs, desc="causal discovery", disable=not progress)
    for name, method in bar:
        bar.set_postfix_str(f"{name}/{method}")
        if name not in out["datasets"]:
            net = load_bnlearn(name)
            df = sample_bayesnet(net, cfg.n_samples, derive_seed(cfg.seed, "data", name), columns=cfg.column_order)
            corr = df.corr().fillna(0.0)  # a constant column has no correlation: shown as 0.00
            out["datasets"][name] = {"nodes": net.nodes, "true_edges": [list(e) for e in net.edges],
                                     "n_samples": cfg.n_samples, "methods": {}, "skipped": {},
                                     "_df": df, "_corr": corr, "_prob": P.load_problem(name, net.nodes)}
        ds = out["datasets"][name]
        df, corr, prob = ds["_df"], ds["_corr"], ds["_prob"]
        t0 = time.perf_counter()
        seed = derive_seed(cfg.seed, name)
        if method in ("bfs", "bfs_stats"):
            res = bfs_discover(llm, prob, bfs_params, seed, corr=corr if method == "bfs_stats" else None,
                               style=cfg.prompt_style, chat_history=cfg.chat_history,
                               level_batched=cfg.level_batched, progress=progress)
        elif method in ("pairwise", "pairwise_stats"):
            if len(prob.names) > cfg.pairwise_max_nodes:
                ds["skipped"][method] = (f"{len(prob.names)} nodes > pairwise_max_nodes={cfg.pairwise_max_nodes} "
                                         f"({len(prob.names) * (len(prob.names) - 1) // 2} queries)")
                continue
            res = pairwise_discover(llm, prob, pw_params, seed, style=cfg.prompt_style,
                                    corr=corr if method == "pairwise_stats" else None)
        elif method == "pc":
            res = run_pc(df, alpha=cfg.pc_alpha, jitter=cfg.jitter, seed=seed)
        else:
            res = run_ges(df, jitter=cfg.jitter, seed=seed, score=cfg.ges_score)
        res["seconds"] = time.perf_counter() - t0  # wall time: informative only, never in the summary
        res["metrics"] = edge_metrics([tuple(e) for e in ds["true_edges"]],
                                      [tuple(e) for e in res["edges"]], ds["nodes"], nhd_nodes=cfg.nhd_nodes)
        ds["methods"][method] = res
        s = {k: res["metrics"][k] for k in ("precision", "recall", "f1", "shd", "nhd", "ratio", "is_dag", "n_pred")}
        s["queries"] = res.get("queries", 0)
        if "parse" in res:
            s["unparsed"] = res["parse"]["none"]
            s["completion_tokens"] = res["completion_tokens"]
        summary.setdefault(name, {})[method] = s
    for ds in out["datasets"].values():
        for k in ("_df", "_corr", "_prob"):
            ds.pop(k, None)
    out["scaling"] = query_scaling(cfg.scaling_networks, cfg.seed, progress) if cfg.scaling_networks else []
    summary["scaling"] = {r["network"]: {"n": r["n"], "bfs_queries": r["bfs_queries"],
                                         "pairwise_queries": r["pairwise_queries"]} for r in out["scaling"]}
    out["summary"] = summary
    out["nhd_m"] = ("number of variables" if cfg.nhd_nodes == "all"
                    else "nodes appearing in predicted edges (reference code)")
    return out
