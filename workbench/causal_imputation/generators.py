"""Synthetic data with known truth: latent factor models and sparsity patterns.

Models (``Y[c, a]`` is the F-vector of outcomes of action a in context c):

- ``si_action`` (the model SI-A is identified under, Squires et al. 2022): ``Y[c, a] = U_c v_a`` with a
  context-specific F x r loading matrix ``U_c`` and an r-dimensional action factor ``v_a``. Any action
  whose factor lies in the span of donor actions' factors is, in every context, the same linear
  combination of the donors' outcomes.
- ``si_context`` (SI-C's model, the roles swapped): ``Y[c, a] = W_a z_c``.
- ``gsi`` (reconstruction of the richer model; see :mod:`.estimators`): the sum
  ``Y[c, a] = U_c v_a + W_a z_c``, the smallest model that contains both SI models. SI-A and SI-C are
  both misspecified on it once F * s (resp. F * r) exceeds the number of donors.
- ``cp``: a rank-k CP tensor ``Y[c, a, f] = sum_k p_ck q_ak w_fk`` with k = ``rank_action`` (what PARAFAC
  completion assumes; both an SI-A and an SI-C model, with every feature slice of rank k).
- ``additive``: ``Y[c, a] = m_c + n_a`` (what the two-way and fixed-effect baselines assume).

Each part is scaled so that its entries have unit variance; ``noise`` adds i.i.d. Gaussian noise of that
standard deviation to the observed data (``truth`` keeps the noise-free tensor, which is what
estimators are scored against).

Sparsity patterns (boolean (C, A) masks): ``random`` (each pair measured with probability p),
``block`` (a few fully measured contexts, the rest random, as in CMAP where a handful of cell lines
see most compounds), ``full`` (everything measured; evaluate by leave-one-out).
"""
from __future__ import annotations

import numpy as np

from workbench.seeding import make_rng

from .data import ImputationData

MODELS = ("si_action", "si_context", "gsi", "cp", "additive")
PATTERNS = ("random", "block", "full")


def latent_tensor(model: str, n_contexts: int, n_actions: int, n_features: int, *, rank_action: int = 3,
                  rank_context: int = 3, seed: int = 0) -> np.ndarray:
    """Noise-free (C, A, F) tensor from ``model`` (see module docstring)."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose from {MODELS}")
    C, A, F, r, s = n_contexts, n_actions, n_features, rank_action, rank_context
    if min(C, A, F) < 1 or r < 0 or s < 0:
        raise ValueError("sizes must be positive and ranks non-negative")
    rng = make_rng(seed, "latent", model)
    Y = np.zeros((C, A, F))
    if model in ("si_action", "gsi") and r > 0:
        U = rng.standard_normal((C, F, r))  # (C, F, r) context-specific feature loadings
        v = rng.standard_normal((A, r)) / np.sqrt(r)  # (A, r) action factors
        Y += np.einsum("cfr,ar->caf", U, v)
    if model in ("si_context", "gsi") and s > 0:
        W = rng.standard_normal((A, F, s))  # (A, F, s) action-specific feature loadings
        z = rng.standard_normal((C, s)) / np.sqrt(s)  # (C, s) context factors
        Y += np.einsum("afs,cs->caf", W, z)
    if model == "gsi":
        Y /= np.sqrt(2.0)
    if model == "cp":
        k = max(r, 1)
        p, q, w = (rng.standard_normal((n, k)) for n in (C, A, F))
        Y = np.einsum("ck,ak,fk->caf", p, q, w) / np.sqrt(k)
    if model == "additive":
        Y = rng.standard_normal((C, 1, F)) + rng.standard_normal((1, A, F))
    return Y


def sparsity_mask(pattern: str, n_contexts: int, n_actions: int, *, observed_frac: float = 0.3,
                  n_full_contexts: int = 5, control_index: int | None = 0, seed: int = 0) -> np.ndarray:
    """(C, A) bool mask. ``control_index`` (if not None) is measured in every context, as control
    wells are in CMAP plates."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {PATTERNS}")
    if not 0.0 < observed_frac <= 1.0:
        raise ValueError(f"observed_frac must be in (0, 1], got {observed_frac}")
    rng = make_rng(seed, "mask", pattern)
    C, A = n_contexts, n_actions
    if pattern == "full":
        m = np.ones((C, A), dtype=bool)
    else:
        m = rng.random((C, A)) < observed_frac
        if pattern == "block":
            if not 0 <= n_full_contexts <= C:
                raise ValueError(f"n_full_contexts must be in [0, {C}]")
            full = rng.choice(C, size=n_full_contexts, replace=False)
            m[full] = True
    if control_index is not None:
        m[:, control_index] = True
    return m


def make_dataset(model: str = "gsi", n_contexts: int = 30, n_actions: int = 30, n_features: int = 50, *,
                 rank_action: int = 3, rank_context: int = 3, noise: float = 0.0, pattern: str = "block",
                 observed_frac: float = 0.3, n_full_contexts: int = 6, control: bool = True,
                 seed: int = 0) -> ImputationData:
    """A seeded synthetic ``ImputationData`` with ``truth`` set to the noise-free tensor.

    Labels are ``ctx000``..., ``act000``... (``act000`` is named ``control`` when ``control``)."""
    truth = latent_tensor(model, n_contexts, n_actions, n_features, rank_action=rank_action,
                          rank_context=rank_context, seed=seed)
    mask = sparsity_mask(pattern, n_contexts, n_actions, observed_frac=observed_frac,
                         n_full_contexts=n_full_contexts, control_index=0 if control else None, seed=seed)
    Yn = truth
    if noise > 0:
        Yn = truth + noise * make_rng(seed, "noise").standard_normal(truth.shape)
    Y = np.where(mask[:, :, None], Yn, np.nan)
    ctx = [f"ctx{i:03d}" for i in range(n_contexts)]
    act = [f"act{j:03d}" for j in range(n_actions)]
    if control:
        act[0] = "control"
    feats = [f"f{k:03d}" for k in range(n_features)]
    return ImputationData(Y, mask, ctx, act, feats, "control" if control else None, truth)
