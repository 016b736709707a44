"""Causal imputation estimators: SI-A, SI-C (Squires et al. 2022, arXiv 2011.03127), GSI
(reconstruction, see below) and baselines.

Every estimator has the signature ``impute_<name>(data, cs, as_, ...) -> (pred, info)`` with
``cs, as_`` (P,) target context / action indices, ``pred`` (P, F) and ``info`` a dict holding
``fallback`` (P,) strings (``"none"`` when the estimator's own rule applied) plus diagnostics. A target
may be a measured pair: it is then predicted from everything else (leave-one-out), never from itself.

SI-A (synthetic interventions over actions): for target (c, a), pick donor actions J measured in c
and training contexts T where a and all of J are measured (:mod:`.donors`); regress the target
action's outcomes on the donors' outcomes, stacking every (training context, feature) as one row,
least squares with an intercept; apply the weights to the donors' outcomes in c. Optional hard
singular value thresholding (principal component regression) keeps the fewest singular values whose
energy fraction (sum of squared singular values) exceeds ``energy``; ``energy = 1`` is plain minimum
norm least squares (singular values below ``rcond`` times the largest are dropped). SI-C swaps the
roles of contexts and actions. Fallbacks, as in the public code: no action measured in c -> global
mean; a never measured elsewhere -> mean over the actions measured in c; donors exist but none
shares a context with a -> the intercept alone (mean of a over its contexts).

Vectorised SI: the greedy donor search runs for all pairs at once (one matrix product per step) and
the regressions use per-pair normal equations built from gathered donor blocks and solved by a
batched eigendecomposition; the naive per-pair loop (``vectorised=False``) keeps the stacked
least-squares form and is the reference the tests compare against. Squaring the design in the normal
equations limits resolution to singular values above about 1e-8 of the largest, hence ``rcond`` >= 1e-7.

GSI (generalized synthetic interventions, Jiralerspong et al., arXiv 2410.20647) -- RECONSTRUCTION.
The paper's estimator could not be read here. What is implemented is the two-sided estimator derived
for the sum model ``Y[c, a] = U_c v_a + W_a z_c`` (SI-A's model plus SI-C's model):

    Y^[c, a] = sum_j b_j Y[c, j] + sum_i g_i Y[i, a] - sum_ij g_i b_j Y[i, j]

over donor actions J and donor contexts I (SI-A's donor search with its training contexts as I). With
x = (1, -g) over R = {c} u I and y = (1, -b) over Q = {a} u J, the error of this estimator is exactly
x^T Y_f y for every feature f (Y_f the R x Q block of feature f), so it is exact whenever that bilinear
form vanishes. Under the sum model that holds when V_Q^T y = 0 and x^T Z_R = 0. Two special cases need
no second side: if y is an exact relation among the columns on the donor contexts (sum_q y_q Y[i, q] = 0
for every i in I and f: SI-A's model, any CP tensor), the g-term is a combination of zero residuals and
g = 0 is exact; the same with the roles swapped. Each pair takes the first path that applies, recorded
in ``info["path"]`` (``GSI_PATHS``):

- ``si_a_exact`` / ``si_c_exact``: SI-A (SI-C), run with its own donor search, fits its training rows
  exactly (relative residual <= ``tol``, more rows than coefficients): GSI returns its prediction, so
  GSI recovers whatever SI-A or SI-C recovers from an overdetermined fit.
- ``exact_a`` / ``exact_c``: an exact one-sided relation inside GSI's block (numerical null space of the
  stacked (rows x features, columns) matrix, singular values <= ``tol`` times the largest); the other
  side's weights are 0.
- ``two_sided``: both null spaces identified from fully measured blocks. The feature slices Y_f of the
  block I x Q span S = {P V^T + Z Q^T} (dimension |I| r + |Q| s - r s when the features fill it); the
  orthogonal complement is null(Z^T) (x) null(V^T), and the partial trace over contexts of the projector
  onto it is (|I| - s) times the projector onto null(V^T) (the same over actions of the block R x J gives
  null(Z^T)). The eigenvalues of the partial trace divided by the largest are therefore 0 or 1 exactly
  when the block identifies null(V^T); the eigenspace above 1/2 is used, and the pair counts as exact
  only if every normalised eigenvalue lies within ``tol`` of 0 or 1. b and g are the minimum-norm
  weights with unit coefficient on the target. dim S is the numerical rank where the singular values
  of the slices show an exact gap (below ``rcond`` times the largest), otherwise (noise fills the
  spectrum) the energy-fraction rank (``energy``), or |rows| r + |cols| s - r s from given ``ranks``.
- ``two_sided_small_block``: the same, with one side (or both) taken from a smaller block (the first
  m' donor contexts and k' donor actions, largest first). With few features the slices of the whole
  block cannot fill S (F < m r + (k+1) s - r s) and the spectrum is not two-valued (rank deficiency);
  a smaller block's slices can. Only exact (two-valued, gapped) smaller blocks are kept.
- ``two_sided_inexact``: the two-sided estimate from a spectrum that is not two-valued (noise, an
  energy cut, or a rank-deficient block with no exact smaller block); an approximation.
- ``fallback_si_a``: no path (blocks too small, S fills the block, both sides trivial -- every direction
  kept, which would predict 0 --, or the target's leverage on the null space below ``min_leverage``,
  i.e. its weights would be huge): SI-A's prediction (``fallback`` says ``si_a`` or ``si_a:<SI-A's own
  fallback>``).

Under SI-A's model this reduces to SI-A (with or without intercept); under SI-C's to SI-C.

Baselines: mean over actions (the context's mean), mean over contexts (the action's mean), two-way
mean (``"average"``: the average of the two, as in the public code; ``"additive"``: context mean +
action mean - global mean), fixed effect (control outcome in c plus the action's mean change from
control over the other contexts), and PARAFAC low-rank completion (tensorly's masked CP-ALS).
"""
from __future__ import annotations

