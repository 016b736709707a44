"""Donor selection for synthetic interventions (Squires et al. 2022), naive and vectorised.

For a target pair (context c, action a), written for SI-A (SI-C transposes the tensor):

- candidate donor actions: the actions measured in context c (a itself is not, or is excluded under
  leave-one-out);
- training contexts start as the contexts where a is measured (c excluded);
- greedily add the candidate whose measured contexts overlap the current training contexts most;
  the training contexts become that overlap. Stop when the best overlap is empty, when no candidate
  is left, when ``max_donors`` donors are chosen, or when adding the best candidate would shrink the
  training contexts and at least ``num_donors`` donors are already chosen.

Fixes against the public code: it picks the "best" candidate with ``max`` over Python *sets*, which
compares sets by inclusion, not size, so the pick depends on dictionary order. Here the overlap size
is maximised, and ties go to the candidate whose label sorts first, so results do not depend on the
order of rows and columns.
"""
from __future__ import annotations

import numpy as np

__all__ = ["select_donors_naive", "select_donors", "label_ranks"]


def label_ranks(labels) -> np.ndarray:
    """rank[j] = position of labels[j] in sorted order (ties impossible: labels are unique)."""
    order = np.argsort(np.asarray(labels, dtype=object).astype(str), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def select_donors_naive(mask: np.ndarray, c: int, a: int, num_donors: int | None, ranks: np.ndarray,
                        max_donors: int | None = None) -> tuple[list[int], list[int]]:
    """One pair, with Python sets (the reference for the vectorised version).

    Returns (donor actions in pick order, training contexts sorted by index)."""
    nd = np.inf if num_donors is None else num_donors
    md = np.inf if max_donors is None else max_donors
    remaining = set(np.nonzero(mask[c])[0].tolist()) - {a}
    current = set(np.nonzero(mask[:, a])[0].tolist()) - {c}
    col_sets = {j: set(np.nonzero(mask[:, j])[0].tolist()) for j in remaining}
    donors: list[int] = []
    while remaining and len(donors) < md:
        best, best_key, best_new = None, None, None
        for j in remaining:
            new = current & col_sets[j]
            key = (len(new), -ranks[j])
            if best_key is None or key > best_key:
                best, best_key, best_new = j, key, new
        if len(best_new) == 0:
            break
        if len(best_new) < len(current) and len(donors) >= nd:
            break
        current = best_new
        donors.append(best)
        remaining.discard(best)
    return donors, sorted(current)


def select_donors(mask: np.ndarray, cs: np.ndarray, as_: np.ndarray, num_donors: int | None, ranks: np.ndarray,
                  max_donors: int | None = None, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """All target pairs at once: each greedy step is one sparse (P, C) @ (C, A) overlap count.

    mask: (C, A) bool; cs, as_: (P,) target indices; ranks: (A,) label ranks of the actions.
    Returns donors (P, K) int64 padded with -1 (pick order) and train (P, C) bool training contexts.
    Same result as :func:`select_donors_naive` pair by pair.
    """
    C, A = mask.shape
    P = len(cs)
    nd = np.inf if num_donors is None else num_donors
    md = A if max_donors is None else max_donors
    from scipy import sparse

    mi = mask.astype(np.int32)  # (C, A)
    out_donors: list[np.ndarray] = []
    out_train = np.zeros((P, C), dtype=bool)
    tie = (A - 1 - ranks).astype(np.int64)  # larger = label sorts first
    kmax = 0
    chunks = []
    for s in range(0, P, chunk):
        c, a = cs[s:s + chunk], as_[s:s + chunk]
        n = len(c)
        cur = mask[:, a].T.copy()  # (n, C) training contexts
        cur[np.arange(n), c] = False
        rem = mask[c].copy()  # (n, A) candidate donors
        rem[np.arange(n), a] = False
        donors = np.full((n, min(md, A)), -1, dtype=np.int64)
        nsel = np.zeros(n, dtype=np.int64)
        active = np.nonzero(rem.any(axis=1) & cur.any(axis=1))[0]
        while active.size:
            # training-context sets are small after the first steps: a sparse (n_act, C) @ dense (C, A)
            # product costs their total size times A instead of n_act * C * A
            counts = np.asarray(sparse.csr_matrix(cur[active]) @ mi, dtype=np.int64)  # (n_act, A) overlaps
            key = np.where(rem[active], counts * A + tie, -1)
            j = key.argmax(axis=1)
            best = counts[np.arange(active.size), j]
            size = cur[active].sum(axis=1)
            has = key[np.arange(active.size), j] >= 0
            stop = ~has | (best == 0) | ((best < size) & (nsel[active] >= nd))
            go = active[~stop]
            jg = j[~stop]
            cur[go] &= mask[:, jg].T
            rem[go, jg] = False
            donors[go, nsel[go]] = jg
            nsel[go] += 1
            active = go[(nsel[go] < md) & rem[go].any(axis=1)]
        chunks.append((donors, nsel))
        out_train[s:s + n] = cur
        kmax = max(kmax, int(nsel.max(initial=0)))
    for donors, _ in chunks:
        out_donors.append(donors[:, :kmax])
    D = np.concatenate(out_donors, axis=0) if out_donors else np.zeros((0, 0), dtype=np.int64)
    # training contexts of pairs that never started (no candidates) stay as initialised: the
    # contexts measuring the action, which the fallbacks use.
    return D, out_train
