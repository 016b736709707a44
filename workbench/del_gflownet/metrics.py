"""Metrics over a set of libraries: rewards, top-k, diversity, distinct modes, library sizes."""
from __future__ import annotations

import numpy as np
from rdkit import DataStructs

from workbench.seeding import make_rng


def jaccard_distance_matrix(bits: np.ndarray) -> np.ndarray:
    """Pairwise Jaccard distance of library bit vectors (M, N) -> (M, M).

    >>> jaccard_distance_matrix(np.array([[1, 1, 0], [0, 1, 1]], bool)).round(3).tolist()
    [[0.0, 0.667], [0.667, 0.0]]
    """
    b = np.asarray(bits, dtype=np.int32)
    inter = b @ b.T
    cnt = b.sum(1)
    union = cnt[:, None] + cnt[None, :] - inter
    return 1.0 - np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def mean_offdiag(m: np.ndarray) -> float:
    n = len(m)
    if n < 2:
        return float("nan")
    return float((m.sum() - np.trace(m)) / (n * (n - 1)))


def count_modes(bits: np.ndarray, mean_p: np.ndarray, threshold: float, min_distance: float) -> int:
    """Distinct high-reward modes: libraries with mean p >= threshold, kept greedily from the best
    down when at Jaccard distance >= ``min_distance`` from every mode kept so far."""
    idx = [i for i in np.argsort(-mean_p, kind="stable") if mean_p[i] >= threshold]
    kept: list[int] = []
    for i in idx:
        if all(jaccard_distance_matrix(bits[[i, j]])[0, 1] >= min_distance for j in kept):
            kept.append(i)
    return len(kept)


def molecule_diversity(reward, bits: np.ndarray, n_molecules: int, seed: int = 0) -> float:
    """Mean pairwise Tanimoto similarity (ECFP4) of up to ``n_molecules`` products drawn uniformly:
    a random library of the set, then a random product of it. Lower is more diverse."""
    from workbench.del_gflownet.models import ecfp_bitvects, to_mol

    rng = make_rng(seed, "molecule_diversity")
    enum = getattr(reward.scorer, "enumerator", None)
    if enum is None:
        return float("nan")
    smiles = []
    for _ in range(n_molecules):
        prods = reward.products(bits[int(rng.integers(len(bits)))])
        if len(prods) == 0:
            continue
        s = enum.product(tuple(int(v) for v in prods[int(rng.integers(len(prods)))]))
        if s is not None:
            smiles.append(s)
    if len(smiles) < 2:
        return float("nan")
    fps = ecfp_bitvects([to_mol(s) for s in smiles])
    sims = [DataStructs.BulkTanimotoSimilarity(fps[i], fps[i + 1:]) for i in range(len(fps) - 1)]
    return float(np.mean(np.concatenate([np.asarray(s) for s in sims])))


def library_set_metrics(bits: np.ndarray, log_r: np.ndarray, beta: float, *, top_k: int,
                        mode_threshold: float, mode_min_distance: float, n_products: np.ndarray | None = None) -> dict:
    """Scalar metrics of a set of libraries (M, N) with their log rewards (M,).

    ``top_k_log_reward`` averages the ``top_k`` best *distinct* libraries; mean p = log R / beta.
    """
    bits = np.asarray(bits, bool)
    log_r = np.asarray(log_r, float)
    uniq, first = np.unique(bits, axis=0, return_index=True)
    lr_u = log_r[first]
    top = np.sort(lr_u)[::-1][:top_k]
    mean_p = log_r / beta
    out = {
        "n_libraries": int(len(bits)),
        "unique_fraction": float(len(uniq) / max(len(bits), 1)),
        "mean_log_reward": float(log_r.mean()),
        "mean_p": float(mean_p.mean()),
        "max_p": float(mean_p.max()),
        "top_k_log_reward": float(top.mean()),
        "top_k_mean_p": float(top.mean() / beta),
        "library_jaccard_distance": mean_offdiag(jaccard_distance_matrix(bits)) if len(bits) > 1 else float("nan"),
        "n_modes": count_modes(uniq, lr_u / beta, mode_threshold, mode_min_distance),
    }
    if n_products is not None:
        n_products = np.asarray(n_products)
        out["library_size"] = {"min": int(n_products.min()), "mean": float(n_products.mean()),
                               "max": int(n_products.max())}
    return out