import contextlib

import numpy as np

from .data import ImputationData
from .donors import label_ranks, select_donors, select_donors_naive

__all__ = ["impute_si", "impute_gsi", "impute_mean_over_actions", "impute_mean_over_contexts",
           "impute_two_way", "impute_fixed_effect", "impute_parafac", "ESTIMATORS"]


def blas_single_thread():
    """Run many small LAPACK calls on one BLAS thread: on a busy 2-core machine a multi-threaded
    110 x 50 SVD measured ~70x slower than a single-threaded one (thread hand-off dominates)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------------------------- means
def _excluding_target(data: ImputationData, cs, as_):
    """Context means, action means and the global mean of the measured pairs, each leaving out the
    target pair when it is measured. Returns (ctx_mean (P,F), n_ctx (P,), act_mean, n_act, glob (P,F))."""
    Y0 = np.where(data.mask[:, :, None], data.Y, 0.0)  # (C, A, F)
    m = data.mask
    obs = m[cs, as_].astype(float)  # (P,)
    own = Y0[cs, as_] * obs[:, None]  # (P, F)
    cs_sum, cs_n = Y0.sum(axis=1), m.sum(axis=1)  # (C, F), (C,)
    as_sum, as_n = Y0.sum(axis=0), m.sum(axis=0)  # (A, F), (A,)
    tot, ntot = Y0.sum(axis=(0, 1)), m.sum()
    n_ctx = cs_n[cs] - obs
    n_act = as_n[as_] - obs
    n_glob = ntot - obs
    with np.errstate(invalid="ignore", divide="ignore"):
        ctx_mean = (cs_sum[cs] - own) / n_ctx[:, None]
        act_mean = (as_sum[as_] - own) / n_act[:, None]
        glob = (tot[None] - own) / n_glob[:, None]
    return ctx_mean, n_ctx, act_mean, n_act, glob


def impute_mean_over_actions(data, cs, as_):
    """Mean of the context's measured outcomes (over actions); global mean if the context has none."""
    ctx_mean, n_ctx, _, _, glob = _excluding_target(data, cs, as_)
    fb = np.where(n_ctx > 0, "none", "global_mean")
    return np.where((n_ctx > 0)[:, None], ctx_mean, glob), {"fallback": fb}


def impute_mean_over_contexts(data, cs, as_):
    """Mean of the action's measured outcomes (over contexts); global mean if never measured."""
    _, _, act_mean, n_act, glob = _excluding_target(data, cs, as_)
    fb = np.where(n_act > 0, "none", "global_mean")
    return np.where((n_act > 0)[:, None], act_mean, glob), {"fallback": fb}


def impute_two_way(data, cs, as_, mode: str = "average", weight: float = 0.5):
    """``average``: weight * context mean + (1 - weight) * action mean (public code, weight 0.5);
    ``additive``: context mean + action mean - global mean (two-way additive model)."""
    ctx_mean, n_ctx, act_mean, n_act, glob = _excluding_target(data, cs, as_)
    cm = np.where((n_ctx > 0)[:, None], ctx_mean, glob)
    am = np.where((n_act > 0)[:, None], act_mean, glob)
    if mode == "average":
        pred = weight * cm + (1 - weight) * am
    elif mode == "additive":
        pred = cm + am - glob
    else:
        raise ValueError(f"two_way mode must be 'average' or 'additive', got {mode!r}")
    fb = np.where((n_ctx > 0) & (n_act > 0), "none", "global_mean")
    return pred, {"fallback": fb}


def impute_fixed_effect(data, cs, as_):
    """Control outcome in the target context plus the action's mean change from control over the
    other contexts where both are measured. Fallbacks: control not measured in the context (or the
    target is the control itself) -> mean over actions; no context with both -> zero change."""
    k = data.control_index
    if k is None:
        raise ValueError("fixed_effect needs a control action (ImputationData.control)")
    m = data.mask
    Y0 = np.where(m[:, :, None], data.Y, 0.0)
    both = m & m[:, [k]]  # (C, A) pairs measured together with the control
    E = np.where(both[:, :, None], Y0 - Y0[:, [k]], 0.0)  # (C, A, F) change from control
    e_sum, e_n = E.sum(axis=0), both.sum(axis=0)  # (A, F), (A,)
    own = both[cs, as_]
    n = e_n[as_] - own
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where((n > 0)[:, None], (e_sum[as_] - E[cs, as_] * own[:, None]) / n[:, None], 0.0)
    ctrl_ok = m[cs, k] & (as_ != k)
    base, _ = impute_mean_over_actions(data, cs, as_)
    pred = np.where(ctrl_ok[:, None], Y0[cs, k] + eff, base)
    fb = np.where(~ctrl_ok, "mean_over_actions", np.where(n > 0, "none", "zero_effect"))
    return pred, {"fallback": fb}


