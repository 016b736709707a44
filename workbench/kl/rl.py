"""Small RL runs with KL regularisation, on- and off-policy, tracked by exact enumeration.

Task (reconstruction: the paper trains 4-8B models on MATH/Countdown; this is a verifiable synthetic
stand-in). A prompt ``c`` in ``{0..n_prompts-1}`` asks for a sequence ``y`` of L tokens over V with
``sum_t (t+1) * y_t = c (mod n_prompts)``; reward 1 if so, else 0. Prompts are split into *train*
(in-distribution) and *held-out* prompts; RL sees only train prompts. Held-out accuracy and held-out
KL to the reference measure what RL on one domain does to another (the paper's in-/out-of-domain
comparison: MATH vs MMLU physics).

Reference policy: an :class:`~workbench.kl.policies.MLPPolicy` conditioned on the prompt, trained by
exact maximum likelihood of the correct set (``-log P(correct|c)``, Adam) from random init until its
mean accuracy over all prompts reaches ``ref_accuracy``. The RL policy starts at the reference.

Update (GRPO/RLOO style, reconstruction of the paper's RLOO / Dr. GRPO setup): per step, ``group`` samples
for every train prompt; advantage ``A = r - mean of the other samples of the prompt`` (RLOO); task loss
``-sum_t min(rho_t A, clip(rho_t, 1-eps, 1+eps) A)`` averaged over samples, where ``rho_t = pi/mu`` per
token (``rho = 1`` on-policy, i.e. plain REINFORCE); KL term ``beta * surrogate(config)`` from
:mod:`workbench.kl.estimators` averaged over samples. With ``kl_baseline`` the reward-placed estimator
gets the same leave-one-out baseline as the task reward: then "k1 in reward" equals folding ``-beta K``
into the reward before the RLOO advantage, as verl does with ``algorithm.use_kl_in_reward``
(``token_level_rewards = scores - beta * kld``, then the RLOO/GRPO estimator sums and baselines
them). OpenRLHF does not: it baselines the raw task reward only, then adds ``-beta * kl_t`` per token
and takes the reward-to-go (``gamma = 1``), i.e. our ``k1 in reward-rtg`` with ``kl_baseline=False``
(its estimator value clamped to [-10, 10]: ``clamp="openrlhf"``).

Off-policy, which log-probs the reward-placed estimator uses is ``kl_reward_logprobs``: ``"behaviour"``
(default) takes the lagged sampler's, as verl's asynchronous trainer does (its ``old_log_probs`` come
from the rollout weights when ``async_training.use_rollout_log_probs``, the default there);
``"learner"`` takes the current policy's, detached (what verl's synchronous trainer recomputes as
``old_log_probs``, and what this module did before the option existed). On-policy both are the same.

Off-policy: the behaviour policy ``mu`` that samples is the policy from ``lag`` updates earlier
(asynchronous RL with staleness ``lag``).

Tracked every ``eval_every`` steps, exactly (enumeration over all prompts x V^L sequences): expected
accuracy on train and held-out prompts, reverse KL(pi||ref) averaged over train and held-out prompts,
mean sequence entropy; every step: norms of the total and KL-term gradients. Failure modes:
``diverged`` (non-finite loss or KL above ``diverge_kl``), ``collapsed`` (entropy below ``collapse_entropy``).
"""
from __future__ import annotations

import collections
import math

import torch
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from .estimators import KLConfig, parse_config, surrogate
from .policies import MLPPolicy, all_sequences, sample, token_logprobs


KL_REWARD_LOGPROBS = ("behaviour", "learner")


def task_reward(prompts: torch.Tensor, Y: torch.Tensor, n_prompts: int) -> torch.Tensor:
    """1.0 where ``sum_t (t+1) y_t = prompt (mod n_prompts)``, else 0.0; (B,).

    >>> task_reward(torch.tensor([1, 2]), torch.tensor([[1, 0], [1, 0]]), 3).tolist()
    [1.0, 0.0]
    """
    w = torch.arange(1, Y.shape[1] + 1, dtype=torch.int64)
    return ((Y * w).sum(-1) % n_prompts == prompts).to(torch.float64)


