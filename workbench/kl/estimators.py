"""Token-level KL estimators k1, k2, k3 and the estimator *configurations* as data.

Notation (Schulman, "Approximating KL Divergence"; Shah et al. 2025, arXiv 2512.21852): for a token
``y_t`` sampled after prefix ``y_<t``, ``log r_t = log ref(y_t|y_<t) - log pi(y_t|y_<t)`` and

* ``k1 = -log r``                 (unbiased for KL(pi||ref), high variance, can be negative)
* ``k2 = (log r)^2 / 2``          (biased, low variance; verl ``mse``)
* ``k3 = r - 1 - log r``          (unbiased, non-negative, low variance; verl ``low_var_kl``, TRL/GRPO)

A *configuration* says where the estimator enters the policy-gradient computation:

* ``reward_seq``: detached sequence sum ``K = sum_t k_t`` multiplies the sequence score
  ``sum_t grad log pi(y_t|y_<t)`` (REINFORCE; "KL in reward").
* ``reward_rtg``: detached reward-to-go ``sum_{s>=t} k_s`` multiplies token ``t``'s score.
* ``loss``: ``K`` is differentiated through ``pi`` on the sampled tokens ("KL in loss").
* ``loss+reward``: both of the above (k3 loss + k3 reward is unbiased).

Off-policy (samples from a behaviour policy ``mu``), importance weights are detached and either
``token`` (``rho_t = pi_t/mu_t`` on each token's term) or ``sequence`` (``W = prod_t rho_t`` on the
whole sample). The form of the weighting is a reconstruction (the paper studies asynchronous RL with
Dr. GRPO; which weight each library applies to its KL term is in ``docs/kl_estimators.md``).

Every estimator here is written as a scalar *surrogate* ``S(batch)`` whose gradient, on a batch with
per-sample weights ``w_b``, is ``sum_b w_b g(y_b)``, where ``g`` is the configuration's per-sample
gradient estimate. All per-sample gradients have the form ``sum_t c_t(y) grad log pi(y_t|y_<t)``:
:func:`coefficients` returns ``c`` (B, L); exact expectations and variances are built from it
(:mod:`workbench.kl.exact`).

Clamping (option ``clamp``), as in the libraries' public code: ``"verl"`` clamps k3 (``low_var_kl``)
only: its log ratio to [-20, 20] before ``exp`` (newer verl versions) and its value to [-10, 10];
k1/k2 are left unclamped. ``"openrlhf"`` clamps the value of every estimator to [-10, 10]. Clamped
values have zero gradient outside the band, so clamped configurations are biased far from ref.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

ESTIMATORS = ("k1", "k2", "k3")
PLACEMENTS = ("reward_seq", "reward_rtg", "loss", "loss+reward")
IS_WEIGHTS = ("none", "token", "sequence")
CLAMPS = ("none", "verl", "openrlhf")


def kl_estimate(logp: torch.Tensor, logp_ref: torch.Tensor, kind: str, clamp: str = "none") -> torch.Tensor:
    """Per-token estimator values, same shape as ``logp`` (B, L).

    >>> import torch
    >>> lp, lr = torch.tensor([[-1.0]]), torch.tensor([[-2.0]])
    >>> [round(float(kl_estimate(lp, lr, k)), 4) for k in ("k1", "k2", "k3")]
    [1.0, 0.5, 0.3679]
    """
    if kind not in ESTIMATORS:
        raise ValueError(f"unknown estimator {kind!r}; choose one of {ESTIMATORS}")
    if clamp not in CLAMPS:
        raise ValueError(f"unknown clamp {clamp!r}; choose one of {CLAMPS}")
    log_r = logp_ref - logp  # (B, L)
    if kind == "k1":
        k = -log_r
    elif kind == "k2":
        k = 0.5 * log_r.square()
    else:
        if clamp == "verl":
            log_r = log_r.clamp(-20.0, 20.0)
        k = torch.exp(log_r) - 1.0 - log_r
    if clamp == "openrlhf" or (clamp == "verl" and kind == "k3"):
        k = k.clamp(-10.0, 10.0)
    return k


@dataclass(frozen=True)
class KLConfig:
    """One way of putting a KL estimator into the policy gradient."""

    estimator: str = "k1"
    """k1, k2 or k3"""
    placement: str = "reward_seq"
    """reward_seq, reward_rtg, loss or loss+reward"""
    is_weight: str = "none"
    """importance weight for off-policy samples: none, token or sequence (detached)"""
    clamp: str = "none"
    """estimator clamping convention: none, verl or openrlhf"""

    def __post_init__(self):
        for val, allowed, name in ((self.estimator, ESTIMATORS, "estimator"), (self.placement, PLACEMENTS, "placement"),
                                   (self.is_weight, IS_WEIGHTS, "is_weight"), (self.clamp, CLAMPS, "clamp")):
            if val not in allowed:
                raise ValueError(f"KLConfig.{name}={val!r}; choose one of {allowed}")

    @property
    def name(self) -> str:
        place = {"reward_seq": "reward", "reward_rtg": "reward-rtg", "loss": "loss", "loss+reward": "loss+reward"}
        s = f"{self.estimator} in {place[self.placement]}"
        if self.is_weight != "none":
            s += f" [{self.is_weight} IS]"
        if self.clamp != "none":
            s += f" ({self.clamp} clamp)"
        return s

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {"name": self.name}


def on_policy_configs() -> list[KLConfig]:
    """The on-policy configurations of the paper's table (k1/k2/k3 x reward/reward-to-go/loss, k3 loss+reward)."""
    out = [KLConfig(k, p) for k in ESTIMATORS for p in ("reward_seq", "reward_rtg", "loss")]
    out.append(KLConfig("k3", "loss+reward"))
    return out


