"""Flat vs hierarchical action space on a known-truth reward where the hierarchy could matter.

With the notebook's learned reward on 16 blocks per cycle the two action spaces come out equal; the
paper's claim is that the hierarchical one (cycle -> cluster -> block) reaches high-reward libraries
faster on large building-block sets. This experiment (reconstruction: the paper publishes no code
and its reward is not reproducible offline) builds a larger pool of built-in blocks, clusters each
cycle by ECFP4 Jaccard distance exactly as the hierarchical environment does, and defines a
**known** per-product score

    logit p(b_1, ..., b_C) = sum_c z_c[b_c],   z_c[b] = sqrt(s) g_c[cluster(b)] + sqrt(1 - s) e_c[b],

with g, e ~ N(0, 1) drawn per seed and ``s`` = ``as_cluster_share`` the share of a block's score
variance that its cluster carries (s = 0: clusters carry no signal). The library reward is the
usual R(x) = exp(beta * mean p over L(x)) with a sharper beta. Both action spaces are trained with
TB at the same number of trajectories (= reward calls) and output the same number of libraries;
several seeds give a standard error. The known optimum (each cycle's highest-z blocks) gives each
sample's gap to the best library, and a mode here is a library within ``as_mode_gap`` of it (at
Jaccard distance >= ``mode_min_distance`` from the other modes). The hierarchy is a help only if sharing a cluster-level
decision outweighs trajectories three times as long; either outcome is possible.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from workbench.del_gflownet import baselines as bl
from workbench.del_gflownet.env import FlatDELEnv, HierarchicalDELEnv, cluster_blocks
from workbench.del_gflownet.metrics import library_set_metrics
from workbench.del_gflownet.reward import LibraryReward, TableScorer
from workbench.del_gflownet.train import build_gflownet, sample_libraries, train_gflownet
from workbench.seeding import derive_seed, make_rng

SPACES = ("flat", "hierarchical")


def cluster_table(clusters: list[np.ndarray], cluster_share: float, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The known score table p, shape (n_1, ..., n_C): sigmoid of a sum of per-block scores whose
    variance is split ``cluster_share`` : ``1 - cluster_share`` between cluster and block terms.
    Returns ``(p, z)`` with ``z[c]`` the per-block scores of cycle ``c``."""
    if not 0.0 <= cluster_share <= 1.0:
        raise ValueError(f"cluster_share must be in [0, 1], got {cluster_share}")
    rng = make_rng(seed, "cluster_table")
    z = []
    for lab in clusters:
        g = rng.normal(size=int(lab.max()) + 1)
        e = rng.normal(size=len(lab))
        z.append(math.sqrt(cluster_share) * g[lab] + math.sqrt(1.0 - cluster_share) * e)
    logit = np.zeros([len(v) for v in z])
    for c, v in enumerate(z):
        shape = [1] * len(z)
        shape[c] = len(v)
        logit = logit + v.reshape(shape)
    return 1.0 / (1.0 + np.exp(-logit)), z


def optimal_library(z: list[np.ndarray], quotas: list[int]) -> np.ndarray:
    """The best library of a :func:`cluster_table` reward: p rises with every z, so swapping a block
    for one with a higher z raises every affected product and the mean; the optimum is each cycle's
    ``quotas[c]`` highest-z blocks. Bits (N,) bool."""
    parts = []
    for v, q in zip(z, quotas):
        b = np.zeros(len(v), dtype=bool)
        b[np.argsort(-v, kind="stable")[:q]] = True
        parts.append(b)
    return np.concatenate(parts)


