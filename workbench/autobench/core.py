"""``run(cfg)``: the complexity sweep of the algorithmic agents and the LLM agent's episodes beside the
baselines on the same graphs."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from ..llm import SamplingParams, load_llm
from ..seeding import derive_seed
from .agents import BASELINES, EVIDENCE_BASELINES, LLMAgent
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
    if cfg.hops != 1 and "social" in cfg.settings and any(a in EVIDENCE_BASELINES for a in cfg.agents):
        raise ValueError("the algorithmic baselines support the social setting with hops=1 only")
    if cfg.scoring not in ("strict", "lenient"):
        raise ValueError(f"scoring must be 'strict' or 'lenient', got {cfg.scoring!r}")
    if cfg.justification_max_chars < 1 or cfg.max_tokens < 1:
        raise ValueError("justification_max_chars and max_tokens must be >= 1")
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
        agent = LLMAgent(llm, SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens),
                         structured=cfg.structured, justification_max_chars=cfg.justification_max_chars)
        h2h, by_n, per_agent = {}, {}, {}
        for aname, ag in [("llm", agent)] + [(b, BASELINES[b]()) for b in baselines]:
            eps = run_episodes(ag, oracles, cfg.llm_max_rounds, derive_seed(cfg.seed, "agent", aname),
                               accept=cfg.scoring)
            for e, (setting, n) in zip(eps, keys):
                e["agent"] = aname
            per_agent[aname] = eps
            h2h[aname] = {setting: scores([e for e, k in zip(eps, keys) if k[0] == setting]) for setting in cfg.settings}
            by_n[aname] = {setting: {n: scores([e for e, k in zip(eps, keys) if k == (setting, n)])
                                     for n in cfg.llm_sizes} for setting in cfg.settings}
            if aname == "llm":
                out["llm_episodes"] = eps
        out["llm"] = {"head_to_head": h2h, "by_n": by_n, "queries": agent.queries,
                      "prompt_tokens": agent.prompt_tokens, "completion_tokens": agent.completion_tokens,
                      "effect": _effects(per_agent, keys, cfg.settings),
                      "malformed_reasons": sorted({h.get("error", "") for e in out["llm_episodes"]
                                                   for h in e["history"] if h["malformed"]})}
        llm_keys = ("success_rate", "success_se", "similarity", "similarity_se", "justification_validity",
                    "strict_rate", "lenient_only_rate", "unparsed_rate", "truncated_rate", "round_accuracy",
                    "lenient_success_rate", "lenient_similarity")
        base_keys = ("success_rate", "similarity", "justification_validity", "round_accuracy")
        summary["head_to_head"] = {a: {s: {k: v[k] for k in (llm_keys if a == "llm" else base_keys)}
                                       for s, v in d.items()} for a, d in h2h.items()}
        summary["llm_round_accuracy_by_n"] = {a: {s: _fmt({n: v["round_accuracy"] for n, v in d.items()})
                                                  for s, d in by_n[a].items()}
                                              for a in ("llm", "random_guess") if a in by_n}
        summary["effect"] = out["llm"]["effect"]
        summary["llm_queries"] = agent.queries
        summary["llm_completion_tokens"] = agent.completion_tokens
    out["summary"] = summary
    return out


def _effects(per_agent: dict, keys: list, settings) -> dict:
    """The LLM minus the content-free ``random_guess`` floor on the same graphs (paired per episode):
    success and final similarity, each with the standard error of the mean paired difference."""
    if "random_guess" not in per_agent:
        return {}
    out = {}
    for setting in settings:
        idx = [i for i, k in enumerate(keys) if k[0] == setting]
        res = {}
        for m, f in (("success", lambda e: float(e["success"])), ("similarity", lambda e: e["final_similarity"])):
            d = np.array([f(per_agent["llm"][i]) - f(per_agent["random_guess"][i]) for i in idx])
            res[f"{m}_diff"] = float(d.mean())
            res[f"{m}_diff_se"] = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[setting] = res
    return out