# ------------------------------------------------------------------------------------------------- SI
def _energy_keep(lam: np.ndarray, energy: float, rcond: float) -> np.ndarray:
    """Which eigenvalues (squared singular values) to keep. lam: (P, K) sorted descending."""
    lmax = lam[:, :1]
    keep = lam > np.maximum(lmax * rcond**2, 0.0) if lam.size else np.zeros_like(lam, dtype=bool)
    keep &= lam > 0
    if energy < 1.0:
        tot = np.where(keep, lam, 0).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.cumsum(np.where(keep, lam, 0), axis=1) / tot
        # fewest leading values whose cumulative energy fraction exceeds `energy`
        rank = (frac <= energy).sum(axis=1, keepdims=True) + 1
        keep &= np.arange(lam.shape[1])[None] < rank
    return keep


def _si_regress_group(Yz, cs, as_, D, train, energy, rcond, chunk=4096):
    """Batched SI regressions for pairs sharing the donor count K. Yz: (C, A+1, F) zeros where
    unmeasured; D: (n, K) donors; train: (n, C) bool. Returns pred (n, F), coef (n, K), intercept (n,),
    resid (n,): norm of the fit's residual over the training rows / norm of the target's outcomes there
    (NaN without training rows)."""
    C, _, F = Yz.shape
    P, K = D.shape
    Q = np.concatenate([D, as_[:, None]], axis=1)  # (n, K+1): donors then target
    pred = np.zeros((P, F))
    coef = np.zeros((P, K))
    icpt = np.zeros(P)
    resid = np.full(P, np.nan)
    for s in range(0, P, chunk):
        sl = slice(s, s + chunk)
        tr = train[sl]
        n = tr.shape[0]
        cnt = tr.sum(axis=1)  # training contexts per pair
        pp, ii = np.nonzero(tr)  # one row per (pair, training context), sorted by pair
        blk = Yz[ii[:, None], Q[sl][pp]]  # (nnz, K+1, F) donor and target outcomes in context i
        G = np.zeros((n, K + 1, K + 1))
        Ssum = np.zeros((n, K + 1))
        has = cnt > 0
        if has.any():
            starts = (np.cumsum(cnt) - cnt)[has]
            G[has] = np.add.reduceat(blk @ blk.transpose(0, 2, 1), starts, axis=0)
            Ssum[has] = np.add.reduceat(blk.sum(axis=2), starts, axis=0)
        nr = np.where(has, cnt * F, 1).astype(float)  # rows of the stacked regression
        sx, sy = Ssum[:, :K], Ssum[:, K]
        XtX = G[:, :K, :K] - sx[:, :, None] * sx[:, None, :] / nr[:, None, None]  # centred Gram (n, K, K)
        Xty = G[:, :K, K] - sx * sy[:, None] / nr[:, None]  # (n, K)
        if K:
            lam, V = np.linalg.eigh(XtX)
            lam, V = lam[:, ::-1], V[:, :, ::-1]
            keep = _energy_keep(lam, energy, rcond)
            inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
            proj = (V.transpose(0, 2, 1) @ Xty[:, :, None])[:, :, 0] * inv  # (n, K) in the eigenbasis
            w = (V @ proj[:, :, None])[:, :, 0]
        else:
            w = np.zeros((n, 0))
        b0 = (sy - (w * sx).sum(axis=1)) / nr
        Xc = Yz[cs[sl][:, None], D[sl]]  # (n, K, F) donors in the target context
        pred[sl] = (w[:, None, :] @ Xc)[:, 0] + b0[:, None]
        coef[sl], icpt[sl] = w, b0
        if has.any():  # residual of the fit row by row (not from the normal equations: no cancellation)
            res = blk[:, K, :] - (w[pp][:, None, :] @ blk[:, :K, :])[:, 0] - b0[pp][:, None]
            rss = np.add.reduceat((res**2).sum(axis=1), starts)
            with np.errstate(invalid="ignore", divide="ignore"):
                resid[np.arange(s, s + n)[has]] = np.sqrt(rss / G[has, K, K])
    return pred, coef, icpt, resid


