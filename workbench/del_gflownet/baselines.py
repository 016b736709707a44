"""Baselines for library design: random libraries, top-k selection by p, simulated annealing.

All work on bit vectors over all blocks (N,) with exactly ``quotas[c]`` blocks in cycle ``c`` and a
``log_reward(bits_batch) -> (B,)`` function (a :class:`~workbench.del_gflownet.reward.LibraryReward`).
"""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from workbench.seeding import derive_seed, make_rng


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


def random_search(reward, sizes, quotas, *, n_calls: int, n_out: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Random search: score ``n_calls`` uniformly random libraries, keep the ``n_out`` best distinct
    ones (best first; if fewer are distinct, the best repeated ones fill the rest).

    Returns (n_out, N) bool and ``{"n_library_evaluations": n_calls}``.
    """
    if n_calls < n_out or n_out < 1:
        raise ValueError(f"random search needs n_calls >= n_out >= 1, got {n_calls} and {n_out}")
    x = random_libraries(sizes, quotas, n_calls, seed=seed)
    lr = reward.log_reward(x)
    _, first = np.unique(x, axis=0, return_index=True)
    order = sorted(first.tolist(), key=lambda i: -lr[i])
    rest = [i for i in np.argsort(-lr, kind="stable").tolist() if i not in set(order)]
    return x[(order + rest)[:n_out]], {"n_library_evaluations": n_calls}


def topk_libraries(reward, sizes, quotas, *, n_libraries: int, molecule_budget: int,
                   seed: int = 0) -> tuple[np.ndarray, dict]:
    """``n_libraries`` top-k libraries from independent partner draws, sharing ``molecule_budget``
    product scores: each run scores every block against ``molecule_budget // (n_libraries * N)``
    random partners (at least 1). Returns (n_libraries, N) bool and ``{"n_partners", "n_evaluations"}``.
    """
    n_blocks = int(sum(sizes))
    n_partners = max(1, molecule_budget // (n_libraries * n_blocks))
    libs, n_eval = [], 0
    for r in range(n_libraries):
        lib, info = topk_library(reward, sizes, quotas, n_partners=n_partners, seed=derive_seed(seed, "topk_run", r))
        libs.append(lib)
        n_eval += info["n_evaluations"]
    return np.array(libs), {"n_partners": n_partners, "n_evaluations": n_eval}


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
                        t_start: float = 1.0, t_end: float = 0.05, seed: int = 0, n_evaluations: int | None = None,
                        progress: bool = True) -> tuple[np.ndarray, dict]:
    """Parallel simulated-annealing chains over libraries.

    ``n_evaluations`` (optional) fixes the total reward calls instead of ``n_steps``: the chains'
    starts, then full steps, then a last step that moves only the first chains the budget still pays for.

    Move: in a random cycle, swap one chosen block for an unchosen one; accept with probability
    min(1, exp((log R' - log R) / T)), T decaying geometrically from ``t_start`` to ``t_end``.
    Returns the chains' final libraries (n_chains, N) bool and a trace
    ``{"best_log_reward": per step max over chains, "n_library_evaluations": int, "acceptance": float}``.
    """
    rng = make_rng(seed, "annealing")
    off = _offsets(sizes)
    if n_evaluations is not None:
        if n_evaluations < n_chains:
            raise ValueError(f"n_evaluations ({n_evaluations}) must cover the {n_chains} chains' starts")
        n_steps = -(-(n_evaluations - n_chains) // n_chains)  # ceil
    x = random_libraries(sizes, quotas, n_chains, seed=seed)
    lr = reward.log_reward(x)
    n_eval, accepted = n_chains, 0
    best = []
    temps = t_start * (t_end / t_start) ** (np.arange(n_steps) / max(n_steps - 1, 1))
    for t in tqdm(temps, desc="annealing", disable=not progress, leave=False):
        active = n_chains if n_evaluations is None else min(n_chains, n_evaluations - n_eval)
        prop = x[:active].copy()
        for i in range(active):
            c = int(rng.integers(len(sizes)))
            seg = prop[i, off[c]:off[c + 1]]
            on, offb = np.flatnonzero(seg), np.flatnonzero(~seg)
            if len(offb) == 0:
                continue
            seg[rng.choice(on)] = False
            seg[rng.choice(offb)] = True
        lr_new = reward.log_reward(prop)
        n_eval += active
        acc = np.zeros(n_chains, dtype=bool)
        acc[:active] = np.log(rng.uniform(size=active)) < (lr_new - lr[:active]) / t
        x[acc], lr[acc] = prop[acc[:active]], lr_new[acc[:active]]
        accepted += int(acc.sum())
        best.append(float(lr.max()))
    return x, {"best_log_reward": best, "n_library_evaluations": n_eval,
               "acceptance": accepted / max(n_eval - n_chains, 1)}
