"""The two priors over the next latent z_{t+1} given the sequence model's hidden state h_t.

Both implement :class:`Prior`:

- ``logits(h)``: (..., D) -> (..., G, K) one-shot prediction with no token known (used for the token
  accuracy / perplexity metrics, identical meaning for both priors);
- ``train_logits(h, z_next, z_cur, generator, mask=None)`` -> (logits (..., G, K), mask (..., G) bool):
  the positions where the KL losses are taken (all of them for the MLP prior; the masked ones for
  MaskGIT);
- ``sample(h, generator, temperature)`` -> one-hot (..., G, K) (temperature 0: greedy);
- ``log_prob(h, idx, generator)`` -> (...): log-probability of the token ids idx (..., G) under the
  prior's sampler (exact for the MLP prior; for MaskGIT exact for the draft-only decoder with one random
  chunk order drawn from ``generator``, see :meth:`MaskGITPrior.log_prob`).

:class:`MLPPrior` is STORM's dynamics head. :class:`MaskGITPrior` is GIT-STORM's: a bidirectional
transformer over the G latent tokens, conditioned on h_t split into G chunks of D/G dims (each chunk
concatenated with its token embedding and projected, as in the public code). Training masks
``max(1, floor(gamma(u) * G))`` random tokens with u ~ U(0, 1) and gamma the cosine schedule
cos(pi/2 * u); losses count masked positions only. Sampling is draft-and-revise: the draft pass splits
the positions at random into ``draft_steps`` chunks and, chunk by chunk, masks and resamples them given
the others; each of ``revise_rounds`` revise passes does the same with ``revise_steps`` chunks. With
the public defaults (1, 1, 1) the revise pass redraws every token once more from the all-masked
prediction, so every token is drawn independently given h_t, exactly as the MLP prior's are: the prior's
point, a dependency-aware decode, needs ``draft_steps > 1`` (and ``revise_steps > 1`` if revising).

Likelihood (:meth:`MaskGITPrior.log_prob`): the draft pass with S chunks in a fixed order c_1..c_S
samples p(z) = prod_s prod_{i in c_s} p_theta(z_i | z_{c_<s}, h), a normalised distribution whose
log-probability is computed exactly by S forward passes; with S = 1 it is the factorised one-shot
prediction, with S = G an any-order autoregressive model. Averaging over random orders gives a lower
bound (Jensen) on the log-likelihood of the random-order sampler; revise passes make it intractable.

Differences from the public GIT-STORM code (Cmeo97/GIT-STORM), which this module fixes: its MaskGIT
transformer layer drops the residual connection around the feed-forward block, and its attention takes
the softmax over the query axis (``dim=1``) instead of the key axis. Here each layer is a standard
pre-norm block with both residuals (:class:`workbench.git_storm.nets.Block`) and the softmax is over
keys. Reconstruction (config ``mg_input``): the public code feeds masked tokens of z_t while the loss
and the sampler work on z_{t+1}; the default here feeds masked tokens of z_{t+1}, so training and
draft-and-revise sampling see the same kind of input; ``mg_input="current"`` restores the public choice.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .nets import Block, mlp, unimix_logits


def mask_ratio(u: torch.Tensor, schedule: str = "cosine") -> torch.Tensor:
    """Fraction of tokens to mask for u in [0, 1]: cosine cos(pi u / 2), linear 1 - u, square 1 - u^2.

    >>> [round(float(mask_ratio(torch.tensor(x))), 4) for x in (0.0, 0.5, 1.0)]
    [1.0, 0.7071, 0.0]
    """
    if schedule == "cosine":
        return torch.cos(math.pi / 2 * u)
    if schedule == "linear":
        return 1 - u
    if schedule == "square":
        return 1 - u ** 2
    raise ValueError(f"unknown mask schedule {schedule!r} (cosine, linear, square)")


def sample_train_mask(n: int, g: int, schedule: str, generator: torch.Generator | None = None,
                      device=None) -> torch.Tensor:
    """(n, g) bool training masks: each row masks max(1, floor(ratio(u) * g)) random positions."""
    u = torch.rand(n, generator=generator, device=device)
    count = torch.clamp(torch.floor(mask_ratio(u, schedule) * g), min=1)  # (n,)
    rank = torch.argsort(torch.rand(n, g, generator=generator, device=device), dim=-1).argsort(-1)
    return rank < count[:, None]


def random_chunks(n: int, g: int, chunks: int, generator: torch.Generator | None = None,
                  device=None) -> torch.Tensor:
    """(n, g) chunk ids in [0, chunks): a random partition of the g positions into near-equal chunks."""
    if not 1 <= chunks <= g:
        raise ValueError(f"chunks must be in [1, {g}], got {chunks}")
    rank = torch.argsort(torch.rand(n, g, generator=generator, device=device), dim=-1).argsort(-1)
    return rank * chunks // g


class Prior(nn.Module):
    """Interface shared by the MLP and MaskGIT priors (see the module docstring)."""

    groups: int
    classes: int

    def logits(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def train_logits(self, h, z_next, z_cur, generator=None, mask=None):  # pragma: no cover
        raise NotImplementedError

    def sample(self, h, generator=None, temperature: float = 1.0):  # pragma: no cover
        raise NotImplementedError

    def log_prob(self, h, idx, generator=None):  # pragma: no cover
        raise NotImplementedError


def _sample_idx(logits: torch.Tensor, generator, temperature: float) -> torch.Tensor:
    """Categorical sample over the last axis; temperature 0 takes the argmax. (..., K) -> (...)."""
    if temperature <= 0:
        return logits.argmax(-1)
    p = F.softmax(logits / temperature, -1)
    return torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=generator).view(p.shape[:-1])


class MLPPrior(Prior):
    """STORM's dynamics head: h_t (..., D) -> logits of z_{t+1} (..., G, K), all positions in the loss."""

    def __init__(self, d_model: int, groups: int, classes: int, hidden: int, layers: int, unimix: float):
        super().__init__()
        self.groups, self.classes, self.unimix = groups, classes, unimix
        self.net = mlp(d_model, hidden, groups * classes, layers) if layers > 0 else \
            nn.Linear(d_model, groups * classes)

    def logits(self, h):
        return unimix_logits(self.net(h).unflatten(-1, (self.groups, self.classes)), self.unimix)

    def train_logits(self, h, z_next, z_cur, generator=None, mask=None):
        out = self.logits(h)
        return out, torch.ones(out.shape[:-1], dtype=torch.bool, device=out.device)

    def sample(self, h, generator=None, temperature: float = 1.0):
        idx = _sample_idx(self.logits(h), generator, temperature)
        return F.one_hot(idx, self.classes).float()

    def log_prob(self, h, idx, generator=None):
        """h (..., D), token ids (..., G) -> sum over groups of log p(idx_g | h) (...)."""
        return self.logits(h).gather(-1, idx.long()[..., None]).squeeze(-1).sum(-1)


