"""``run(cfg)``: BFS and pairwise LLM discovery beside PC and GES on bnlearn networks, plus the
query-count curve (BFS ~ n + 1 versus pairwise n(n-1)/2) answered by a perfect expert.

Scoring: the F1 of an empty prediction (no edge at all) is 0 and flagged (``empty_prediction``), not
NaN (``graphs.edge_metrics`` leaves 0/0 undefined; here an empty answer to a non-empty graph is a
failure and is recorded as one). LLM methods run ``cfg.repeats`` times, each with its own variable
order and sampling seeds; the summary holds mean and standard error over repeats, the strict reading
as the headline and the lenient re-read (``*_lenient``) beside it, and the parse shares per method.
"""
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
from .discovery import PARSE_RULES, bfs_discover, pairwise_discover, perfect_expert

METHODS = ("bfs", "bfs_stats", "pairwise", "pairwise_stats", "pc", "ges")
STRUCTURED = ("auto", "on", "off")
ENFORCING_BACKENDS = ("transformers", "vllm")  # engines that constrain decoding themselves


def use_structure(cfg: Config, llm) -> bool:
    """Whether answers are constrained: ``cfg.structured`` 'on'/'off', or 'auto' = on for the embedded
    model and the other engines that enforce structures (transformers, vllm)."""
    if cfg.structured == "auto":
        return getattr(llm, "name", "") in ENFORCING_BACKENDS
    return cfg.structured == "on"


def score(true, pred, nodes, nhd_nodes: str = "all") -> dict:
    """``edge_metrics`` with an empty prediction scored F1 = precision = recall = 0 and flagged."""
    m = edge_metrics(true, pred, nodes, nhd_nodes=nhd_nodes)
    m["empty_prediction"] = m["n_pred"] == 0
    if m["n_pred"] == 0 and m["n_true"] > 0:
        m["precision"], m["recall"], m["f1"] = 0.0, 0.0, 0.0
    return m


def _mean_se(xs) -> tuple[float, float]:
    xs = np.asarray([x for x in xs if x == x], dtype=float)
    if not len(xs):
        return float("nan"), float("nan")
    return float(xs.mean()), float(xs.std(ddof=1) / np.sqrt(len(xs))) if len(xs) > 1 else float("nan")


def pair_accuracy(trace, graph) -> float:
    """Share of pairwise answers (strict reading) naming the true option; unreadable counts as wrong."""
    if not trace:
        return float("nan")
    ok = 0
    for t in trace:
        a, b = t["pair"]
        truth = "A" if graph.has_edge(a, b) else "B" if graph.has_edge(b, a) else "C"
        ok += t["choice"] == truth
    return ok / len(trace)


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
    if cfg.structured not in STRUCTURED:
        raise ValueError(f"structured must be one of {STRUCTURED}, got {cfg.structured!r}")
    if cfg.parse_rule not in PARSE_RULES:
        raise ValueError(f"parse_rule must be one of {PARSE_RULES}, got {cfg.parse_rule!r}")
    if cfg.variable_order not in P.ORDERS:
        raise ValueError(f"variable_order must be one of {P.ORDERS}, got {cfg.variable_order!r}")
    if cfg.repeats < 1:
        raise ValueError("repeats must be >= 1")
    if cfg.prompt_style not in ("reference", "short"):
        raise ValueError(f"prompt_style must be 'reference' or 'short', got {cfg.prompt_style!r}")


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
               "bfs_f1": score(net.edges, [tuple(e) for e in res["edges"]], net.nodes)["f1"]}
        if n <= 40:
            pw = pairwise_discover(llm, prob, SamplingParams(temperature=0, max_tokens=8), seed)
            if pw["queries"] != row["pairwise_queries"]:
                raise AssertionError("pairwise query count differs from n(n-1)/2")
            row["pairwise_f1"] = score(net.edges, [tuple(e) for e in pw["edges"]], net.nodes)["f1"]
        rows.append(row)
    return rows