def _si_regress_vectorised(Y0, cs, as_, D, train, energy, rcond):
    """Batched SI regressions, pairs grouped by donor count so every batch has its exact size.
    Y0: (C, A, F) zeros where unmeasured; D: (P, K) donors padded -1; train: (P, C) bool."""
    C, A, F = Y0.shape
    P, K = D.shape
    Yz = np.concatenate([Y0, np.zeros((C, 1, F))], axis=1)  # (C, A+1, F)
    nd = (D >= 0).sum(axis=1) if K else np.zeros(P, dtype=np.int64)
    pred, coef, icpt, resid = np.zeros((P, F)), np.zeros((P, K)), np.zeros(P), np.full(P, np.nan)
    for k in np.unique(nd):
        idx = np.nonzero(nd == k)[0]
        p_, w_, b_, r_ = _si_regress_group(Yz, cs[idx], as_[idx], D[idx, :k], train[idx], energy, rcond)
        pred[idx], coef[idx, :k], icpt[idx], resid[idx] = p_, w_, b_, r_
    return pred, coef, icpt, resid


def _si_regress_naive(Yd, c, a, donors, contexts, energy, rcond):
    """One pair: stacked least squares with intercept (or HSVT / PCR). Yd: (C, A, F) with NaN gaps."""
    F = Yd.shape[2]
    X = Yd[np.ix_(contexts, donors)].transpose(0, 2, 1).reshape(len(contexts) * F, len(donors))  # (|T| F, K)
    y = Yd[contexts, a].reshape(-1)  # (|T| F,)
    xm, ym = X.mean(axis=0), y.mean()
    Xc, yc = X - xm, y - ym
    if len(donors) == 0:
        w = np.zeros(0)
    elif energy >= 1.0:
        w = np.linalg.lstsq(Xc, yc, rcond=rcond)[0]
    else:
        u, sv, vt = np.linalg.svd(Xc, full_matrices=False)
        keep = _energy_keep((sv**2)[None], energy, rcond)[0]
        w = vt[keep].T @ ((u[:, keep].T @ yc) / sv[keep])
    b0 = ym - xm @ w
    resid = float(np.linalg.norm(yc - Xc @ w if len(donors) else yc) / np.linalg.norm(y))
    return Yd[c, donors].T @ w + b0 if len(donors) else np.full(F, b0), w, b0, resid