class ExactEvaluator:
    """Exact per-prompt accuracy, reverse KL to the reference and entropy, by enumeration."""

    def __init__(self, policy: MLPPolicy, n_prompts: int, ref_params):
        self.policy, self.P = policy, n_prompts
        Y = all_sequences(policy.V, policy.L)  # (N, L)
        N = Y.shape[0]
        self.Y = Y.repeat(n_prompts, 1)  # (P*N, L)
        self.prompts = torch.arange(n_prompts).repeat_interleave(N)  # (P*N,)
        self.N = N
        self.correct = task_reward(self.prompts, self.Y, n_prompts).view(n_prompts, N)
        with torch.no_grad():
            self.lr = self._seq_logp(ref_params)

    def _seq_logp(self, params) -> torch.Tensor:
        lp, _ = token_logprobs(self.policy, params, self.Y, self.prompts)
        return lp.sum(-1).view(self.P, self.N)  # (P, N)

    @torch.no_grad()
    def __call__(self, params) -> dict:
        lp = self._seq_logp(params)
        p = lp.exp()
        return {"accuracy": (p * self.correct).sum(-1),  # (P,)
                "rev_kl": (p * (lp - self.lr)).sum(-1),
                "entropy": -(p * lp).sum(-1)}


def train_reference(policy: MLPPolicy, n_prompts: int, target_accuracy: float, seed: int,
                    lr: float = 0.03, max_steps: int = 2000) -> tuple[list[torch.Tensor], dict]:
    """Exact maximum likelihood of the correct set until mean accuracy reaches ``target_accuracy``."""
    if not 0.0 < target_accuracy < 1.0:
        raise ValueError(f"ref_accuracy must be in (0, 1), got {target_accuracy}")
    params = [p.requires_grad_(True) for p in policy.init_params(derive_seed(seed, "ref"))]
    ev = ExactEvaluator(policy, n_prompts, [p.detach() for p in params])
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(max_steps):
        lp, _ = token_logprobs(policy, params, ev.Y, ev.prompts)
        p = lp.sum(-1).view(n_prompts, ev.N).exp()
        acc = (p * ev.correct).sum(-1)  # (P,)
        if float(acc.detach().mean()) >= target_accuracy:
            break
        loss = -acc.log().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    else:
        raise RuntimeError(f"reference did not reach accuracy {target_accuracy} in {max_steps} steps")
    ref = [p.detach().clone() for p in params]
    return ref, {"sft_steps": step, "accuracy": [float(a) for a in acc.detach()]}


def _loo_mean(x: torch.Tensor) -> torch.Tensor:
    """Leave-one-out mean over dim 1 of (P, G, ...)."""
    G = x.shape[1]
    return (x.sum(1, keepdim=True) - x) / (G - 1)


