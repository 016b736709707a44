"""Exact enumeration of every estimator configuration's expected gradient and variance.

For a policy over V^L enumerable sequences (``workbench.kl.policies``) this module computes, with
no sampling:

* reverse and forward sequence KL, ``KL(pi||ref)`` and ``KL(ref||pi)``, and their gradients (autograd of
  the exact sums, or the tabular closed forms below);
* the per-token partial gradients with the prefix distribution held fixed,
  ``sum_t E_{y_<t~pi}[grad KL(pi(.|y_<t) || ref(.|y_<t))]`` (what k2-in-loss estimates) and the same
  with the forward KL (what k3-in-loss estimates);
* each configuration's expected gradient ``sum_y q(y) g(y)`` (q = pi on-policy, the behaviour
  policy mu off-policy), written as ``grad_theta sum_y sg(q(y)) sum_t c_t(y) log pi(y_t|y_<t)``;
* its exact covariance trace ``E||g - E g||^2`` and per-coordinate variances, from the per-sample
  gradients: closed form for the tabular policy (each token's score lives in its own prefix row, so
  a sample's gradient is a sum of L disjoint blocks ``c_t (e_{y_t} - pi(.|y_<t))``), and per-sample
  ``torch.func`` gradients for the neural policy.

Everything is vectorised over all V^L sequences, in chunks of ``chunk`` sequences.

Tabular fast path (``method="auto"``, the default for :class:`TabularPolicy`): hand-written closed forms
instead of autograd, because the tabular policy's structure makes them exact and cheap (checked against
the autograd path in the tests to ~1e-12):

* divergences and reference gradients by dynamic programming over the prefix tree, O(#parameters), no
  enumeration: prefix masses ``P(r)`` top-down, and for the reverse KL the value-to-go
  ``U_t(r) = KL_t(r) + sum_v pi(v|r) U_{t+1}(rv)``, whose gradient in row r is
  ``P(r) pi(.|r) * (a - <pi(.|r), a>)`` with ``a_v = log pi(v|r) - log ref(v|r) + U_{t+1}(rv)``;
* configuration moments over all V^L sequences at once: token log-probabilities by gather from the
  log-softmaxed tables (the lexicographic sequence id divided by ``V^(L-1-t)`` is the row of
  ``(y_<t, y_t)``), per-token coefficients of every configuration in closed form
  (:func:`_closed_coefficients`, equal to :func:`coefficients`), then per level one segment sum
  ``S[r, v] = sum q c_t`` over the contiguous block of sequences with prefix ``(r, v)`` (repeated
  V-fold sums: O(1) work per token and configuration instead of O(V)); the mean in row r is
  ``S[r] - pi(.|r) sum_v S[r, v]`` and the second moment
  ``S2[r] (1 - 2 pi(.|r)) + pi(.|r)^2 sum_v S2[r, v]`` (``S2`` from ``q c_t^2``), since a sample's
  gradient in that row is ``c_t (e_{y_t} - pi(.|r))``.
"""
from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from .estimators import KLConfig, coefficients, surrogate
from .policies import TabularPolicy, all_sequences, sample, token_logprobs


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _leaves(params):
    return [p.detach().clone().requires_grad_(True) for p in params]


def _chunks(N: int, chunk: int):
    for s in range(0, N, chunk):
        yield slice(s, min(N, s + chunk))


def _prefix_masses(logp_tables: list[torch.Tensor]) -> list[torch.Tensor]:
    """``P_t`` (V^t,): probability of each prefix of length t under the tabular policy with these log-tables."""
    P = [torch.ones(1, dtype=logp_tables[0].dtype)]
    for t in range(len(logp_tables) - 1):
        P.append((P[-1][:, None] * logp_tables[t].exp()).reshape(-1))
    return P