class MaskGITPrior(Prior):
    """GIT-STORM's MaskGIT prior (see the module docstring). Token id ``classes`` is [MASK]."""

    def __init__(self, d_model: int, groups: int, classes: int, embed: int, layers: int, heads: int,
                 d_ff: int, unimix: float, schedule: str = "cosine", draft_steps: int = 1,
                 revise_steps: int = 1, revise_rounds: int = 1, input_tokens: str = "next"):
        super().__init__()
        if d_model % groups:
            raise ValueError(f"d_model {d_model} must be divisible by groups {groups} (h_t is split into "
                             "one conditioning chunk per latent token)")
        if input_tokens not in ("next", "current"):
            raise ValueError(f"mg_input must be 'next' or 'current', got {input_tokens!r}")
        mask_ratio(torch.tensor(0.5), schedule)  # validates the name
        if not (1 <= draft_steps <= groups and 1 <= revise_steps <= groups and revise_rounds >= 0):
            raise ValueError(f"draft_steps and revise_steps must be in [1, groups={groups}] and revise_rounds "
                             f">= 0, got {draft_steps}, {revise_steps}, {revise_rounds}")
        self.groups, self.classes, self.unimix = groups, classes, unimix
        self.schedule, self.input_tokens = schedule, input_tokens
        self.draft_steps, self.revise_steps, self.revise_rounds = draft_steps, revise_steps, revise_rounds
        self.mask_id = classes
        self.tok = nn.Embedding(classes + 1, embed)
        self.fc_in = nn.Linear(embed + d_model // groups, embed)
        self.pos = nn.Parameter(torch.randn(groups, embed) * 0.02)
        self.blocks = nn.ModuleList([Block(embed, heads, d_ff, 0.0, norm_first=True, activation="gelu") for _ in range(layers)])
        self.ln = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, classes)

    def step(self, idx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Token ids (N, G) (``mask_id`` = unknown) and h (N, D) -> logits (N, G, K), bidirectional."""
        cond = h.reshape(h.shape[0], self.groups, -1)  # (N, G, D/G)
        x = self.fc_in(torch.cat([self.tok(idx), cond], -1)) + self.pos  # (N, G, E)
        for blk in self.blocks:
            x, _ = blk(x, causal=False)
        return unimix_logits(self.head(self.ln(x)), self.unimix)

    def _flat(self, h):
        return h.reshape(-1, h.shape[-1]), h.shape[:-1]

    def logits(self, h):
        hf, lead = self._flat(h)
        idx = torch.full((hf.shape[0], self.groups), self.mask_id, dtype=torch.long, device=h.device)
        return self.step(idx, hf).view(*lead, self.groups, self.classes)

    def train_logits(self, h, z_next, z_cur, generator=None, mask=None):
        """h (..., D); z_next, z_cur one-hot or ids (..., G[, K]); optional mask (..., G) bool.
        Returns logits (..., G, K) for z_{t+1} and the mask used (positions where losses count)."""
        hf, lead = self._flat(h)
        src = z_next if self.input_tokens == "next" else z_cur
        if src.dim() == h.dim() + 1:  # one-hot -> ids
            src = src.argmax(-1)
        src = src.reshape(-1, self.groups).long()
        if mask is None:
            m = sample_train_mask(src.shape[0], self.groups, self.schedule, generator, h.device)
        else:
            m = mask.reshape(-1, self.groups).to(torch.bool)
        idx = torch.where(m, torch.full_like(src, self.mask_id), src)
        out = self.step(idx, hf)
        return out.view(*lead, self.groups, self.classes), m.view(*lead, self.groups)

    @torch.no_grad()
    def sample(self, h, generator=None, temperature: float = 1.0):
        """Draft-and-revise sampling: h (..., D) -> one-hot (..., G, K)."""
        hf, lead = self._flat(h)
        n = hf.shape[0]
        idx = torch.full((n, self.groups), self.mask_id, dtype=torch.long, device=h.device)
        passes = [self.draft_steps] + [self.revise_steps] * self.revise_rounds
        for chunks in passes:
            ids = random_chunks(n, self.groups, chunks, generator, h.device)
            for c in range(chunks):
                sel = ids == c
                idx = torch.where(sel, torch.full_like(idx, self.mask_id), idx)
                new = _sample_idx(self.step(idx, hf), generator, temperature)
                idx = torch.where(sel, new, idx)
        return F.one_hot(idx, self.classes).float().view(*lead, self.groups, self.classes)

    @torch.no_grad()
    def log_prob(self, h, idx, generator=None, steps: int | None = None):
        """Exact log-probability of token ids idx (..., G) under the draft pass with ``steps`` chunks
        (default ``draft_steps``) in one random order drawn from ``generator`` (see the module
        docstring): (...). Chunk s is scored given the tokens of chunks < s, the others masked."""
        steps = self.draft_steps if steps is None else steps
        hf, lead = self._flat(h)
        tgt = idx.reshape(-1, self.groups).long()
        n = hf.shape[0]
        ids = random_chunks(n, self.groups, steps, generator, h.device)
        total = torch.zeros(n, device=h.device)
        for c in range(steps):
            inp = torch.where(ids >= c, torch.full_like(tgt, self.mask_id), tgt)
            lp = self.step(inp, hf).gather(-1, tgt[..., None]).squeeze(-1)  # (n, G)
            total = total + (lp * (ids == c)).sum(-1)
        return total.view(lead)


class decoding:
    """Context manager: temporarily change a MaskGIT prior's draft/revise settings (no-op for other
    priors). ``with decoding(prior, draft_steps=4, revise_rounds=0): ...``"""

    def __init__(self, prior, **settings):
        bad = set(settings) - {"draft_steps", "revise_steps", "revise_rounds"}
        if bad:
            raise ValueError(f"unknown decoding settings {sorted(bad)}")
        self.prior, self.settings, self.saved = prior, settings, {}

    def __enter__(self):
        if isinstance(self.prior, MaskGITPrior):
            for k, v in self.settings.items():
                if k != "revise_rounds" and not 1 <= v <= self.prior.groups:
                    raise ValueError(f"{k} must be in [1, {self.prior.groups}], got {v}")
                self.saved[k] = getattr(self.prior, k)
                setattr(self.prior, k, v)
        return self.prior

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            setattr(self.prior, k, v)


def build_prior(kind: str, cfg) -> Prior:
    """``kind`` in {"mlp", "maskgit"} with the sizes from a :class:`~workbench.git_storm.config.Config`."""
    if kind == "mlp":
        return MLPPrior(cfg.d_model, cfg.groups, cfg.classes, cfg.mlp_hidden, cfg.mlp_layers, cfg.unimix)
    if kind == "maskgit":
        return MaskGITPrior(cfg.d_model, cfg.groups, cfg.classes, cfg.mg_embed, cfg.mg_layers, cfg.mg_heads,
                            cfg.mg_mlp, cfg.unimix, cfg.mg_schedule, cfg.draft_steps, cfg.revise_steps,
                            cfg.revise_rounds, cfg.mg_input)
    raise ValueError(f"unknown prior {kind!r}: use 'mlp' or 'maskgit'")