def off_policy_configs() -> list[KLConfig]:
    """Off-policy variants: the main configurations with no, token-level or sequence-level weights."""
    base = [KLConfig("k1", "reward_seq"), KLConfig("k3", "loss"), KLConfig("k2", "loss"), KLConfig("k3", "loss+reward")]
    return [dataclasses.replace(c, is_weight=w) for c in base for w in IS_WEIGHTS]


def parse_config(name: str) -> KLConfig:
    """Parse ``"k1 in reward"``, ``"k3 in loss+reward [sequence IS]"`` ... back into a :class:`KLConfig`.

    >>> parse_config("k3 in loss [token IS]").is_weight
    'token'
    """
    s = name.strip()
    clamp = "none"
    if s.endswith("clamp)"):
        s, c = s[: s.rindex("(")].strip(), s[s.rindex("(") + 1: -len(" clamp)")]
        clamp = c
    isw = "none"
    if s.endswith("IS]"):
        s, w = s[: s.rindex("[")].strip(), s[s.rindex("[") + 1: -len(" IS]")]
        isw = w
    try:
        est, _, place = s.split(" ", 2)
    except ValueError:
        raise ValueError(f"cannot parse configuration {name!r}") from None
    inv = {"reward": "reward_seq", "reward-rtg": "reward_rtg", "loss": "loss", "loss+reward": "loss+reward"}
    if place not in inv:
        raise ValueError(f"cannot parse placement in {name!r}")
    return KLConfig(est, inv[place], isw, clamp)


def _reverse_cumsum(x: torch.Tensor) -> torch.Tensor:
    """``out[:, t] = sum_{s>=t} x[:, s]`` for (B, L)."""
    return x.flip(-1).cumsum(-1).flip(-1)


def surrogate(cfg: KLConfig, logp: torch.Tensor, logp_ref: torch.Tensor, logp_mu: torch.Tensor | None = None,
              weights: torch.Tensor | None = None, baseline: torch.Tensor | None = None,
              logp_reward: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar whose gradient is ``sum_b weights[b] * g_cfg(y_b)``.

    ``logp`` (B, L): log pi(y_t|y_<t) of the sampled tokens, differentiable; ``logp_ref`` (B, L) fixed;
    ``logp_mu`` (B, L): behaviour log-probs (``None`` = on-policy, mu = pi); ``weights`` (B,) per-sample
    weights (default ones); ``baseline``: optional detached value subtracted from the reward-placed
    estimator — (B,) for ``reward_seq`` or (B, L) for ``reward_rtg`` (must not depend on the sample
    itself, e.g. a leave-one-out group mean); ``logp_reward`` (B, L): log-probs from which the
    reward-placed (detached) estimator is computed, e.g. the behaviour policy's (verl's ``old_log_probs``
    in asynchronous training); default ``logp`` (the learner's). The loss-placed estimator always uses
    ``logp``.
    """
    if logp.shape != logp_ref.shape or logp.dim() != 2:
        raise ValueError(f"logp {tuple(logp.shape)} and logp_ref {tuple(logp_ref.shape)} must both be (B, L)")
    B, L = logp.shape
    w = torch.ones(B, dtype=logp.dtype) if weights is None else weights.to(logp.dtype)
    k = kl_estimate(logp, logp_ref, cfg.estimator, cfg.clamp)  # (B, L)
    if cfg.is_weight != "none" and logp_mu is None:
        raise ValueError(f"{cfg.name} needs behaviour log-probs logp_mu")
    log_rho = (logp - logp_mu).detach() if logp_mu is not None else torch.zeros_like(logp)  # (B, L)
    if cfg.is_weight == "token":
        tok_w, seq_w = log_rho.exp(), torch.ones(B, dtype=logp.dtype)
    elif cfg.is_weight == "sequence":
        tok_w, seq_w = torch.ones_like(logp), log_rho.sum(-1).exp()
    else:
        tok_w, seq_w = torch.ones_like(logp), torch.ones(B, dtype=logp.dtype)
    total = logp.new_zeros(())
    if cfg.placement in ("loss", "loss+reward"):
        total = total + (w * seq_w * (tok_w * k).sum(-1)).sum()
    k_rew = k.detach() if logp_reward is None else kl_estimate(logp_reward.detach(), logp_ref, cfg.estimator, cfg.clamp)
    if cfg.placement in ("reward_seq", "loss+reward"):
        ret = k_rew.sum(-1)  # (B,)
        if baseline is not None:
            ret = ret - baseline.detach()
        total = total + (w * seq_w * ret * (tok_w * logp).sum(-1)).sum()
    if cfg.placement == "reward_rtg":
        rtg = _reverse_cumsum(k_rew)  # (B, L)
        if baseline is not None:
            rtg = rtg - baseline.detach()
        total = total + (w * seq_w * (tok_w * rtg * logp).sum(-1)).sum()
    return total


def coefficients(cfg: KLConfig, logp: torch.Tensor, logp_ref: torch.Tensor,
                 logp_mu: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample, per-token coefficients ``c`` (B, L) with ``g(y_b) = sum_t c[b, t] grad log pi(y_bt|y_b<t)``.

    Obtained by differentiating :func:`surrogate` with respect to the token log-probs themselves.
    """
    lp = logp.detach().clone().requires_grad_(True)
    s = surrogate(cfg, lp, logp_ref.detach(), None if logp_mu is None else logp_mu.detach())
    (c,) = torch.autograd.grad(s, lp)
    return c