def _tabular_divergences(pi_params, ref_params) -> dict:
    """Closed forms of :func:`exact_divergences` for the tabular policy (prefix-tree DP, no enumeration)."""
    lsp = [torch.log_softmax(p.detach(), -1) for p in pi_params]
    lsr = [torch.log_softmax(r.detach(), -1) for r in ref_params]
    Pp, Pr = _prefix_masses(lsp), _prefix_masses(lsr)
    L = len(lsp)
    rev = fwd = 0.0
    g_rev, g_fwd, g_trev, g_tfwd = [None] * L, [None] * L, [None] * L, [None] * L
    U_next = None  # (V^(t+1),) reverse-KL value-to-go after each (prefix, token) of level t
    for t in range(L - 1, -1, -1):
        pt, rt = lsp[t].exp(), lsr[t].exp()  # (V^t, V)
        d = lsp[t] - lsr[t]
        kl_rev_row = (pt * d).sum(-1)  # (V^t,)
        kl_fwd_row = -(rt * d).sum(-1)
        rev += float(Pp[t] @ kl_rev_row)
        fwd += float(Pr[t] @ kl_fwd_row)
        g_trev[t] = Pp[t][:, None] * pt * (d - kl_rev_row[:, None])
        g_tfwd[t] = Pp[t][:, None] * (pt - rt)
        g_fwd[t] = Pr[t][:, None] * (pt - rt)
        a = d if U_next is None else d + U_next.view_as(d)
        g_rev[t] = Pp[t][:, None] * pt * (a - (pt * a).sum(-1, keepdim=True))
        U_next = (pt * a).sum(-1)  # U_t(r)
    cat = lambda gs: torch.cat([g.reshape(-1) for g in gs])  # noqa: E731
    return {"rev_kl": rev, "fwd_kl": fwd, "grad_rev": cat(g_rev), "grad_fwd": cat(g_fwd),
            "grad_tok_rev": cat(g_trev), "grad_tok_fwd": cat(g_tfwd)}


def exact_divergences(policy, pi_params, ref_params, prompts=None, chunk: int = 1 << 17,
                      method: str = "auto") -> dict:
    """Exact KLs and reference gradients (flattened over all parameters).

    Returns ``rev_kl``, ``fwd_kl`` (floats), ``grad_rev``, ``grad_fwd``, ``grad_tok_rev``, ``grad_tok_fwd``
    (tensors (P,)). ``prompts``: optional single prompt id (int) for prompted policies. ``method``:
    ``"auto"`` uses the prefix-tree closed forms for the tabular policy (module docstring) and autograd
    over all enumerated sequences otherwise; ``"autograd"`` forces the latter (the cross-check).
    """
    if method not in ("auto", "autograd"):
        raise ValueError(f"method must be 'auto' or 'autograd', got {method!r}")
    if isinstance(policy, TabularPolicy) and method == "auto":
        if prompts is not None:
            raise ValueError("TabularPolicy has no prompt input; use MLPPolicy for prompted tasks")
        return _tabular_divergences(pi_params, ref_params)
    Y_all = all_sequences(policy.V, policy.L)
    N = Y_all.shape[0]
    th = _leaves(pi_params)
    acc = {k: None for k in ("grad_rev", "grad_fwd", "grad_tok_rev", "grad_tok_fwd")}
    rev = fwd = 0.0
    for sl in _chunks(N, chunk):
        Y = Y_all[sl]
        pr = None if prompts is None else torch.full((Y.shape[0],), int(prompts), dtype=torch.int64)
        lp, lp_all = token_logprobs(policy, th, Y, pr)  # (B, L), (B, L, V)
        with torch.no_grad():
            lr, lr_all = token_logprobs(policy, ref_params, Y, pr)
        seq_lp, seq_lr = lp.sum(-1), lr.sum(-1)  # (B,)
        p, r = seq_lp.exp(), seq_lr.exp()
        rev_c = (p * (seq_lp - seq_lr)).sum()
        fwd_c = (r * (seq_lr - seq_lp)).sum()
        # per-token KLs at every prefix of every sequence: (B, L)
        tok_rev = (lp_all.exp() * (lp_all - lr_all)).sum(-1)
        tok_fwd = (lr_all.exp() * (lr_all - lp_all)).sum(-1)
        # E_{y~pi} sum_t KL_t(y_<t) with pi(y) held fixed: marginalising the suffix gives pi(y_<t)
        ps = p.detach()[:, None]
        objs = {"grad_rev": rev_c, "grad_fwd": fwd_c, "grad_tok_rev": (ps * tok_rev).sum(),
                "grad_tok_fwd": (ps * tok_fwd).sum()}
        for k, obj in objs.items():
            g = _flat(torch.autograd.grad(obj, th, retain_graph=True))
            acc[k] = g if acc[k] is None else acc[k] + g
        rev += float(rev_c.detach())
        fwd += float(fwd_c.detach())
    return {"rev_kl": rev, "fwd_kl": fwd, **acc}