def impute_si(data: ImputationData, cs, as_, *, over: str = "actions", num_donors: int | None = 10,
              max_donors: int | None = None, energy: float = 1.0, rcond: float = 1e-6,
              vectorised: bool = True, progress: bool = False):
    """SI-A (``over="actions"``: donors are actions) or SI-C (``over="contexts"``). See module docstring.

    info: fallback (P,), donors (P, K) padded -1 (indices along the donor axis), coef (P, K),
    intercept (P,), train (P, n_other) bool training units (contexts for SI-A, actions for SI-C),
    train_resid (P,) relative residual norm of the fit over its training rows (NaN on fallbacks).
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    if vectorised and rcond < 1e-7:
        raise ValueError("rcond below 1e-7 is beyond what the normal equations resolve; use vectorised=False")
    cs, as_ = np.asarray(cs, dtype=np.int64), np.asarray(as_, dtype=np.int64)
    if over == "actions":
        Y, mask, tc, ta, labels = data.Y, data.mask, cs, as_, data.actions
    elif over == "contexts":
        Y, mask, tc, ta, labels = data.Y.transpose(1, 0, 2), data.mask.T, as_, cs, data.contexts
    else:
        raise ValueError(f"over must be 'actions' or 'contexts', got {over!r}")
    ranks = label_ranks(labels)
    P, F = len(cs), Y.shape[2]
    Y0 = np.where(mask[:, :, None], Y, 0.0)
    if vectorised:
        with blas_single_thread():
            D, train = select_donors(mask, tc, ta, num_donors, ranks, max_donors)
            pred, coef, icpt, resid = _si_regress_vectorised(Y0, tc, ta, D, train, energy, rcond)
    else:
        from tqdm.auto import tqdm

        res = []
        with blas_single_thread():
            for p in tqdm(range(P), disable=not progress, desc=f"SI over {over} (naive)"):
                donors, ctxs = select_donors_naive(mask, int(tc[p]), int(ta[p]), num_donors, ranks, max_donors)
                if ctxs:
                    yp, w, b0, rs = _si_regress_naive(Y, int(tc[p]), int(ta[p]), donors, ctxs, energy, rcond)
                else:
                    yp, w, b0, rs = np.zeros(F), np.zeros(len(donors)), 0.0, np.nan
                res.append((donors, ctxs, yp, w, b0, rs))
        K = max([len(r[0]) for r in res], default=0)
        D = np.full((P, K), -1, dtype=np.int64)
        coef = np.zeros((P, K))
        train = np.zeros((P, mask.shape[0]), dtype=bool)
        pred = np.zeros((P, F))
        icpt = np.zeros(P)
        resid = np.full(P, np.nan)
        for p, (donors, ctxs, yp, w, b0, rs) in enumerate(res):
            D[p, :len(donors)], coef[p, :len(donors)], pred[p], icpt[p], resid[p] = donors, w, yp, b0, rs
            train[p, ctxs] = True
    # fallbacks (decided on the oriented problem: "context" = the non-donor axis)
    no_cand = ~(mask[tc].copy())
    no_cand[np.arange(P), ta] = True
    no_cand = no_cand.all(axis=1)  # no donor candidate measured in the target's unit
    seen = mask[:, ta].T.copy()
    seen[np.arange(P), tc] = False
    unseen = ~seen.any(axis=1)  # target never measured in another unit
    nd = (D >= 0).sum(axis=1) if D.size else np.zeros(P, dtype=int)
    ctx_mean, n_ctx, act_mean, n_act, glob = _excluding_target(data, cs, as_)
    own_mean = ctx_mean if over == "actions" else act_mean  # mean over the target unit's measurements
    fb = np.full(P, "none", dtype=object)
    fb[(nd == 0) & ~unseen] = "intercept_only"
    fb[unseen] = "context_mean" if over == "actions" else "action_mean"
    pred = np.where(unseen[:, None], own_mean, pred)
    fb[no_cand] = "global_mean"
    pred = np.where(no_cand[:, None], glob, pred)
    resid = np.where(fb == "none", resid, np.nan)
    return pred, {"fallback": fb.astype(str), "donors": D, "coef": coef, "intercept": icpt, "train": train,
                  "train_resid": resid}


# ------------------------------------------------------------------------------------------------ GSI
GSI_PATHS = ("si_a_exact", "si_c_exact", "exact_a", "exact_c", "two_sided", "two_sided_small_block", "two_sided_inexact",
             "fallback_si_a")


def _unit(n: int, g: int) -> np.ndarray:
    """(g, n) copies of the first unit vector: weight 1 on the target, 0 on the donors."""
    e = np.zeros((g, n))
    e[:, 0] = 1.0
    return e


def _exact_relations(blocks: np.ndarray, side: int, tol: float, min_leverage: float):
    """Batched over pairs. blocks: (g, m, n, F) fully measured, target at index 0 of ``side``.

    An exact one-sided relation: w with w[0] = 1 and sum_q w_q Y[i, q] = 0 for every row i and
    feature f (side 1; side 0 the same with rows and columns swapped), i.e. w in the null space of
    the stacked (rows x features, n) matrix. Under SI-A's model (and any CP model) this null space
    is null(V_Q^T) and, with enough stacked rows, nothing else, so the relation carries over to the
    target context: w alone (with zero weights on the other side) is exact. The null space is
    numerical: singular values at most ``tol`` times the largest. A stacked matrix with no more rows
    than columns has a null space whatever the model, so it is not used. Returns (w, ok)."""
    g, m, n, F = blocks.shape
    M = blocks.transpose(0, 1, 3, 2).reshape(g, m * F, n) if side == 1 else \
        blocks.transpose(0, 2, 3, 1).reshape(g, n * F, m)
    k = M.shape[2]
    if M.shape[1] <= k:
        return np.zeros((g, k)), np.zeros(g, dtype=bool)
    _, sv, vt = np.linalg.svd(M, full_matrices=False)  # sv (g, k) descending
    null = sv <= tol * sv[:, :1]
    Pn = np.einsum("gka,gk,gkb->gab", vt, null.astype(float), vt)
    lev = Pn[:, 0, 0]
    ok = null.any(axis=1) & (lev > max(min_leverage, 1e-12)) & (sv[:, 0] > 0)
    return Pn[:, :, 0] / np.where(ok, lev, 1.0)[:, None], ok


def _null_side_weights(blocks: np.ndarray, side: int, dim_s: np.ndarray | None, energy: float, rcond: float,
                       min_leverage: float = 0.02, tol: float = 1e-6):
    """Batched over pairs. blocks: (g, m, n, F), each fully measured, target at index 0 of ``side``.

    Estimates the null space of the latent factors on ``side`` (0: rows / contexts, 1: columns /
    actions) as the leading eigenspace of the partial trace G of the projector onto S-perp, and returns
    (w, ok, clean, trivial): w (g, m or n) the minimum-norm vector in that space with w[0] = 1.

    In the identified case (the feature slices fill S = {P V^T + Z Q^T}) G is exactly (m - s) times
    the projector onto null(V^T): its eigenvalues divided by the largest are 0 or 1, and the
    eigenspace of 1 is selected (threshold 1/2). ``clean`` says whether every normalised eigenvalue
    is within ``tol`` of 0 or 1; where it is not (fewer features than dim S, a CP tensor, noise,
    an energy cut) the selected space is only an approximation of null(V^T). ``trivial``: every
    direction was selected (no null space identified: the weights on this side are zero).
    The squared norm of w is 1 / leverage (leverage: squared length of the target's unit vector
    projected on the space), so ``min_leverage`` caps the weights' size: near-zero leverage means
    the target is barely expressible by the donors and, with noise, gives huge weights."""
    g, m, n, F = blocks.shape
    X = blocks.reshape(g, m * n, F)  # columns are the vectorised feature slices Y_f
    u, sv, _ = np.linalg.svd(X, full_matrices=False)  # u (g, mn, min(mn, F))
    if dim_s is None:
        # an exact gap in the spectrum (singular values below rcond times the largest: noise-free data)
        # sets dim S; the energy fraction only applies where there is none (noise fills the spectrum)
        keep = _energy_keep(sv**2, 1.0, rcond)
        gap = keep.sum(axis=1) < min(m * n, F)
        if energy < 1.0:
            keep = np.where(gap[:, None], keep, _energy_keep(sv**2, energy, rcond))
    else:
        keep = np.arange(sv.shape[1])[None] < np.asarray(dim_s)[:, None]
    ok = keep.sum(axis=1) < m * n  # S must leave a complement in the block
    U3 = (u * keep[:, None, :]).reshape(g, m, n, -1)
    if side == 1:  # m I_n - sum_i U_i U_i^T: (m - s) x projector onto null(V^T) in the exact case
        G = m * np.eye(n)[None] - np.einsum("giqk,giwk->gqw", U3, U3)
    else:
        G = n * np.eye(m)[None] - np.einsum("giqk,gjqk->gij", U3, U3)
    lam, V = np.linalg.eigh(G)
    top = lam[:, -1:]
    ok &= top[:, 0] > 1e-9
    mu = lam / np.where(top > 1e-9, top, 1.0)
    sel = mu > 0.5
    clean = np.all(np.minimum(np.abs(mu), np.abs(1.0 - mu)) <= tol, axis=1)
    trivial = sel.all(axis=1)
    Pn = np.einsum("gak,gk,gbk->gab", V, sel.astype(float), V)  # projector onto the null space estimate
    lev = Pn[:, 0, 0]
    ok &= lev > max(min_leverage, 1e-12)
    w = Pn[:, :, 0] / np.where(ok, lev, 1.0)[:, None]
    return w, ok, clean, trivial


def _side_blocks(Y, c, a, I, J, side):
    """side 1: (g, m, k+1, F) block donor contexts I x ({a} u J); side 0: (g, m+1, k, F) block
    ({c} u I) x donor actions J. The target's own row / column comes first."""
    if side == 1:
        Q = np.concatenate([a[:, None], J], axis=1)
        return Y[I[:, :, None], Q[:, None, :]]
    R = np.concatenate([c[:, None], I], axis=1)
    return Y[R[:, :, None], J[:, None, :]]


