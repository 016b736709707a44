"""Actor-critic trained in imagination (STORM / DreamerV3 recipe, following STORM's code).

Policy and critic read s = [z_k (flat), h_{k-1}]. Per update: lambda-returns R_k from imagined rewards,
continuation flags and critic values; advantages (R_k - V(s_k)) / max(1, P95(R) - P5(R)) with the two
percentiles tracked by an EMA (decay 0.99) that starts at 0 as STORM's ``EMAScalar``; REINFORCE actor
loss with an entropy bonus; the critic regresses R_k as a symlog two-hot distribution, plus a regulariser
towards the lambda-returns computed with the EMA ("slow") critic's values (STORM's
``slow_lambda_return``).

Choice (config ``lambda_bootstrap``): STORM's ``calc_lambda_return`` mixes in the value of the *current*
state, R_k = r_k + gamma c_k ((1 - lam) V_k + lam R_{k+1}) (``"current"``, the default, as STORM);
standard TD(lambda) (DreamerV3) uses the next state's value V_{k+1} (``"next"``).

Continuous actions (the GIT-STORM authors' development code, zarifikram/gstorm ``trunc_normal``):
mean tanh(mu), std 2 sigmoid(s / 2) + 0.1, a Normal whose samples are clipped to [-1 + 1e-6, 1 - 1e-6]
(their "SafeTruncatedNormal": a clipped Normal, not a renormalised truncated one); log-probability and
entropy are the Normal's.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nets import TwoHot, mlp

MIN_STD = 0.1  # continuous actor: std = 2 sigmoid(s / 2) + MIN_STD (authors' code)
CLIP_EPS = 1e-6  # continuous actor: samples clipped to [-1 + eps, 1 - eps] (authors' code)


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   gamma: float, lam: float, bootstrap: str = "current") -> torch.Tensor:
    """Lambda-returns. rewards, continues (B, H); values (B, H+1) -> returns (B, H). R_H = V_H and

    - ``bootstrap="current"`` (STORM's code): R_k = r_k + gamma c_k ((1 - lam) V_k + lam R_{k+1});
    - ``bootstrap="next"`` (standard TD(lambda)): R_k = r_k + gamma c_k ((1 - lam) V_{k+1} + lam R_{k+1}).

    >>> r = torch.tensor([[1.0, 1.0]]); v = torch.zeros(1, 3); c = torch.ones(1, 2)
    >>> lambda_returns(r, v, c, gamma=0.5, lam=1.0).tolist()
    [[1.5, 1.0]]
    """
    if values.shape[1] != rewards.shape[1] + 1:
        raise ValueError(f"values need horizon+1 steps: {tuple(values.shape)} vs rewards {tuple(rewards.shape)}")
    if bootstrap not in ("current", "next"):
        raise ValueError(f"bootstrap must be 'current' (STORM) or 'next' (TD(lambda)), got {bootstrap!r}")
    H = rewards.shape[1]
    boot = values[:, :-1] if bootstrap == "current" else values[:, 1:]  # (B, H)
    out = torch.empty_like(rewards)
    nxt = values[:, -1]
    for k in reversed(range(H)):
        nxt = rewards[:, k] + gamma * continues[:, k] * ((1 - lam) * boot[:, k] + lam * nxt)
        out[:, k] = nxt
    return out


class ReturnNorm:
    """EMA of the 5th and 95th return percentiles, both starting at 0 (STORM's ``EMAScalar``);
    ``scale`` = max(1, P95 - P5)."""

    def __init__(self, decay: float = 0.99):
        self.decay, self.low, self.high = decay, 0.0, 0.0

    def update(self, returns: torch.Tensor) -> float:
        flat = returns.detach().flatten().float()
        lo, hi = float(torch.quantile(flat, 0.05)), float(torch.quantile(flat, 0.95))
        self.low = self.decay * self.low + (1 - self.decay) * lo
        self.high = self.decay * self.high + (1 - self.decay) * hi
        return self.scale

    @property
    def scale(self) -> float:
        return max(1.0, self.high - self.low)


class ActorCritic(nn.Module):
    def __init__(self, feat_dim: int, action_dim: int, continuous: bool, cfg):
        super().__init__()
        self.cfg, self.action_dim, self.continuous = cfg, action_dim, continuous
        out = 2 * action_dim if continuous else action_dim
        self.actor = mlp(feat_dim, cfg.ac_hidden, out, cfg.ac_layers)
        self.critic = mlp(feat_dim, cfg.ac_hidden, cfg.reward_bins, cfg.ac_layers)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(cfg.reward_bins)
        self.norm = ReturnNorm(cfg.ret_norm_decay)
        self.opt = torch.optim.Adam(list(self.actor.parameters()) + list(self.critic.parameters()),
                                    lr=cfg.ac_lr, eps=1e-5)

    def dist(self, feat: torch.Tensor):
        out = self.actor(feat)
        if self.continuous:
            mean, std = out.chunk(2, -1)
            std = 2 * torch.sigmoid(std / 2) + MIN_STD  # the authors' trunc_normal parameterisation
            return torch.distributions.Independent(torch.distributions.Normal(torch.tanh(mean), std), 1)
        return torch.distributions.Categorical(logits=out)

    @torch.no_grad()
    def act(self, feat: torch.Tensor, generator: torch.Generator | None = None, greedy: bool = False):
        """feat (B, F) -> actions (B,) long or (B, A) float."""
        d = self.dist(feat)
        if self.continuous:
            a = d.base_dist.loc if greedy else d.base_dist.loc + d.base_dist.scale * torch.randn(
                d.base_dist.loc.shape, generator=generator)
            return a.clamp(-1 + CLIP_EPS, 1 - CLIP_EPS)
        if greedy:
            return d.probs.argmax(-1)
        return torch.multinomial(d.probs, 1, generator=generator).squeeze(-1)

    def update(self, feat: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
               continues: torch.Tensor) -> dict:
        """feat (B, H+1, F), actions (B, H[, A]), rewards and continues (B, H) from imagination."""
        cfg = self.cfg
        feat = feat.detach()
        d = self.dist(feat[:, :-1])
        logp = d.log_prob(actions)  # (B, H)
        entropy = d.entropy()  # (B, H)
        critic_logits = self.critic(feat)  # (B, H+1, bins)
        with torch.no_grad():
            values = self.twohot.decode(critic_logits)  # (B, H+1)
            slow_values = self.twohot.decode(self.slow_critic(feat))
            returns = lambda_returns(rewards, values, continues, cfg.gamma, cfg.lam, cfg.lambda_bootstrap)  # (B, H)
            slow_returns = lambda_returns(rewards, slow_values, continues, cfg.gamma, cfg.lam, cfg.lambda_bootstrap)
            scale = self.norm.update(returns)
            adv = (returns - values[:, :-1]) / scale
        actor_loss = -(logp * adv).mean() - cfg.entropy_coef * entropy.mean()
        value_loss = self.twohot.loss(critic_logits[:, :-1], returns)
        slow_reg = self.twohot.loss(critic_logits[:, :-1], slow_returns)  # STORM: slow lambda-returns
        loss = actor_loss + value_loss + slow_reg
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(list(self.actor.parameters()) + list(self.critic.parameters()), 100.0)
        self.opt.step()
        with torch.no_grad():
            for p, q in zip(self.slow_critic.parameters(), self.critic.parameters()):
                p.mul_(cfg.slow_critic_decay).add_((1 - cfg.slow_critic_decay) * q)
        return {"actor_loss": actor_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.mean().item(),
                "imagined_return": float(returns[:, 0].mean()), "imagined_reward": float(rewards.mean()),
                "return_scale": float(scale)}
