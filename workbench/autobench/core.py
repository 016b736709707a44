"""``run(cfg)``: the complexity sweep of the algorithmic agents and the LLM agent's episodes beside the
baselines on the same graphs."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..llm import SamplingParams, load_llm
from ..seeding import derive_seed
from .agents import BASELINES, LLMAgent
from .config import Config
from .loop import run_episodes, scores
from .oracles import SETTINGS, make_oracle

KEEP_HISTORIES = 2  # per (setting, size, agent) in the sweep; the rest keep their scores only


def _check(cfg: Config) -> None:
    bad = [a for a in cfg.agents if a not in (*BASELINES, "llm")]
    if bad:
        raise ValueError(f"unknown agents {bad}; choose from {[*BASELINES, 'llm']}")
    bad = [s for s in cfg.settings if s not in SETTINGS]
    if bad:
        raise ValueError(f"unknown settings {bad}; choose from {SETTINGS}")
    if any(n < 2 or n > 26 for n in (*cfg.sizes, *cfg.llm_sizes)):
        raise ValueError("graph sizes must be between 2 and 26")
    if cfg.llm_graphs_per_size > cfg.graphs_per_size and "llm" in cfg.agents:
        raise ValueError("llm_graphs_per_size must be <= graphs_per_size (the LLM plays the first graphs)")
    if cfg.hops != 1 and "social" in cfg.settings and any(a in BASELINES for a in cfg.agents):
        raise ValueError("the algorithmic baselines support the social setting with hops=1 only")
    if cfg.max_rounds < 1 or cfg.llm_max_rounds < 1 or cfg.graphs_per_size < 1:
        raise ValueError("round budgets and graphs_per_size must be >= 1")


def _oracles(cfg: Config, setting: str, n: int, k: int):
    return [make_oracle(setting, n, cfg.density, derive_seed(cfg.seed, "graph", g), hops=cfg.hops)
            for g in range(k)]


def _fmt(xs: dict) -> str:
    return " ".join(f"{k}:{v:.2f}" for k, v in xs.items())


def run(cfg: Config, llm=None, progress: bool = True) -> dict:
    """Returns ``{"sweep": [rows], "episodes": [...], "llm": {...}, "summary": {...}}``; sweep rows are
    ``{"setting", "agent", "n", **scores}``; episodes keep per-round histories for the viewer."""
    _check(cfg)
    baselines = [a for a in cfg.agents if a in BASELINES]
    sweep, episodes = [], []
    jobs = [(s, n, a) for s in cfg.settings for n in cfg.sizes for a in baselines]
    for setting, n, aname in tqdm(jobs, desc="Auto-Bench sweep", disable=not progress):
        eps = run_episodes(BASELINES[aname](), _oracles(cfg, setting, n, cfg.graphs_per_size), cfg.max_rounds,
                           derive_seed(cfg.seed, "agent", aname))
        sweep.append({"setting": setting, "agent": aname, "n": n, **scores(eps)})
        for e in eps:
            e["agent"] = aname
            if e["episode"] >= KEEP_HISTORIES:
                e.pop("history")
        episodes += eps
    out: dict = {"sweep": sweep, "episodes": episodes}
    summary: dict = {}
    for setting in cfg.settings:
        for aname in baselines:
            rows = [r for r in sweep if r["setting"] == setting and r["agent"] == aname]
            summary.setdefault(setting, {})[aname] = {
                "success_rate": float(np.mean([r["success_rate"] for r in rows])),
                "similarity": float(np.mean([r["similarity"] for r in rows])),
                "success_by_n": _fmt({r["n"]: r["success_rate"] for r in rows})}
    # head to head on the LLM's episodes: the same graphs and round budget for every agent
    if "llm" in cfg.agents and cfg.llm_sizes:
        oracles, keys = [], []
        for setting in cfg.settings:
            for n in cfg.llm_sizes:
                oracles += _oracles(cfg, setting, n, cfg.llm_graphs_per_size)
                keys += [(setting, n)] * cfg.llm_graphs_per_size
        llm = llm if llm is not None else load_llm(cfg.backend)
        agent = LLMAgent(llm, SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens))
        h2h = {}
        for aname, ag in [("llm", agent)] + [(b, BASELINES[b]()) for b in baselines]:
            eps = run_episodes(ag, oracles, cfg.llm_max_rounds, derive_seed(cfg.seed, "agent", aname))
            for e, (setting, n) in zip(eps, keys):
                e["agent"] = aname
            h2h[aname] = {setting: scores([e for e, k in zip(eps, keys) if k[0] == setting]) for setting in cfg.settings}
            if aname == "llm":
                out["llm_episodes"] = eps
        out["llm"] = {"head_to_head": h2h, "queries": agent.queries, "prompt_tokens": agent.prompt_tokens,
                      "completion_tokens": agent.completion_tokens,
                      "malformed_reasons": sorted({h.get("error", "") for e in out["llm_episodes"]
                                                   for h in e["history"] if h["malformed"]})}
        summary["head_to_head"] = {a: {s: {k: v[k] for k in ("success_rate", "similarity", "justification_validity",
                                                            "malformed_rate")} for s, v in d.items()}
                                   for a, d in h2h.items()}
        summary["llm_queries"] = agent.queries
        summary["llm_completion_tokens"] = agent.completion_tokens
    out["summary"] = summary
    return out
