"""Baselines for library design: random libraries, top-k selection by p, simulated annealing.

All work on bit vectors over all blocks (N,) with exactly ``quotas[c]`` blocks in cycle ``c`` and a
``log_reward(bits_batch) -> (B,)`` function (a :class:`~workbench.del_gflownet.reward.LibraryReward`).
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from workbench.seeding import make_rng


def _offsets(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(int)


def random_libraries(sizes, quotas, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` uniformly random libraries, (n, N) bool."""
    rng = make_rng(seed, "random_libraries")
    off = _offsets(sizes)
    out = np.zeros((n, off[-1]), dtype=bool)
    for i in range(n):
        for c, (s, q) in enumerate(zip(sizes, quotas)):
            out[i, off[c] + rng.choice(s, size=q, replace=False)] = True
    return out


def topk_library(reward, sizes, quotas, *, n_partners: int = 16, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Top-k selection by p: score each block by the mean p of ``n_partners`` products with random
    partner blocks from the other cycles, then keep the ``quotas[c]`` best blocks of each cycle.

    Returns the library (N,) bool and ``{"block_scores": per-cycle lists, "n_evaluations": int}``.
    """
    rng = make_rng(seed, "topk")
    scorer = reward.scorer
    off = _offsets(sizes)
    lib = np.zeros(off[-1], dtype=bool)
    block_scores, n_eval = [], 0
    for c, s in enumerate(sizes):
        tuples = np.stack([rng.integers(0, sizes[d], size=(s, n_partners)) for d in range(len(sizes))], axis=-1)
        tuples[:, :, c] = np.arange(s)[:, None]  # (s, n_partners, C)
        p = scorer.score_tuples(tuples.reshape(-1, len(sizes))).reshape(s, n_partners)
        n_eval += p.size
        ok = ~np.isnan(p)  # failed syntheses are left out; a block that never reacts ranks last
        score = np.where(ok.any(1), np.where(ok, p, 0.0).sum(1) / np.maximum(ok.sum(1), 1), -np.inf)
        block_scores.append(score.tolist())
        lib[off[c] + np.argsort(-score, kind="stable")[: quotas[c]]] = True
    return lib, {"block_scores": block_scores, "n_evaluations": n_eval}


def simulated_annealing(reward, sizes, quotas, *, n_chains: int = 16, n_steps: int = 100,
                        t_start: float = 1.0, t_end: float = 0.05, seed: int = 0,
                        progress: bool = True) -> tuple[np.ndarray, dict]:
    """Parallel simulated-annealing chains over libraries.

    Move: in a random cycle, swap one chosen block for an unchosen one; accept with probability
    min(1, exp((log R' - log R) / T)), T decaying geometrically from ``t_start`` to ``t_end``.
    Returns the chains' final libraries (n_chains, N) bool and a trace
    ``{"best_log_reward": per step max over chains, "n_library_evaluations": int, "acceptance": float}``.
    """
    rng = make_rng(seed, "annealing")
    off = _offsets(sizes)
    x = random_libraries(sizes, quotas, n_chains, seed=seed)
    lr = reward.log_reward(x)
    n_eval, accepted = n_chains, 0
    best = []
    temps = t_start * (t_end / t_start) ** (np.arange(n_steps) / max(n_steps - 1, 1))
    for t in tqdm(temps, desc="annealing", disable=not progress, leave=False):
        prop = x.copy()
        for i in range(n_chains):
            c = int(rng.integers(len(sizes)))
            seg = prop[i, off[c]:off[c + 1]]
            on, offb = np.flatnonzero(seg), np.flatnonzero(~seg)
            if len(offb) == 0:
                continue
            seg[rng.choice(on)] = False
            seg[rng.choice(offb)] = True
        lr_new = reward.log_reward(prop)
        n_eval += n_chains
        acc = np.log(rng.uniform(size=n_chains)) < (lr_new - lr) / t
        x[acc], lr[acc] = prop[acc], lr_new[acc]
        accepted += int(acc.sum())
        best.append(float(lr.max()))
    return x, {"best_log_reward": best, "n_library_evaluations": n_eval,
               "acceptance": accepted / max(n_chains * n_steps, 1)}