def _has_gap(blk: np.ndarray, rcond: float) -> np.ndarray:
    """(g,) bool: the block's feature slices have an exact rank gap (numerical rank below
    min(block size, F)), the precondition for identifying S exactly from them."""
    g, m, n, F = blk.shape
    sv = np.linalg.svd(blk.reshape(g, m * n, F), compute_uv=False)
    return (sv > rcond * sv[:, :1]).sum(axis=1) < min(m * n, F)


def _side_small_blocks(Y, c, a, I, J, side, w, ok, clean, trivial, rcond, min_leverage, tol):
    """Few features: the slices of the whole block cannot fill S (F below m r + (k+1) s - r s), but a
    smaller block's can. For the pairs whose side is not exact (``clean`` False), try the blocks of the
    first m' donor contexts and k' donor actions, largest first, where the slices show an exact rank
    gap, and keep the first exact (two-valued) result, its weights padded with zeros. Updates w, ok,
    clean, trivial in place; returns (g,) bool: the side came from a smaller block."""
    g, m = I.shape
    k = J.shape[1]
    small = np.zeros(g, dtype=bool)
    todo = np.nonzero(~clean)[0]
    # probe: square blocks t x t show a gap whenever t >= r + s and t (r + s) - r s < F; noisy blocks never
    # do, so pairs without a gap there skip the search
    probe = np.zeros(todo.size, dtype=bool)
    for t in range(2, min(m + side, k + 1 - side) + 1):
        m2, k2 = (t, t - 1) if side == 1 else (t - 1, t)
        if m2 < 1 or k2 < 1 or not (~probe).any():
            continue
        rest = np.nonzero(~probe)[0]
        probe[rest] = _has_gap(_side_blocks(Y, c[todo[rest]], a[todo[rest]], I[todo[rest], :m2],
                                            J[todo[rest], :k2], side), rcond)
    todo = todo[probe]
    shapes = sorted(((m2, k2) for m2 in range(1, m + 1) for k2 in range(1, k + 1) if (m2, k2) != (m, k)),
                    key=lambda t: (-(t[0] + side) * (t[1] + 1 - side), -t[0], -t[1]))
    for m2, k2 in shapes:
        if not todo.size:
            break
        blk = _side_blocks(Y, c[todo], a[todo], I[todo, :m2], J[todo, :k2], side)
        gap = _has_gap(blk, rcond)
        if not gap.any():
            continue
        sub = todo[gap]
        w2, ok2, cl2, tr2 = _null_side_weights(blk[gap], side, None, 1.0, rcond, min_leverage, tol)
        hit = ok2 & cl2
        h = sub[hit]
        n2 = (k2 + 1) if side == 1 else (m2 + 1)
        w[h] = 0.0
        w[h, :n2] = w2[hit]
        ok[h], clean[h], trivial[h], small[h] = True, True, tr2[hit], True
        todo = np.setdiff1d(todo, h)
    return small


