"""Notebook entry point: exact tables, bias-vs-distance sweep, explorer grid, MC convergence, RL runs."""
from __future__ import annotations

import dataclasses
import time

import torch
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from .config import Config
from .estimators import KLConfig, off_policy_configs, on_policy_configs
from .exact import analyse, mc_convergence
from .policies import MLPPolicy, TabularPolicy, perturb
from .rl import ExactEvaluator, run_rl, train_reference


def _with_clamp(cfgs, clamp):
    return [dataclasses.replace(c, clamp=clamp) for c in cfgs]


def _strip(a: dict) -> dict:
    return {k: v for k, v in a.items() if not k.startswith("_")}


def _tiny(x: float, places: int = 4) -> float:
    """Round for the printed summary (exact zeros up to rounding print as 0.0)."""
    return round(float(x), places)


def _pair(policy, cfg: Config, delta: float, tag: str):
    ref = policy.init_params(derive_seed(cfg.seed, tag, "ref"), scale=cfg.ref_scale)
    return perturb(ref, delta, derive_seed(cfg.seed, tag, "pi", delta)), ref


def exact_tables(cfg: Config) -> dict:
    """The paper's expected-gradient table, computed, for the tabular and the neural policy, on- and off-policy."""
    on = _with_clamp(on_policy_configs(), cfg.clamp)
    off = _with_clamp(off_policy_configs(), cfg.clamp)
    out = {}
    for name, pol in (("tabular", TabularPolicy(cfg.V, cfg.L)), ("mlp", MLPPolicy(cfg.V, cfg.L, cfg.mlp_hidden))):
        pi, ref = _pair(pol, cfg, cfg.distance, name)
        mu = [p + cfg.behaviour_lag * (r - p) for p, r in zip(pi, ref)]
        out[name] = {"on_policy": _strip(analyse(pol, pi, ref, on)),
                     "off_policy": _strip(analyse(pol, pi, ref, off, mu_params=mu))}
    return out


def distance_sweep(cfg: Config, progress: bool = True) -> dict:
    """Relative bias, cosine and variance of each on-policy configuration as pi moves away from ref."""
    on = _with_clamp(on_policy_configs(), cfg.clamp)
    pol = TabularPolicy(cfg.V, cfg.L)
    pts = []
    for d in tqdm(cfg.sweep_distances, desc="distance sweep", disable=not progress):
        pi, ref = _pair(pol, cfg, d, "sweep")
        pts.append(_strip(analyse(pol, pi, ref, on)) | {"distance": d})
    return {"distances": list(cfg.sweep_distances), "points": pts}


def explorer_grid(cfg: Config, progress: bool = True) -> dict:
    """Exact analyses over a grid of (V, L, distance) for the bias explorer widget (tabular policy)."""
    on = _with_clamp(on_policy_configs(), cfg.clamp)
    grid = [(V, L, d) for V in cfg.explorer_V for L in cfg.explorer_L for d in cfg.sweep_distances]
    pts = {}
    for V, L, d in tqdm(grid, desc="explorer grid", disable=not progress):
        pol = TabularPolicy(V, L)
        pi, ref = _pair(pol, cfg, d, f"grid-{V}-{L}")
        pts[f"V={V},L={L},d={d}"] = _strip(analyse(pol, pi, ref, on))
    return {"V": list(cfg.explorer_V), "L": list(cfg.explorer_L), "distances": list(cfg.sweep_distances),
            "configs": [c.name for c in on], "points": pts}