def _tabular_second_moment(policy: TabularPolicy, Y, lp_all, c, q) -> torch.Tensor:
    """Per-coordinate ``E[g_j^2]`` for the tabular policy, flattened like the parameters (P,).

    A sample's gradient is ``sum_t c_t (e_{y_t} - pi(.|y_<t))`` placed in row ``prefix(y_<t)`` of level
    t; rows differ across t, so squares add without cross terms.
    """
    idx = policy.prefix_index(Y)  # (B, L)
    p_all = lp_all.detach().exp()  # (B, L, V)
    e = (Y[..., None] == torch.arange(policy.V)).to(p_all.dtype)
    blk = (q[:, None, None] * c[..., None].square()) * (e - p_all).square()  # (B, L, V)
    out = []
    for t in range(policy.L):
        m = torch.zeros(policy.V ** t, policy.V, dtype=p_all.dtype)
        m.index_add_(0, idx[:, t], blk[:, t])
        out.append(m.reshape(-1))
    return torch.cat(out)


def _per_sample_second_moment(policy, params, Y, c, q, prompts) -> torch.Tensor:
    """Per-coordinate ``E[g_j^2]`` from per-sample gradients (torch.func), for any policy."""
    from torch.func import grad, vmap

    def one(ps, y, cy, pr):
        lp, _ = token_logprobs(policy, ps, y[None], None if pr is None else pr[None])
        return (lp[0] * cy).sum()

    ps = [p.detach() for p in params]
    if prompts is None:
        G = vmap(grad(lambda ps_, y, cy: one(ps_, y, cy, None)), in_dims=(None, 0, 0))(ps, Y, c)
    else:
        G = vmap(grad(one), in_dims=(None, 0, 0, 0))(ps, Y, c, prompts)
    Gf = torch.cat([g.reshape(g.shape[0], -1) for g in G], dim=1)  # (B, P)
    return (q[:, None] * Gf.square()).sum(0)