def impute_gsi(data: ImputationData, cs, as_, *, num_donors: int | None = 4, max_donor_actions: int = 10,
               max_donor_contexts: int = 10, energy: float = 1.0, rcond: float = 1e-6,
               ranks: tuple[int, int] | None = None, min_leverage: float = 0.02, tol: float = 1e-6,
               shrink: bool = True, si_kwargs: dict | None = None, progress: bool = False):
    """GSI (reconstruction; see module docstring). Donor search as SI-A with ``num_donors`` and
    ``max_donor_actions``; donor contexts are SI-A's training contexts, the first
    ``max_donor_contexts`` by label. ``ranks = (r, s)`` fixes the action / context latent ranks.
    ``min_leverage``: a side whose weights would exceed squared norm 1 / min_leverage - 1 is not
    used (the pair falls back to SI-A when no path is left). ``tol``: relative spectral tolerance of
    the exact one-sided relations and of the two-valued check of the partial trace. ``shrink``: where a
    side is not exact on the whole block, look for an exact smaller block (few features; see
    ``_side_small_blocks``).
    Pairs are grouped by donor-block shape and each group is solved with batched SVD / eigh.

    info: fallback (P,), path (P,) one of ``GSI_PATHS`` (see module docstring), donors (P, K)
    donor actions, coef (P, K) action weights b, donor_contexts (P, L) padded -1, context_coef (P, L)
    weights g.
    """
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy must be in (0, 1], got {energy}")
    if not 0.0 <= min_leverage < 1.0:
        raise ValueError(f"min_leverage must be in [0, 1), got {min_leverage}")
    if not 0.0 < tol < 0.5:
        raise ValueError(f"tol must be in (0, 0.5), got {tol}")
    from tqdm.auto import tqdm

    cs, as_ = np.asarray(cs, dtype=np.int64), np.asarray(as_, dtype=np.int64)
    P, F = len(cs), data.Y.shape[2]
    Y = data.Y
    D, train = select_donors(data.mask, cs, as_, num_donors, label_ranks(data.actions), max_donor_actions)
    cranks = label_ranks(data.contexts)
    L = max_donor_contexts
    K = D.shape[1]
    nJ = (D >= 0).sum(axis=1) if K else np.zeros(P, dtype=np.int64)
    # donor contexts: training contexts ordered by label, first L
    order = np.argsort(np.where(train, cranks[None, :], np.iinfo(np.int64).max), axis=1, kind="stable")
    nI = np.minimum(train.sum(axis=1), L)
    I_all = np.where(np.arange(L)[None] < nI[:, None], order[:, :L], -1) if L <= train.shape[1] else \
        np.where(np.arange(train.shape[1])[None] < nI[:, None], order, -1)
    if I_all.shape[1] < L:
        I_all = np.concatenate([I_all, np.full((P, L - I_all.shape[1]), -1)], axis=1)
    pred = np.zeros((P, F))
    bw = np.zeros((P, K))
    gw = np.zeros((P, L))
    failed = (nJ == 0) | (nI == 0)
    path = np.full(P, "fallback_si_a", dtype=object)
    groups: dict[tuple[int, int], list[int]] = {}
    for p in np.nonzero(~failed)[0]:
        groups.setdefault((int(nI[p]), int(nJ[p])), []).append(int(p))
    with blas_single_thread():
        for (m, k), idx in tqdm(sorted(groups.items()), disable=not progress, desc="GSI groups"):
            idx = np.asarray(idx)
            c, a = cs[idx], as_[idx]
            J, I = D[idx, :k], I_all[idx, :m]  # (g, k), (g, m)
            dimA = dimC = None
            if ranks is not None:
                r, s_ = ranks
                dimA = np.full(len(idx), m * r + (k + 1) * s_ - r * s_)
                dimC = np.full(len(idx), (m + 1) * r + k * s_ - r * s_)
            B1 = _side_blocks(Y, c, a, I, J, 1)  # (g, m, k+1, F) donor contexts x ({a} u J)
            B2 = _side_blocks(Y, c, a, I, J, 0)  # (g, m+1, k, F) ({c} u I) x donor actions
            # 1. exact one-sided relations (SI-A's / SI-C's model, CP): the other side's weights are
            #    irrelevant (its correction term is a combination of zero residuals), so they are 0
            yE, okEA = _exact_relations(B1, 1, tol, min_leverage)
            xE, okEC = _exact_relations(B2, 0, tol, min_leverage)
            # 2. two-sided: null(V_Q^T) and null(Z_R^T) from the partial traces, each side from the
            #    whole block or, where that is not exact, from a smaller block (few features)
            y, okA, clA, trA = _null_side_weights(B1, 1, dimA, energy, rcond, min_leverage, tol)
            x, okC, clC, trC = _null_side_weights(B2, 0, dimC, energy, rcond, min_leverage, tol)
            smA = np.zeros(len(idx), dtype=bool)
            smC = np.zeros(len(idx), dtype=bool)
            if ranks is None and shrink:
                rest = ~(okEA | okEC)
                for side, (w_, ok_, cl_, tr_), sm in ((1, (y, okA, clA, trA), smA), (0, (x, okC, clC, trC), smC)):
                    rr = np.nonzero(rest & ~cl_)[0]
                    if rr.size:
                        w2, ok2, cl2, tr2 = w_[rr], ok_[rr], cl_[rr], tr_[rr]
                        sm[rr] = _side_small_blocks(Y, c[rr], a[rr], I[rr], J[rr], side, w2, ok2, cl2, tr2, rcond,
                                                    min_leverage, tol)
                        w_[rr], ok_[rr], cl_[rr], tr_[rr] = w2, ok2, cl2, tr2
            two = okA & okC & ~(trA & trC)  # both sides trivial would predict 0: not a path
            n_ = len(idx)
            y = np.where(okEA[:, None], yE, np.where((~okEC & two)[:, None], y, _unit(k + 1, n_)))
            x = np.where(okEC[:, None] & ~okEA[:, None], xE, np.where((~okEA & two)[:, None], x, _unit(m + 1, n_)))
            b, gg = -y[:, 1:], -x[:, 1:]  # (g, k), (g, m)
            YcJ = Y[c[:, None], J]  # (g, k, F)
            YIa = Y[I, a[:, None]]  # (g, m, F)
            pred[idx] = (np.einsum("gk,gkf->gf", b, YcJ) + np.einsum("gi,gif->gf", gg, YIa)
                         - np.einsum("gi,gk,gikf->gf", gg, b, B1[:, :, 1:]))
            bw[idx, :k] = b
            gw[idx, :m] = gg
            exact2 = np.where(smA | smC, "two_sided_small_block", "two_sided")
            path[idx] = np.where(okEA, "exact_a", np.where(okEC, "exact_c", np.where(
                two, np.where(clA & clC, exact2, "two_sided_inexact"), "fallback_si_a")))
            failed[idx] = ~(okEA | okEC | two)
    # SI-A and SI-C themselves (their own donor searches): where either fits its training rows
    # exactly (more rows than coefficients), GSI returns its prediction, so GSI recovers whatever
    # SI-A or SI-C recovers; SI-A is also the recorded fallback
    spa, ia = impute_si(data, cs, as_, over="actions", **(si_kwargs or {}))
    spc, ic = impute_si(data, cs, as_, over="contexts", **(si_kwargs or {}))
    exact_si = {}
    for name, info in (("si_a_exact", ia), ("si_c_exact", ic)):
        nd = (info["donors"] >= 0).sum(axis=1) if info["donors"].size else np.zeros(P, dtype=np.int64)
        rows = info["train"].sum(axis=1) * F
        exact_si[name] = (info["fallback"] == "none") & (rows > nd + 1) & (np.nan_to_num(info["train_resid"], nan=np.inf) <= tol)
    use_c = exact_si["si_c_exact"] & ~exact_si["si_a_exact"]
    use_a = exact_si["si_a_exact"] | (failed & ~use_c)
    pred = np.where(use_a[:, None], spa, np.where(use_c[:, None], spc, pred))
    bw[use_a | use_c] = 0.0
    gw[use_a | use_c] = 0.0
    path[failed] = "fallback_si_a"
    path[use_c] = "si_c_exact"
    path[exact_si["si_a_exact"]] = "si_a_exact"
    fb = np.full(P, "none", dtype=object)
    fell = failed & ~exact_si["si_a_exact"] & ~use_c
    fb[fell] = ["si_a" if f == "none" else f"si_a:{f}" for f in ia["fallback"][fell]]
    return pred, {"fallback": fb.astype(str), "path": path.astype(str), "donors": D, "coef": bw,
                  "donor_contexts": I_all, "context_coef": gw}


