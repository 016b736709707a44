"""STORM world model with a pluggable prior (MLP or MaskGIT), its loss and KV-cached imagination.

Sequence layout (STORM): token t = mixer([z_t, a_t]) -> causal transformer -> h_t; the prior predicts
z_{t+1} from h_t; the reward and termination heads read h_t and predict r_t, d_t of the transition
(o_t, a_t) -> o_{t+1}. The decoder reconstructs o_t from z_t alone.

Loss = recon (squared error summed over pixels, mean over B, T) + reward (symlog two-hot CE)
     + termination (BCE) + kl_dyn_scale * max(free_bits, KL(sg(post) || prior))
     + kl_rep_scale * max(free_bits, KL(post || sg(prior))),
where each KL is summed over the groups the prior reports (all for MLP, masked for MaskGIT) and averaged
over B, T before the free-bits clip, as in STORM's code.

State mixer (config ``state_mixer``): turns [z_t, a_t] into one token for the sequence model. The
variants are those of the GIT-STORM authors' development code (github zarifikram/gstorm and Cmeo97/STORM,
``StateMixer`` with ``MixerType`` concat / concat+attn / z+attn; the release repository Cmeo97/GIT-STORM
has only STORM's concatenation stem and no continuous-action path; the paper names "a state mixer
function" without giving its equations, so the code is the reference):

- ``concat``: stem(cat[z_t, a_t]), with stem = linear-LN-ReLU-linear-LN (STORM's stem; the authors' DMC
  configs use it).
- ``concat+attn``: x_t = cat[z_t, a_t]; stem(Attn(query = LN(a_t), keys/values = LN(x_s))). The
  attention output (projected back to the width of x) replaces x; no residual, as in the authors' code.
- ``z+attn``: the same with keys/values LN(z_s): the action enters only through the attention weights.

Attention: ``mixer_heads`` heads (authors: 2), query/key/value width ``mixer_attn_dim`` (0 = the action
size, the authors' choice; it must be divisible by the heads), softmax over keys.

Difference from the authors' code, fixed here: their attention runs over the time axis of the training
window with no mask, so token t mixes in z_{t+1..T} (the future the prior must predict leaks into h_t),
while their KV-cached imagination calls the mixer one step at a time (a single key, so the attention
weights are constant and, for ``z+attn``, the imagined action has no effect on the token). Here the
mixer's attention is causal over time (step t attends to steps <= t of the same sequence) and keeps its
own KV cache in imagination, so training, cached and uncached imagination compute the same function.
Consequences worth knowing: with ``z+attn`` the token at the first step of a sequence (one key) does not
depend on a_0 (tested); with a one-dimensional action (e.g. cartpole) the query's LayerNorm maps every
action to the same vector, so ``z+attn`` ignores the action there and ``concat+attn`` sees it only
through the keys and values.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nets import CausalTransformer, Decoder, Encoder, TwoHot, categorical_kl, mlp, sample_onehot, unimix_logits
from .priors import build_prior


MIXERS = ("concat", "concat+attn", "z+attn")


class StateMixer(nn.Module):
    """[z_t (B, T, G*K), a_t (B, T, A)] -> tokens (B, T, D); see the module docstring for the variants.

    ``forward(z, a)`` runs a whole sequence (the attention variants attend causally over its steps);
    ``forward_cached(z, a, past)`` continues a sequence from a cache (None at the start) and returns
    (tokens, cache). The cache is None for ``concat`` and (k, v) of shape (B, heads, T_past, width/heads)
    for the attention variants.
    """

    def __init__(self, latent_dim: int, action_dim: int, d: int, kind: str = "concat", heads: int = 2,
                 attn_dim: int = 0):
        super().__init__()
        if kind not in MIXERS:
            raise ValueError(f"unknown state mixer {kind!r}; choose from {MIXERS}")
        self.kind = kind
        in_dim = latent_dim + action_dim if kind in ("concat", "concat+attn") else latent_dim
        if kind != "concat":
            width = attn_dim or action_dim
            if heads < 1 or width % heads:
                raise ValueError(f"state mixer {kind!r}: attention width {width} (mixer_attn_dim, 0 = action "
                                 f"size {action_dim}) must be divisible by mixer_heads={heads}; set "
                                 "mixer_attn_dim to a multiple of the heads or use mixer_heads=1")
            self.h, self.dh = heads, width // heads
            self.q_norm, self.kv_norm = nn.LayerNorm(action_dim), nn.LayerNorm(in_dim)
            self.q = nn.Linear(action_dim, width)
            self.kv = nn.Linear(in_dim, 2 * width)
            self.out = nn.Linear(width, in_dim)
        self.net = nn.Sequential(nn.Linear(in_dim, d, bias=False), nn.LayerNorm(d), nn.ReLU(),
                                  nn.Linear(d, d, bias=False), nn.LayerNorm(d))

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.forward_cached(z, a, None)[0]

    def forward_cached(self, z: torch.Tensor, a: torch.Tensor, past=None):
        """z (B, T, G*K), a (B, T, A), past cache or None -> (tokens (B, T, D), cache)."""
        x = torch.cat([z, a], -1) if self.kind in ("concat", "concat+attn") else z  # (B, T, in_dim)
        if self.kind == "concat":
            return self.net(x), None
        B, T = x.shape[:2]
        q = self.q(self.q_norm(a)).view(B, T, self.h, self.dh).transpose(1, 2)  # (B, h, T, dh)
        k, v = self.kv(self.kv_norm(x)).view(B, T, 2, self.h, self.dh).permute(2, 0, 3, 1, 4)  # (B, h, T, dh)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        Tk = k.shape[2]
        # query i (absolute step Tk - T + i) sees steps 0 .. Tk - T + i: causal over time
        mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # softmax over keys
        y = self.out(y.transpose(1, 2).reshape(B, T, self.h * self.dh))  # (B, T, in_dim)
        return self.net(y), (k, v)


class WorldModel(nn.Module):
    """obs_shape (C, H, W) uint8 frames; ``action_dim`` = number of discrete actions or the continuous
    action size; ``prior`` in {"mlp", "maskgit"}."""

    def __init__(self, cfg, obs_shape: tuple, action_dim: int, continuous: bool = False, prior: str = "mlp"):
        super().__init__()
        self.cfg, self.obs_shape, self.action_dim, self.continuous = cfg, tuple(obs_shape), action_dim, continuous
        self.prior_kind = prior
        C, H, W = obs_shape
        if H != W:
            raise ValueError(f"square frames expected, got {obs_shape}")
        G, K, D = cfg.groups, cfg.classes, cfg.d_model
        self.G, self.K, self.D = G, K, D
        self.encoder = Encoder(C, H, tuple(cfg.enc_channels))
        self.post_head = nn.Linear(self.encoder.out_dim, G * K)
        self.decoder = Decoder(G * K, C, self.encoder.final_side, tuple(cfg.enc_channels))
        self.mixer = StateMixer(G * K, action_dim, D, cfg.state_mixer, cfg.mixer_heads, cfg.mixer_attn_dim)
        self.transformer = CausalTransformer(D, cfg.n_layers, cfg.n_heads, cfg.max_len, cfg.dropout,
                                             cfg.seq_ff_mult, cfg.seq_ff_activation)
        self.prior = build_prior(prior, cfg)
        self.reward_head = mlp(D, D, cfg.reward_bins, 2)
        self.term_head = mlp(D, D, 1, 2)
        self.twohot = TwoHot(cfg.reward_bins)

    # ---- pieces ------------------------------------------------------------------------------------
    def action_input(self, a: torch.Tensor) -> torch.Tensor:
        """Discrete ids (...) -> one-hot (..., A); continuous (..., A) unchanged (float)."""
        if self.continuous:
            return a.float()
        return F.one_hot(a.long(), self.action_dim).float()

    def posterior_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """obs uint8 (B, T, C, H, W) -> unimixed log-probs (B, T, G, K)."""
        B, T = obs.shape[:2]
        x = obs.reshape(B * T, *obs.shape[2:]).float() / 255.0
        logits = self.post_head(self.encoder(x)).view(B, T, self.G, self.K)
        return unimix_logits(logits, self.cfg.unimix)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """One-hot z (..., G, K) -> frames in [0, 1] (..., C, H, W) (not clipped)."""
        lead = z.shape[:-2]
        out = self.decoder(z.reshape(-1, self.G * self.K))
        return out.view(*lead, *out.shape[1:])

    def heads(self, h: torch.Tensor):
        """h (..., D) -> reward logits (..., bins), termination logit (...)."""
        return self.reward_head(h), self.term_head(h).squeeze(-1)

    # ---- training loss -----------------------------------------------------------------------------
    def loss(self, obs, actions, rewards, terms, generator: torch.Generator | None = None):
        """obs uint8 (B, T, C, H, W), actions (B, T[, A]), rewards (B, T), terms (B, T) -> (loss, metrics)."""
        cfg = self.cfg
        B, T = obs.shape[:2]
        post = self.posterior_logits(obs)  # (B, T, G, K)
        z = sample_onehot(post, generator)  # (B, T, G, K) straight-through
        target = obs.float() / 255.0
        recon = self.decode(z)  # (B, T, C, H, W)
        recon_loss = (recon - target).pow(2).sum((-3, -2, -1)).mean()
        tokens = self.mixer(z.flatten(-2), self.action_input(actions))  # (B, T, D)
        h, _ = self.transformer(tokens)  # (B, T, D)
        rew_logits, term_logit = self.heads(h)
        reward_loss = self.twohot.loss(rew_logits, rewards.float())
        term_loss = F.binary_cross_entropy_with_logits(term_logit, terms.float())
        prior_logits, mask = self.prior.train_logits(h[:, :-1], z[:, 1:].detach(), z[:, :-1].detach(), generator)
        m = mask.float()  # (B, T-1, G)
        kl_dyn = (categorical_kl(post[:, 1:].detach(), prior_logits) * m).sum(-1).mean()
        kl_rep = (categorical_kl(post[:, 1:], prior_logits.detach()) * m).sum(-1).mean()
        dyn_loss = torch.clamp(kl_dyn, min=cfg.free_bits)
        rep_loss = torch.clamp(kl_rep, min=cfg.free_bits)
        total = recon_loss + reward_loss + term_loss + cfg.kl_dyn_scale * dyn_loss + cfg.kl_rep_scale * rep_loss
        with torch.no_grad():
            hit = (prior_logits.argmax(-1) == post[:, 1:].argmax(-1)).float()
            acc = float((hit * m).sum() / m.sum().clamp(min=1))
        metrics = {"loss": total.item(), "recon": recon_loss.item(), "reward": reward_loss.item(),
                   "termination": term_loss.item(), "kl_dyn": kl_dyn.item(), "kl_rep": kl_rep.item(),
                   "mask_fraction": float(m.mean()), "token_acc_train": acc}
        return total, metrics

    # ---- imagination -------------------------------------------------------------------------------
    @torch.no_grad()
    def imagine(self, ctx_obs, ctx_actions, horizon: int, policy=None, actions=None,
                generator: torch.Generator | None = None, use_cache: bool = True, temperature: float = 1.0,
                decode: bool = False):
        """Roll the model forward from real context.

        ctx_obs uint8 (B, C0, C, H, W) and ctx_actions (B, C0[, A]) (the real actions taken at the context
        frames). The first imagined latent z_0 is drawn from the prior at the last context step. Then for
        k = 0..horizon-1: a_k = policy(z_k, h_{k-1}) (or ``actions[:, k]``), token (z_k, a_k) -> h_k ->
        reward r_k, termination d_k, z_{k+1} ~ prior(h_k).

        ``use_cache`` feeds one step at a time through the KV caches of the transformer and of the
        state mixer (attention variants); without it the mixer and the transformer re-run the whole
        sequence each step (same result, quadratic cost).
        Returns a dict of tensors: ``z`` (B, horizon+1, G, K), ``h`` (B, horizon+1, D) (h_{k-1}, the
        state the policy sees with z_k), ``actions``, ``reward`` (B, horizon), ``term_logit`` (B, horizon),
        and ``frames`` (B, horizon+1, C, H, W) in [0, 1] if ``decode``.
        """
        if (policy is None) == (actions is None):
            raise ValueError("pass exactly one of policy or actions")
        was_training = self.training
        self.eval()
        try:
            B, C0 = ctx_obs.shape[:2]
            if C0 + horizon > self.cfg.max_len:
                raise ValueError(f"context {C0} + horizon {horizon} exceeds max_len {self.cfg.max_len}")
            post = self.posterior_logits(ctx_obs)
            z_ctx = sample_onehot(post, generator, straight_through=False)  # (B, C0, G, K)
            z_in, a_in = z_ctx.flatten(-2), self.action_input(ctx_actions)  # (B, C0, G*K), (B, C0, A)
            tokens, mix_cache = self.mixer.forward_cached(z_in, a_in)  # (B, C0, D)
            hs, cache = self.transformer(tokens)
            h = hs[:, -1]  # (B, D)
            z = self.prior.sample(h, generator, temperature)  # (B, G, K)
            zs, hs_out, acts, rews, terms = [z], [h], [], [], []
            for k in range(horizon):
                a = policy(z.flatten(-2), h) if policy is not None else actions[:, k]
                z_k, a_k = z.flatten(-2)[:, None], self.action_input(a)[:, None]  # (B, 1, G*K), (B, 1, A)
                if use_cache:
                    tok, mix_cache = self.mixer.forward_cached(z_k, a_k, mix_cache)  # (B, 1, D)
                    out, cache = self.transformer(tok, past=cache, start=C0 + k)
                else:  # mixer and transformer re-run on the whole sequence
                    z_in, a_in = torch.cat([z_in, z_k], 1), torch.cat([a_in, a_k], 1)
                    out, _ = self.transformer(self.mixer(z_in, a_in))
                h = out[:, -1]
                rl, tl = self.heads(h)
                z = self.prior.sample(h, generator, temperature)
                acts.append(a)
                rews.append(self.twohot.decode(rl))
                terms.append(tl)
                zs.append(z)
                hs_out.append(h)
            out = {"z": torch.stack(zs, 1), "h": torch.stack(hs_out, 1), "actions": torch.stack(acts, 1),
                   "reward": torch.stack(rews, 1), "term_logit": torch.stack(terms, 1)}
            if decode:
                out["frames"] = self.decode(out["z"])
            return out
        finally:
            self.train(was_training)

    @torch.no_grad()
    def teacher_forced_states(self, obs, actions):
        """Posterior log-probs of z_{1:} (B, T-1, G, K) and the sequence model's h_{:-1} (B, T-1, D) on
        real sequences, posterior tokens taken as their argmax (the prior's conditioning at every step)."""
        was_training = self.training
        self.eval()
        try:
            post = self.posterior_logits(obs)
            z = F.one_hot(post.argmax(-1), self.K).float()
            h, _ = self.transformer(self.mixer(z.flatten(-2), self.action_input(actions)))
            return post[:, 1:], h[:, :-1]
        finally:
            self.train(was_training)

    @torch.no_grad()
    def teacher_forced_prior(self, obs, actions):
        """Posterior and one-shot prior logits on real sequences: (post (B, T-1, G, K) for z_{1:},
        prior (B, T-1, G, K) from h_{:-1}), posterior tokens taken as their argmax."""
        was_training = self.training
        self.eval()
        try:
            post = self.posterior_logits(obs)
            z = F.one_hot(post.argmax(-1), self.K).float()
            h, _ = self.transformer(self.mixer(z.flatten(-2), self.action_input(actions)))
            return post[:, 1:], self.prior.logits(h[:, :-1])
        finally:
            self.train(was_training)