def run_rl(policy: MLPPolicy, ref_params, kl_name: str, *, n_prompts: int, train_prompts: list[int],
           heldout_prompts: list[int], steps: int, group: int, lr: float, beta: float, lag: int = 0,
           clip_eps: float = 0.2, kl_baseline: bool = True, eval_every: int = 10, diverge_kl: float = 5.0,
           collapse_entropy: float = 0.05, grad_clip: float = 0.0, seed: int = 0, evaluator=None,
           kl_reward_logprobs: str = "behaviour") -> dict:
    """One RL run. ``kl_name`` is a configuration name (:func:`parse_config`) or ``"none"`` (beta = 0).

    ``kl_reward_logprobs``: which log-probs the reward-placed estimator (and its baseline) is computed
    from off-policy: ``"behaviour"`` (the lagged sampling policy's, as verl's ``old_log_probs`` in its
    asynchronous trainer) or ``"learner"`` (the current policy's, detached). Identical on-policy.

    Returns plain data: ``curves`` (lists over eval steps), ``grad_norm`` / ``kl_grad_norm`` per step,
    ``final`` metrics and failure flags.
    """
    if group < 2:
        raise ValueError("group must be >= 2 for the leave-one-out baseline")
    if lag < 0:
        raise ValueError(f"lag must be >= 0, got {lag}")
    if kl_reward_logprobs not in KL_REWARD_LOGPROBS:
        raise ValueError(f"kl_reward_logprobs={kl_reward_logprobs!r}; choose one of {KL_REWARD_LOGPROBS}")
    cfg: KLConfig | None = None if kl_name == "none" else parse_config(kl_name)
    ev = evaluator or ExactEvaluator(policy, n_prompts, ref_params)
    params = [p.detach().clone().requires_grad_(True) for p in ref_params]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(derive_seed(seed, "rl", kl_name, lag) % 2**62)
    history = collections.deque([[p.detach().clone() for p in params]], maxlen=lag + 1)
    tp = torch.tensor(train_prompts, dtype=torch.int64)
    prompts = tp.repeat_interleave(group)  # (B,) with B = len(train) * group
    Pn, B = len(train_prompts), len(train_prompts) * group
    curves = {k: [] for k in ("step", "train_accuracy", "heldout_accuracy", "train_kl", "heldout_kl", "entropy")}
    gnorms, kl_gnorms = [], []
    diverged_at = collapsed_at = None

    def log(step):
        nonlocal diverged_at, collapsed_at
        m = ev([p.detach() for p in params])
        tr, ho = torch.tensor(train_prompts), torch.tensor(heldout_prompts)
        curves["step"].append(step)
        curves["train_accuracy"].append(float(m["accuracy"][tr].mean()))
        curves["heldout_accuracy"].append(float(m["accuracy"][ho].mean()) if len(ho) else float("nan"))
        curves["train_kl"].append(float(m["rev_kl"][tr].mean()))
        curves["heldout_kl"].append(float(m["rev_kl"][ho].mean()) if len(ho) else float("nan"))
        curves["entropy"].append(float(m["entropy"][tr].mean()))
        kl_now = curves["train_kl"][-1]
        if diverged_at is None and (not math.isfinite(kl_now) or kl_now > diverge_kl):
            diverged_at = step
        if collapsed_at is None and curves["entropy"][-1] < collapse_entropy:
            collapsed_at = step

    log(0)
    for step in range(1, steps + 1):
        mu = history[0]  # policy from `lag` updates ago (itself when lag = 0)
        Y = sample(policy, mu, B, gen, prompts)  # (B, L)
        r = task_reward(prompts, Y, n_prompts)  # (B,)
        A = (r.view(Pn, group) - _loo_mean(r.view(Pn, group))).view(B)  # RLOO advantage
        lp, _ = token_logprobs(policy, params, Y, prompts)  # (B, L)
        with torch.no_grad():
            lr_ = token_logprobs(policy, ref_params, Y, prompts)[0]
            lm = token_logprobs(policy, mu, Y, prompts)[0] if lag > 0 else None
        rho = torch.exp(lp - (lm if lm is not None else lp.detach()))  # (B, L)
        task = -torch.minimum(rho * A[:, None], rho.clamp(1 - clip_eps, 1 + clip_eps) * A[:, None]).sum(-1).mean()
        kl_term = lp.new_zeros(())
        if cfg is not None and beta > 0:
            base = None
            l_rew = lm if (kl_reward_logprobs == "behaviour" and lm is not None) else lp.detach()
            if kl_baseline and cfg.placement in ("reward_seq", "loss+reward", "reward_rtg"):
                from .estimators import _reverse_cumsum, kl_estimate
                k = kl_estimate(l_rew, lr_, cfg.estimator, cfg.clamp)
                if cfg.placement == "reward_rtg":
                    base = _loo_mean(_reverse_cumsum(k).view(Pn, group, -1)).reshape(B, -1)
                else:
                    base = _loo_mean(k.sum(-1).view(Pn, group)).view(B)
            kl_term = beta * surrogate(cfg, lp, lr_, lm, weights=torch.full((B,), 1.0 / B, dtype=lp.dtype),
                                       baseline=base, logp_reward=l_rew)
        loss = task + kl_term
        if not torch.isfinite(loss):
            diverged_at = diverged_at or step
            break
        opt.zero_grad()
        if kl_term.requires_grad:
            kg = torch.autograd.grad(kl_term, params, retain_graph=True)
            kl_gnorms.append(float(torch.sqrt(sum((g * g).sum() for g in kg))))
        else:
            kl_gnorms.append(0.0)
        loss.backward()
        gnorms.append(float(torch.sqrt(sum((p.grad * p.grad).sum() for p in params))))
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        history.append([p.detach().clone() for p in params])
        if step % eval_every == 0 or step == steps:
            log(step)
    final = {k: v[-1] for k, v in curves.items() if k != "step"}
    return {"config": kl_name, "lag": lag, "beta": beta if cfg is not None else 0.0, "curves": curves,
            "grad_norm": gnorms, "kl_grad_norm": kl_gnorms, "final": final,
            "max_train_kl": max(curves["train_kl"]), "diverged": diverged_at is not None, "diverged_at": diverged_at,
            "collapsed": collapsed_at is not None, "collapsed_at": collapsed_at}