def _tabular_accumulate(policy: TabularPolicy, start: int, W: torch.Tensor, d: torch.Tensor,
                        out: list[torch.Tensor]) -> None:
    """``out[t][:, row(b, t)] += W[:, b, t] * d[b, t]`` for the lexicographic sequences ``start .. start+B-1``.

    ``W`` (C, B, L) per-configuration token weights, ``d`` (B, L, V) per-token blocks, ``out[t]`` (C, V^t, V).
    Sequences sharing the prefix y_<t are a contiguous block of ``V^(L-t)`` rows, so each level is one
    product summed over the block (no scatter); the chunk must consist of whole blocks or lie
    inside one block (chunk sizes are powers of V)."""
    C, B, _ = W.shape
    V = policy.V
    for t in range(policy.L):
        block = V ** (policy.L - t)
        if block <= B:
            if B % block or start % block:
                raise ValueError("chunk not aligned to prefix blocks")
            R, r0 = B // block, start // block
            # elementwise product + block sum: for tiny V this beats einsum's batched matmul
            out[t][:, r0: r0 + R] += (W[:, :, t, None] * d[None, :, t]).reshape(C, R, block, V).sum(2)
        else:
            if (start % block) + B > block:
                raise ValueError("chunk straddles two prefix blocks")
            out[t][:, start // block] += W[:, :, t] @ d[:, t]


def _closed_coefficients(cfgs: list[KLConfig], lp: torch.Tensor, lr: torch.Tensor, lm, out: torch.Tensor) -> None:
    """``out[i] = coefficients(cfgs[i], lp, lr, lm)`` (C, B, L), by hand.

    Written out because :func:`coefficients` differentiates the surrogate with autograd once per
    configuration, which dominated the enumeration; here estimator values, their derivatives in
    ``log pi`` and the importance weights are computed once per batch and shared. Derivation, with
    detached weights ``tok_w``, ``seq_w`` (as in :func:`surrogate`): loss placement contributes
    ``seq_w tok_w_t dk_t/dlog pi_t``, reward ``seq_w tok_w_t sum_s k_s``, reward-to-go
    ``seq_w tok_w_t sum_{s>=t} k_s``. Clamped values have zero derivative where the clamp is active
    (torch's clamp passes the gradient on the closed band). Checked against :func:`coefficients` in the
    tests for every estimator, placement, weight and clamp.
    """
    log_r = lr - lp
    vals, ders = {}, {}

    def est(kind, clamp):
        key = (kind, clamp)
        if key not in vals:
            if kind == "k1":
                k, dk = -log_r, torch.ones_like(log_r)
            elif kind == "k2":
                k, dk = 0.5 * log_r.square(), -log_r
            else:
                if clamp == "verl":
                    lrc = log_r.clamp(-20.0, 20.0)
                    k, dk = lrc.exp() - 1.0 - lrc, (1.0 - lrc.exp()) * ((log_r >= -20.0) & (log_r <= 20.0))
                else:
                    er = log_r.exp()
                    k, dk = er - 1.0 - log_r, 1.0 - er
            if clamp == "openrlhf" or (clamp == "verl" and kind == "k3"):
                dk = dk * ((k >= -10.0) & (k <= 10.0))
                k = k.clamp(-10.0, 10.0)
            vals[key], ders[key] = k, dk
        return vals[key], ders[key]

    log_rho = None if lm is None else lp - lm
    for i, cfg in enumerate(cfgs):
        if cfg.is_weight != "none" and lm is None:
            raise ValueError(f"{cfg.name} needs behaviour log-probs logp_mu")
        k, dk = est(cfg.estimator, cfg.clamp)
        c = out[i]
        if cfg.placement == "loss":
            c.copy_(dk)
        elif cfg.placement == "reward_seq":
            c.copy_(k.sum(-1, keepdim=True).expand_as(k))
        elif cfg.placement == "reward_rtg":
            c.copy_(k.flip(-1).cumsum(-1).flip(-1))
        else:  # loss+reward
            torch.add(dk, k.sum(-1, keepdim=True), out=c)
        if cfg.is_weight == "token":
            c.mul_(log_rho.exp())
        elif cfg.is_weight == "sequence":
            c.mul_(log_rho.sum(-1, keepdim=True).exp())


def _expand_levels(flat_tables: list[torch.Tensor], start: int, B: int, block: list[int]) -> torch.Tensor:
    """(B, L) token log-probs of the lexicographic sequences ``start .. start+B-1``.

    Sequence ``i``'s token t is entry ``i // block[t]`` of level t's flattened table; consecutive
    sequences share it in runs of ``block[t]``, so each column is a slice repeated by expand (the
    gather ``table[i // block[t]]`` without the index arithmetic)."""
    out = torch.empty(B, len(flat_tables), dtype=flat_tables[0].dtype)
    for t, (tab, blk) in enumerate(zip(flat_tables, block)):
        if blk <= B:
            r0, R = start // blk, B // blk
            out[:, t].view(R, blk).copy_(tab[r0: r0 + R, None].expand(R, blk))
        else:
            out[:, t] = tab[start // blk]
    return out


def _tabular_moments(policy: TabularPolicy, pi_params, ref_params, cfgs: list[KLConfig], mu_params,
                     chunk: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(mean, second moment)`` (P,) of each configuration by gather + per-level segment sums (module docstring)."""
    V, L = policy.V, policy.L
    N, C = V ** L, len(cfgs)
    tabs = {k: [torch.log_softmax(p.detach(), -1) for p in ps]
            for k, ps in (("pi", pi_params), ("ref", ref_params), ("mu", mu_params)) if ps is not None}
    flat = {k: [x.reshape(-1) for x in v] for k, v in tabs.items()}  # level t: index (y_<t, y_t) lexicographic
    B = min(N, V ** max(0, int(math.floor(math.log(max(chunk, 1), V) + 1e-9))))  # power of V: blocks align
    block = [V ** (L - 1 - t) for t in range(L)]  # sequences sharing (y_<t, y_t)
    dt = tabs["pi"][0].dtype
    S1 = [torch.zeros(C, V ** (t + 1), dtype=dt) for t in range(L)]
    S2 = [torch.zeros_like(x) for x in S1]
    for start in range(0, N, B):
        lp, lr, lm = (_expand_levels(flat[k], start, B, block) if k in flat else None for k in ("pi", "ref", "mu"))
        q = (lm if lm is not None else lp).sum(-1).exp()  # (B,) sampling probability
        X = torch.empty(2, C, B, L, dtype=dt)
        _closed_coefficients(cfgs, lp, lr, lm, X[0])  # (C, B, L) per-token coefficients
        torch.mul(X[0], X[0], out=X[1])
        X.mul_(q[:, None])  # (2, C, B, L): q c and q c^2
        # segment sums of all levels by repeated V-fold reduction of contiguous memory: after k folds
        # row j of X sums the block of V^k sequences j V^k ..; level t (block V^(L-1-t)) reads column t
        k = 0
        for t in range(L - 1, -1, -1):
            while V ** k < min(block[t], B):
                X = X.view(2, C, -1, V, X.shape[-1]).sum(3)
                k += 1
            X = X[..., : t + 1]  # columns above t are done
            if block[t] <= B:  # the chunk holds whole blocks
                R, r0 = B // block[t], start // block[t]
                S1[t][:, r0: r0 + R] += X[0, :, :, t]
                S2[t][:, r0: r0 + R] += X[1, :, :, t]
            else:  # the chunk lies inside one block (X now has one row)
                S1[t][:, start // block[t]] += X[0, :, 0, t]
                S2[t][:, start // block[t]] += X[1, :, 0, t]
    out = []
    for i in range(C):
        m, s2 = [], []
        for t in range(L):
            pt = tabs["pi"][t].exp()  # (V^t, V)
            a1, a2 = S1[t][i].view(-1, V), S2[t][i].view(-1, V)
            m.append((a1 - pt * a1.sum(-1, keepdim=True)).reshape(-1))
            s2.append((a2 * (1 - 2 * pt) + pt.square() * a2.sum(-1, keepdim=True)).reshape(-1))
        out.append((torch.cat(m), torch.cat(s2)))
    return out


def config_moments(policy, pi_params, ref_params, cfgs: list[KLConfig], mu_params=None, prompts=None,
                   chunk: int | None = None, method: str = "auto") -> list[dict]:
    """Exact ``mean`` (P,), per-coordinate ``var`` (P,) and ``trace`` of each configuration's gradient estimate.

    Samples come from ``mu_params`` when given (off-policy), else from ``pi_params``. ``chunk``: sequences
    per vectorised step (default 4096 for the tabular fast path, whose working set then stays in cache,
    else 65536). ``method``:

    * ``"auto"``: for the tabular policy, gather + segment sums over all sequences, every configuration
      from the same pass (module docstring; no autograd over the tables); autograd otherwise;
    * ``"blocks"``: the earlier tabular closed form (per-token score blocks ``c_t (e_{y_t} - pi(.|y_<t))``
      summed per prefix block, O(V) work per token), kept for the throughput comparison;
    * ``"autograd"``: the generic path, autograd per configuration + per-sample second moments (the
      cross-check of both closed forms).
    """
    if method not in ("auto", "blocks", "autograd"):
        raise ValueError(f"method must be 'auto', 'blocks' or 'autograd', got {method!r}")
    if method != "autograd" and isinstance(policy, TabularPolicy) and prompts is not None:
        raise ValueError("TabularPolicy has no prompt input; use MLPPolicy for prompted tasks")
    if method == "auto" and isinstance(policy, TabularPolicy):
        out = []
        for m, s2 in _tabular_moments(policy, pi_params, ref_params, cfgs, mu_params, chunk or 1 << 12):
            var = (s2 - m.square()).clamp_min(0.0)
            out.append({"mean": m, "var": var, "trace": float(var.sum())})
        return out
    closed = isinstance(policy, TabularPolicy) and method == "blocks"
    chunk = chunk or 1 << 16
    Y_all = all_sequences(policy.V, policy.L)  # lexicographic: the closed form relies on it
    N = Y_all.shape[0]
    if closed:  # largest power of V not above the requested chunk, so chunks align with prefix blocks
        chunk = policy.V ** max(0, int(math.floor(math.log(max(chunk, 1), policy.V) + 1e-9)))
    th = [p.detach() for p in pi_params] if closed else _leaves(pi_params)
    means = [None] * len(cfgs)
    second = [None] * len(cfgs)
    acc1 = acc2 = None
    for sl in _chunks(N, chunk):
        Y = Y_all[sl]
        pr = None if prompts is None else torch.full((Y.shape[0],), int(prompts), dtype=torch.int64)
        lp, lp_all = token_logprobs(policy, th, Y, pr)
        with torch.no_grad():
            lr, _ = token_logprobs(policy, ref_params, Y, pr)
            lm = token_logprobs(policy, mu_params, Y, pr)[0] if mu_params is not None else None
        q = (lm if lm is not None else lp.detach()).sum(-1).exp()  # (B,) sampling probability
        if closed:
            d = (Y[..., None] == torch.arange(policy.V)).to(lp_all.dtype) - lp_all.exp()  # (B, L, V) score blocks
            Cc = torch.stack([coefficients(cfg, lp.detach(), lr, lm) for cfg in cfgs])  # (C, B, L)
            if acc1 is None:
                acc1 = [torch.zeros(len(cfgs), policy.V ** t, policy.V, dtype=d.dtype) for t in range(policy.L)]
                acc2 = [torch.zeros_like(x) for x in acc1]
            _tabular_accumulate(policy, sl.start, q[None, :, None] * Cc, d, acc1)
            _tabular_accumulate(policy, sl.start, q[None, :, None] * Cc.square(), d.square(), acc2)
            continue
        for i, cfg in enumerate(cfgs):
            c = coefficients(cfg, lp.detach(), lr, lm)  # (B, L)
            g = _flat(torch.autograd.grad(lp, th, grad_outputs=q[:, None] * c, retain_graph=True))
            if isinstance(policy, TabularPolicy):
                m2 = _tabular_second_moment(policy, Y, lp_all, c, q)
            else:
                m2 = _per_sample_second_moment(policy, pi_params, Y, c, q, pr)
            means[i] = g if means[i] is None else means[i] + g
            second[i] = m2 if second[i] is None else second[i] + m2
    if closed:
        means = [torch.cat([a[i].reshape(-1) for a in acc1]) for i in range(len(cfgs))]
        second = [torch.cat([a[i].reshape(-1) for a in acc2]) for i in range(len(cfgs))]
    out = []
    for m, s2 in zip(means, second):
        var = (s2 - m.square()).clamp_min(0.0)
        out.append({"mean": m, "var": var, "trace": float(var.sum())})
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine; 0.0 when either vector is zero up to rounding (||a|| < 1e-12 ||b||), where it is undefined."""
    na, nb = float(a.norm()), float(b.norm())
    return float(a @ b) / (na * nb) if na > 1e-12 * nb and nb > 0 else 0.0


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    nb = float(b.norm())
    return float((a - b).norm()) / nb if nb > 0 else float("nan")


def analyse(policy, pi_params, ref_params, cfgs: list[KLConfig], mu_params=None, prompts=None,
            keep_vectors: bool = False) -> dict:
    """Table of every configuration against the true reverse-KL gradient.

    Rows: ``config``, ``rel_error`` = ||E g - grad KL|| / ||grad KL||, ``cosine``, ``rel_variance`` =
    trace Cov(g) / ||grad KL||^2 (per sample), ``rel_to_tok_fwd`` / ``rel_to_tok_rev`` (distance to the
    per-token forward / reverse partial gradients), and the 2-D projection ``proj`` of E g on the plane
    spanned by the true gradient (x) and the part of the per-token forward-KL gradient orthogonal to it (y),
    both in units of ||grad KL||.
    """
    ref = exact_divergences(policy, pi_params, ref_params, prompts)
    mom = config_moments(policy, pi_params, ref_params, cfgs, mu_params, prompts)
    gt = ref["grad_rev"]
    n2 = float(gt @ gt)
    e1 = gt / math.sqrt(n2) if n2 > 0 else gt
    o = ref["grad_tok_fwd"] - (ref["grad_tok_fwd"] @ e1) * e1
    e2 = o / o.norm() if float(o.norm()) > 1e-12 * max(1.0, math.sqrt(n2)) else torch.zeros_like(o)
    scale = math.sqrt(n2) if n2 > 0 else 1.0
    rows = []
    for cfg, m in zip(cfgs, mom):
        row = {"config": cfg.name, **cfg.as_dict(),
               "rel_error": _rel(m["mean"], gt), "cosine": _cos(m["mean"], gt),
               "rel_variance": m["trace"] / n2 if n2 > 0 else float("nan"),
               "rel_to_tok_fwd": _rel(m["mean"], ref["grad_tok_fwd"]),
               "rel_to_tok_rev": _rel(m["mean"], ref["grad_tok_rev"]),
               "norm_ratio": float(m["mean"].norm()) / scale,
               "proj": [float(m["mean"] @ e1) / scale, float(m["mean"] @ e2) / scale]}
        if keep_vectors:
            row["_mean"], row["_var"] = m["mean"], m["var"]
        rows.append(row)
    out = {"rev_kl": ref["rev_kl"], "fwd_kl": ref["fwd_kl"], "grad_norm": scale, "rows": rows,
           "proj_tok_fwd": [float(ref["grad_tok_fwd"] @ e1) / scale, float(ref["grad_tok_fwd"] @ e2) / scale],
           "n_sequences": policy.V ** policy.L, "n_params": int(gt.numel())}
    if keep_vectors:
        out["_ref"] = ref
    return out


def mc_gradient(policy, pi_params, ref_params, cfg: KLConfig, n: int, generator: torch.Generator,
                mu_params=None, prompts=None) -> torch.Tensor:
    """Monte Carlo estimate (P,) from ``n`` ancestrally sampled sequences (from mu if given, else pi)."""
    Y = sample(policy, mu_params if mu_params is not None else pi_params, n, generator,
               None if prompts is None else torch.full((n,), int(prompts), dtype=torch.int64))
    th = _leaves(pi_params)
    pr = None if prompts is None else torch.full((n,), int(prompts), dtype=torch.int64)
    lp, _ = token_logprobs(policy, th, Y, pr)
    with torch.no_grad():
        lr, _ = token_logprobs(policy, ref_params, Y, pr)
        lm = token_logprobs(policy, mu_params, Y, pr)[0] if mu_params is not None else None
    s = surrogate(cfg, lp, lr, lm, weights=torch.full((n,), 1.0 / n, dtype=lp.dtype))
    return _flat(torch.autograd.grad(s, th, allow_unused=False))


def mc_convergence(policy, pi_params, ref_params, cfgs: list[KLConfig], ns: list[int], seed: int,
                   progress: bool = True) -> dict:
    """Error of MC estimates vs their exact expectation, ``||mean_n - E g|| / ||grad KL||``, next to the
    prediction ``sqrt(trace Cov(g) / n) / ||grad KL||`` (normalised by the true reverse-KL gradient for every
    configuration, so zero-mean configurations such as k1 in loss are comparable)."""
    mom = config_moments(policy, pi_params, ref_params, cfgs)
    gnorm = float(exact_divergences(policy, pi_params, ref_params)["grad_rev"].norm())
    out = {"n": list(ns), "normaliser": "||grad KL(pi||ref)||", "configs": []}
    for ci, (cfg, m) in enumerate(tqdm(list(zip(cfgs, mom)), desc="MC convergence", disable=not progress)):
        g = torch.Generator().manual_seed(seed * 1000 + ci)
        errs = [float((mc_gradient(policy, pi_params, ref_params, cfg, n, g) - m["mean"]).norm()) / gnorm for n in ns]
        pred = [math.sqrt(m["trace"] / n) / gnorm for n in ns]
        out["configs"].append({"config": cfg.name, "rel_error": errs, "predicted": pred})
    return out