# -------------------------------------------------------------------------------------------- PARAFAC
def impute_parafac(data: ImputationData, cs, as_, *, rank: int = 5, n_iter_max: int = 200, seed: int = 0):
    """Low-rank CP completion with tensorly's ``parafac(..., mask=...)`` (EM-style ALS on the measured
    entries). Targets must be unmeasured: refitting per left-out pair is not offered."""
    import tensorly as tl
    from tensorly.decomposition import parafac

    cs, as_ = np.asarray(cs), np.asarray(as_)
    if np.any(data.mask[cs, as_]):
        raise ValueError("PARAFAC completion predicts unmeasured pairs only (no leave-one-out)")
    m3 = np.broadcast_to(data.mask[:, :, None], data.Y.shape).astype(float)
    Y0 = np.where(m3 > 0, data.Y, 0.0)
    cp = parafac(tl.tensor(Y0), rank=rank, mask=tl.tensor(m3), n_iter_max=n_iter_max, init="random",
                 random_state=int(seed) % (2**32), tol=1e-10)
    full = tl.cp_to_tensor(cp)
    return np.asarray(full)[cs, as_], {"fallback": np.full(len(cs), "none")}


ESTIMATORS = ("si_a", "si_c", "gsi", "mean_over_actions", "mean_over_contexts", "two_way", "fixed_effect",
              "parafac")
