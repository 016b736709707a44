"""Building blocks of the STORM world model: symlog two-hot, the CNN encoder/decoder, the categorical
latent with straight-through gradients, and a causal transformer with a KV cache.

Shapes: B batch, T time, G latent groups, K classes per group, D model width, C/H/W image.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------------
# symlog two-hot
# --------------------------------------------------------------------------------------------------
def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|).

    >>> float(symlog(torch.tensor(math.e - 1)))
    1.0
    """
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot(nn.Module):
    """Two-hot encoding of symlog(x) on ``n_bins`` equally spaced bins in [low, high] (DreamerV3/STORM).

    ``loss(logits, x)`` is the cross-entropy of the two-hot target; ``decode(logits)`` is symexp of the
    expected bin value. encode -> bin-weighted mean recovers symlog(x) exactly inside [low, high].
    """

    def __init__(self, n_bins: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        if n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.register_buffer("bins", torch.linspace(low, high, n_bins), persistent=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> two-hot weights (..., n_bins) of symlog(x), clipped to the bin range."""
        y = symlog(x).clamp(self.bins[0], self.bins[-1])
        n = self.bins.numel()
        idx = torch.bucketize(y, self.bins).clamp(1, n - 1)  # right bin index
        lo, hi = self.bins[idx - 1], self.bins[idx]
        w_hi = (y - lo) / (hi - lo)
        out = torch.zeros(*y.shape, n, dtype=y.dtype, device=y.device)
        out.scatter_(-1, (idx - 1).unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
        out.scatter_add_(-1, idx.unsqueeze(-1), w_hi.unsqueeze(-1))
        return out

    def loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy between logits (..., n_bins) and the two-hot target of x (...)."""
        target = self.encode(x)
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (..., n_bins) -> symexp(E[bin]) (...)."""
        return symexp((F.softmax(logits, dim=-1) * self.bins).sum(-1))


# --------------------------------------------------------------------------------------------------
# image encoder / decoder
# --------------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """(N, C, H, W) in [0, 1] -> features (N, F). One 4x4 stride-2 conv + BatchNorm + ReLU per entry
    of ``channels`` (STORM: 32-64-128-256 from 64x64 to 4x4)."""

    def __init__(self, in_channels: int, image_size: int, channels: tuple):
        super().__init__()
        if image_size % (2 ** len(channels)):
            raise ValueError(f"image side {image_size} must be divisible by 2**{len(channels)}")
        layers, c = [], in_channels
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c = c_out
        self.net = nn.Sequential(*layers)
        self.final_side = image_size // 2 ** len(channels)
        self.out_dim = c * self.final_side ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class Decoder(nn.Module):
    """Flat latent (N, G*K) -> image (N, C, H, W), the mirror of :class:`Encoder` (STORM decodes from z
    alone). Stem as STORM's: Linear -> reshape to (C, S, S) -> BatchNorm2d -> ReLU."""

    def __init__(self, latent_dim: int, out_channels: int, final_side: int, channels: tuple):
        super().__init__()
        chans = list(channels)[::-1]
        self.shape = (chans[0], final_side, final_side)
        # STORM's stem: linear, reshape to (C, S, S), then BatchNorm2d over the channels (statistics pooled
        # over the spatial positions) and ReLU
        self.fc = nn.Linear(latent_dim, chans[0] * final_side ** 2, bias=False)
        layers = [nn.BatchNorm2d(chans[0]), nn.ReLU()]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], out_channels, 4, 2, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, *self.shape))  # (N, C, S, S) -> BatchNorm2d stem -> convs


# --------------------------------------------------------------------------------------------------
# categorical latent
# --------------------------------------------------------------------------------------------------
def unimix_logits(logits: torch.Tensor, mix: float) -> torch.Tensor:
    """log((1 - mix) * softmax(logits) + mix / K) over the last axis (K classes)."""
    if mix <= 0:
        return F.log_softmax(logits, -1)
    probs = (1 - mix) * F.softmax(logits, -1) + mix / logits.shape[-1]
    return torch.log(probs)