def run(cfg: Config, llm=None, progress: bool = True) -> dict:
    """Run every method of ``cfg.methods`` on every network of ``cfg.datasets``.

    Returns ``{"datasets": {name: {"nodes", "true_edges", "methods": {method: {...}}}}, "scaling": [...],
    "summary": {...}}``; each method entry holds ``edges``, ``metrics`` (strict reading), counts
    (queries, tokens) and, for LLM methods, ``metrics_lenient``, ``parse`` shares and ``repeats`` (one
    row per repeat; the entry itself is the first repeat, for the traces)."""
    _check(cfg)
    llm_methods = [m for m in cfg.methods if m.startswith(("bfs", "pairwise"))]
    if llm_methods and llm is None:
        llm = load_llm(cfg.backend)
    structured = bool(llm_methods) and use_structure(cfg, llm)
    bfs_params = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
    pw_params = bfs_params.replace(max_tokens=cfg.pairwise_max_tokens)
    out: dict = {"datasets": {}, "structured": structured, "parse_rule": cfg.parse_rule,
                 "variable_order": cfg.variable_order}
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
                                     "_df": df, "_corr": corr, "_prob": P.load_problem(name, net.nodes),
                                     "_graph": net.graph}
        ds = out["datasets"][name]
        df, corr, prob = ds["_df"], ds["_corr"], ds["_prob"]
        true = [tuple(e) for e in ds["true_edges"]]
        t0 = time.perf_counter()
        seed = derive_seed(cfg.seed, name)
        if method.startswith("pairwise") and len(prob.names) > cfg.pairwise_max_nodes:
            ds["skipped"][method] = (f"{len(prob.names)} nodes > pairwise_max_nodes={cfg.pairwise_max_nodes} "
                                     f"({len(prob.names) * (len(prob.names) - 1) // 2} queries)")
            continue
        if method in ("pc", "ges"):
            res = (run_pc(df, alpha=cfg.pc_alpha, jitter=cfg.jitter, seed=seed) if method == "pc"
                   else run_ges(df, jitter=cfg.jitter, seed=seed, score=cfg.ges_score))
            res["seconds"] = time.perf_counter() - t0  # wall time: informative only, never in the summary
            res["metrics"] = score(true, [tuple(e) for e in res["edges"]], ds["nodes"], cfg.nhd_nodes)
            ds["methods"][method] = res
            s = {k: res["metrics"][k] for k in ("precision", "recall", "f1", "shd", "nhd", "ratio", "is_dag", "n_pred")}
            s["queries"] = 0
            summary.setdefault(name, {})[method] = s
            continue
        reps = []
        for r in range(cfg.repeats):
            rseed = seed if r == 0 else derive_seed(cfg.seed, name, "repeat", r)
            rprob = prob.ordered(cfg.variable_order, derive_seed(cfg.seed, "variable_order", name, r))
            kw = dict(style=cfg.prompt_style, structured=structured, parse_rule=cfg.parse_rule)
            if method.startswith("bfs"):
                res = bfs_discover(llm, rprob, bfs_params, rseed, corr=corr if method == "bfs_stats" else None,
                                   chat_history=cfg.chat_history, level_batched=cfg.level_batched,
                                   progress=progress, reasoning_chars=cfg.reasoning_chars, **kw)
            else:
                res = pairwise_discover(llm, rprob, pw_params, rseed, reasoning_chars=cfg.pairwise_reasoning_chars,
                                        corr=corr if method == "pairwise_stats" else None, **kw)
                res["pair_accuracy"] = pair_accuracy(res["trace"], ds["_graph"])
            res["variable_order"] = rprob.names
            res["metrics"] = score(true, [tuple(e) for e in res["edges"]], ds["nodes"], cfg.nhd_nodes)
            res["metrics_lenient"] = score(true, [tuple(e) for e in res["edges_lenient"]], ds["nodes"], cfg.nhd_nodes)
            reps.append(res)
        first = reps[0]
        first["seconds"] = time.perf_counter() - t0  # wall time of all repeats: informative only
        first["repeats"] = [_repeat_row(x) for x in reps]
        ds["methods"][method] = first
        summary.setdefault(name, {})[method] = _llm_summary(reps)
    for ds in out["datasets"].values():
        for k in ("_df", "_corr", "_prob", "_graph"):
            ds.pop(k, None)
    out["scaling"] = query_scaling(cfg.scaling_networks, cfg.seed, progress) if cfg.scaling_networks else []
    summary["scaling"] = {r["network"]: {"n": r["n"], "bfs_queries": r["bfs_queries"],
                                         "pairwise_queries": r["pairwise_queries"]} for r in out["scaling"]}
    out["summary"] = summary
    out["nhd_m"] = ("number of variables" if cfg.nhd_nodes == "all"
                    else "nodes appearing in predicted edges (reference code)")
    return out


def _repeat_row(res: dict) -> dict:
    m, ml = res["metrics"], res["metrics_lenient"]
    row = {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "shd": m["shd"],
           "n_pred": m["n_pred"], "empty_prediction": m["empty_prediction"], "f1_lenient": ml["f1"],
           "n_pred_lenient": ml["n_pred"], "queries": res["queries"], "completion_tokens": res["completion_tokens"],
           **{k: res["parse"][k] for k in ("strict_share", "lenient_only_share", "unparsed_share", "truncated_share")}}
    if "pair_accuracy" in res:
        row["pair_accuracy"] = res["pair_accuracy"]
    return row


def _llm_summary(reps: list[dict]) -> dict:
    """Mean (and SE over repeats) of the headline metrics; parse shares pooled over all queries."""
    rows = [_repeat_row(r) for r in reps]
    s: dict = {"repeats": len(rows)}
    keys = ["f1", "f1_lenient", "precision", "recall", "shd", "n_pred"] + (["pair_accuracy"] if "pair_accuracy" in rows[0] else [])
    for k in keys:
        s[k], se = _mean_se([r[k] for r in rows])
        if k in ("f1", "f1_lenient", "pair_accuracy") and len(rows) > 1:
            s[k + "_se"] = se
    q = sum(r["queries"] for r in reps)
    for k in ("strict", "lenient_only", "unparsed", "truncated"):
        s[k + "_share"] = sum(r["parse"][k] for r in reps) / max(q, 1)
    s["empty_predictions"] = sum(r["empty_prediction"] for r in rows)
    s["queries"] = q
    s["completion_tokens"] = sum(r["completion_tokens"] for r in reps)
    return s