def _se(v) -> float:
    v = np.asarray(v, float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def run_action_space(cfg, full, *, progress: bool = False) -> dict:
    """Train flat and hierarchical TB GFlowNets on ``cfg.action_space_seeds`` known-truth rewards.

    Returns ``per_seed`` (seed -> space -> metrics), ``summary`` (space -> mean and SE of mean p,
    top-k mean p and mode count), the difference hierarchical - flat (mean, SE over seeds) and the
    setting. ``full`` is the building-block set the pool is drawn from.
    """
    n_seeds = int(cfg.action_space_seeds)
    if n_seeds < 1:
        raise ValueError("action_space_seeds must be >= 1 to run the experiment")
    quotas = [cfg.quota_per_cycle] * full.n_cycles
    per_seed, metrics_keys = {}, ("mean_p", "gap_to_optimum", "top_k_mean_p", "n_modes")
    budget = cfg.as_iterations * cfg.batch_size
    for k in range(n_seeds):
        seed = derive_seed(cfg.seed, "action_space", k)
        idx = [sorted(make_rng(seed, "as_pool", c).choice(n, size=min(cfg.as_blocks_per_cycle, n), replace=False).tolist())
               for c, n in enumerate(full.sizes)]
        pool = full.subset(idx)
        clusters = [cluster_blocks(s, min(cfg.as_clusters_per_cycle, len(s))) for s in pool.smiles]
        table, z = cluster_table(clusters, cfg.as_cluster_share, seed)
        reward = LibraryReward(TableScorer(table), pool.sizes, cfg.as_beta, max_products=cfg.max_products)
        best_p = float(reward.mean_p(optimal_library(z, quotas)[None])[0])
        thr = best_p - cfg.as_mode_gap  # a mode: within as_mode_gap of the known optimum's mean p
        ref = bl.random_libraries(pool.sizes, quotas, cfg.n_reference, seed=derive_seed(seed, "reference"))
        lr_ref = reward.log_reward(ref)
        n_libs = float(np.prod([math.comb(n, q) for n, q in zip(pool.sizes, quotas)]))
        init_logz = math.log(n_libs) + float(np.logaddexp.reduce(lr_ref)) - math.log(len(lr_ref))
        row = {}
        for space in SPACES:
            if space == "flat":
                env = FlatDELEnv(pool.sizes, quotas, reward.log_reward_torch)
            else:
                env = HierarchicalDELEnv(pool.sizes, quotas, clusters, reward.log_reward_torch)
            gseed = derive_seed(seed, space)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(gseed)
                model = build_gflownet(env, "tb", hidden=cfg.hidden, init_logz=init_logz)
            c0 = reward.n_library_calls
            hist = train_gflownet(env, model, n_iterations=cfg.as_iterations, batch_size=cfg.batch_size, lr=cfg.lr,
                                  lr_logz=cfg.lr_logz, seed=gseed, progress=progress, desc=f"{space} seed {k}")
            calls = reward.n_library_calls - c0
            libs = sample_libraries(env, model, cfg.n_eval_samples, seed=gseed)
            m = library_set_metrics(libs, reward.log_reward(libs), cfg.as_beta, top_k=cfg.top_k, mode_threshold=thr,
                                    mode_min_distance=cfg.mode_min_distance)
            m["gap_to_optimum"] = best_p - m["mean_p"]
            row[space] = {**{key: m[key] for key in metrics_keys}, "training_reward_calls": calls,
                          "n_libraries": int(len(libs)), "final_mean_log_reward": float(np.mean(hist["mean_log_reward"][-10:]))}
        row["random_mean_p"] = float(np.mean(lr_ref) / cfg.as_beta)
        row["optimum_mean_p"] = best_p
        per_seed[k] = row
    summary = {}
    for space in SPACES:
        summary[space] = {}
        for key in metrics_keys:
            v = [per_seed[k][space][key] for k in per_seed]
            summary[space][key] = {"mean": float(np.mean(v)), "se": _se(v)}
    diff = {}
    for key in metrics_keys:
        d = [per_seed[k]["hierarchical"][key] - per_seed[k]["flat"][key] for k in per_seed]
        diff[key] = {"mean": float(np.mean(d)), "se": _se(d)}
    return {"per_seed": per_seed, "summary": summary, "hierarchical_minus_flat": diff,
            "setting": {"blocks_per_cycle": cfg.as_blocks_per_cycle, "clusters_per_cycle": cfg.as_clusters_per_cycle,
                        "cluster_share": cfg.as_cluster_share, "beta": cfg.as_beta, "seeds": n_seeds,
                        "reward_calls_per_gflownet": budget, "n_libraries": cfg.n_eval_samples}}