def rl_experiments(cfg: Config, progress: bool = True) -> dict:
    """Reference pre-training, then one RL run per configuration on-policy and with a lagged behaviour policy."""
    if not 0 < cfg.n_heldout < cfg.n_prompts:
        raise ValueError(f"need 0 < n_heldout < n_prompts, got {cfg.n_heldout}, {cfg.n_prompts}")
    pol = MLPPolicy(cfg.rl_V, cfg.rl_L, cfg.rl_hidden, n_prompts=cfg.n_prompts)
    ref, ref_info = train_reference(pol, cfg.n_prompts, cfg.ref_accuracy, cfg.seed)
    ev = ExactEvaluator(pol, cfg.n_prompts, ref)
    train = list(range(cfg.n_prompts - cfg.n_heldout))
    held = list(range(cfg.n_prompts - cfg.n_heldout, cfg.n_prompts))
    jobs = [(n, 0) for n in cfg.rl_configs] + [(n, cfg.lag) for n in cfg.rl_offpolicy_configs]
    runs = []
    for name, lag in tqdm(jobs, desc="RL runs", disable=not progress):
        full = name if (name == "none" or cfg.clamp == "none") else f"{name} ({cfg.clamp} clamp)"
        r = run_rl(pol, ref, full, n_prompts=cfg.n_prompts, train_prompts=train, heldout_prompts=held,
                   steps=cfg.rl_steps, group=cfg.group, lr=cfg.lr, beta=cfg.beta, lag=lag, clip_eps=cfg.clip_eps,
                   kl_baseline=cfg.kl_baseline, kl_reward_logprobs=cfg.kl_reward_logprobs, eval_every=cfg.eval_every, diverge_kl=cfg.diverge_kl,
                   collapse_entropy=cfg.collapse_entropy, seed=cfg.seed, evaluator=ev)
        r["mode"] = "on-policy" if lag == 0 else f"off-policy (lag {lag})"
        runs.append(r)
    return {"reference": ref_info, "train_prompts": train, "heldout_prompts": held, "runs": runs}


def run(cfg: Config | None = None, progress: bool = True, parts: tuple = ("exact", "sweep", "explorer", "mc", "rl")) -> dict:
    """Everything the notebook shows, as plain data; ``results["summary"]`` holds the printed scalars."""
    cfg = cfg or Config()
    unknown = set(parts) - {"exact", "sweep", "explorer", "mc", "rl"}
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.torch_threads)
    timings = {}
    try:
        res: dict = {}
        t = time.perf_counter()
        if "exact" in parts:
            res["exact"] = exact_tables(cfg)
        timings["exact_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if "sweep" in parts:
            res["sweep"] = distance_sweep(cfg, progress)
        if "explorer" in parts:
            res["explorer"] = explorer_grid(cfg, progress)
        timings["sweep_explorer_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if "mc" in parts:
            pol = TabularPolicy(cfg.V, cfg.L)
            pi, ref = _pair(pol, cfg, cfg.distance, "tabular")
            res["mc"] = mc_convergence(pol, pi, ref, _with_clamp(on_policy_configs(), cfg.clamp), list(cfg.mc_ns),
                                       derive_seed(cfg.seed, "mc") % 100_000, progress)
        timings["mc_s"] = time.perf_counter() - t
        t = time.perf_counter()
        if "rl" in parts:
            res["rl"] = rl_experiments(cfg, progress)
        timings["rl_s"] = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    res["timings"] = timings  # wall times: not in the summary (they vary run to run)
    res["summary"] = summarize(res)
    return res


def summarize(res: dict) -> dict:
    s: dict = {}
    if "exact" in res:
        for pol, tabs in res["exact"].items():
            for mode, tab in tabs.items():
                s[f"exact.{pol}.{mode}.rev_kl"] = _tiny(tab["rev_kl"])
                for r in tab["rows"]:
                    s[f"exact.{pol}.{mode}.{r['config']}"] = {"rel_error": _tiny(r["rel_error"]),
                                                              "cosine": _tiny(r["cosine"])}
    if "sweep" in res:
        last = res["sweep"]["points"][-1]
        s["sweep.max_distance.rev_kl"] = _tiny(last["rev_kl"])
        for r in last["rows"]:
            s[f"sweep.max_distance.{r['config']}.rel_error"] = _tiny(r["rel_error"])
    if "rl" in res:
        s["rl.reference_accuracy"] = _tiny(sum(res["rl"]["reference"]["accuracy"]) / len(res["rl"]["reference"]["accuracy"]))
        for r in res["rl"]["runs"]:
            key = f"rl.{r['mode']}.{r['config']}"
            s[key] = {"train_accuracy": _tiny(r["final"]["train_accuracy"], 3),
                      "heldout_accuracy": _tiny(r["final"]["heldout_accuracy"], 3),
                      "train_kl": _tiny(r["final"]["train_kl"], 3), "heldout_kl": _tiny(r["final"]["heldout_kl"], 3),
                      "diverged": r["diverged"], "collapsed": r["collapsed"]}
    return s