def sample_onehot(logits: torch.Tensor, generator: torch.Generator | None = None,
                  straight_through: bool = True) -> torch.Tensor:
    """One-hot sample of Categorical(logits) over the last axis; straight-through gradients:
    sample + probs - stop_grad(probs)."""
    probs = F.softmax(logits, -1)
    flat = probs.reshape(-1, probs.shape[-1])
    idx = torch.multinomial(flat.detach(), 1, generator=generator).view(probs.shape[:-1])
    onehot = F.one_hot(idx, probs.shape[-1]).to(probs.dtype)
    return onehot + probs - probs.detach() if straight_through else onehot


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per group over the last axis, from log-probabilities or logits: (..., K) -> (...)."""
    lp, lq = F.log_softmax(p_logits, -1), F.log_softmax(q_logits, -1)
    return (lp.exp() * (lp - lq)).sum(-1)


# --------------------------------------------------------------------------------------------------
# transformer
# --------------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    """Multi-head self-attention; softmax over the key axis (inside ``scaled_dot_product_attention``).

    ``past`` is an optional (k, v) cache of shape (B, heads, T_past, D/heads); the returned cache holds
    the past plus the new keys and values.
    """

    def __init__(self, d: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if d % heads:
            raise ValueError(f"width {d} is not divisible by {heads} heads")
        self.h, self.dh = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.dropout = dropout

    def forward(self, x, causal: bool, past=None):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)  # (B, h, T, dh) each
        if past is not None:
            k = torch.cat([past[0], k], 2)
            v = torch.cat([past[1], v], 2)
        Tk = k.shape[2]
        mask = None
        if causal:
            # query i (absolute position Tk - T + i) sees keys 0 .. Tk - T + i
            mask = torch.ones(T, Tk, dtype=torch.bool, device=x.device).tril(Tk - T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, D)
        return self.proj(y), (k, v)


class Block(nn.Module):
    """Transformer layer with both residual connections: x + Attn(.) then x + FFN(.).

    ``norm_first=False`` is the post-norm layout of STORM's sequence model (LN(x + sublayer(x)));
    ``norm_first=True`` is the pre-norm layout (x + sublayer(LN(x))) used for the MaskGIT prior. The
    public GIT-STORM MaskGIT layer returns the feed-forward output without adding its input (the second
    residual is missing); here it is present. ``activation`` of the feed-forward block: ``relu`` (STORM's
    sequence model) or ``gelu`` (the GIT-STORM MaskGIT transformer).
    """

    def __init__(self, d: int, heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False,
                 activation: str = "relu"):
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"unknown feed-forward activation {activation!r}; use 'relu' or 'gelu'")
        self.attn = SelfAttention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, d_ff), acts[activation](), nn.Linear(d_ff, d))
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x, causal: bool, past=None):
        if self.norm_first:
            a, cache = self.attn(self.ln1(x), causal, past)
            x = x + self.drop(a)
            return x + self.drop(self.ff(self.ln2(x))), cache
        a, cache = self.attn(x, causal, past)
        x = self.ln1(x + self.drop(a))
        return self.ln2(x + self.drop(self.ff(x))), cache


class CausalTransformer(nn.Module):
    """STORM's sequence model: tokens (B, T, D) + learned positions -> hidden states (B, T, D).

    ``forward(x, past, start)`` runs the causal stack on new tokens whose first absolute position is
    ``start``; with ``past`` (a list of per-layer (k, v) caches) it attends to the cached prefix and
    returns the extended caches: feeding a sequence one token at a time with the cache gives the same
    hidden states as one full causal pass. Feed-forward blocks ``ff_mult * d`` wide with ``activation``
    (STORM: 2d, ReLU).
    """

    def __init__(self, d: int, layers: int, heads: int, max_len: int, dropout: float = 0.0,
                 ff_mult: int = 2, activation: str = "relu"):
        super().__init__()
        if ff_mult < 1:
            raise ValueError(f"ff_mult must be >= 1, got {ff_mult}")
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList([Block(d, heads, ff_mult * d, dropout, norm_first=False, activation=activation)
                                     for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.max_len = max_len

    def forward(self, x: torch.Tensor, past: list | None = None, start: int = 0):
        T = x.shape[1]
        if start + T > self.max_len:
            raise ValueError(f"sequence reaches position {start + T} > max_len {self.max_len}")
        x = self.ln(x + self.pos(torch.arange(start, start + T, device=x.device)))
        caches = []
        for i, blk in enumerate(self.blocks):
            x, c = blk(x, causal=True, past=None if past is None else past[i])
            caches.append(c)
        return x, caches


def mlp(d_in: int, d_hidden: int, d_out: int, layers: int = 2) -> nn.Sequential:
    """Linear-LayerNorm-ReLU stack with ``layers`` hidden layers and a linear output."""
    mods, d = [], d_in
    for _ in range(layers):
        mods += [nn.Linear(d, d_hidden, bias=False), nn.LayerNorm(d_hidden), nn.ReLU()]
        d = d_hidden
    mods.append(nn.Linear(d, d_out))
    return nn.Sequential(*mods)
