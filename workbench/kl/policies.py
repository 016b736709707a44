"""Tiny autoregressive policies over a vocabulary of V tokens and sequences of fixed length L.

Both policies are *functional*: parameters are a list of tensors passed explicitly, so the same
code serves exact enumeration, sampling, per-sample gradients (``torch.func``) and training.

* :class:`TabularPolicy`: one free logit vector per prefix (``sum_{t<L} V^t`` rows of V logits),
  i.e. the most general autoregressive policy; parameters ``[theta_0 (1, V), theta_1 (V, V), ...,
  theta_{L-1} (V^{L-1}, V)]``.
* :class:`MLPPolicy`: a one-hidden-layer tanh network on (one-hot prefix, one-hot position,
  one-hot prompt); the prefix is masked causally, so position t sees only ``y_<t``. Parameters
  ``[W1 (D, H), b1 (H,), W2 (H, V), b2 (V,)]`` with ``D = L*V + L + n_prompts``.

``logits(params, Y, prompts)`` returns (B, L, V) next-token logits for every position of Y (B, L).
"""
from __future__ import annotations

import math

import torch

from workbench.seeding import derive_seed


def all_sequences(V: int, L: int, max_sequences: int = 20_000_000) -> torch.Tensor:
    """Every sequence of length L over V tokens, lexicographic: (V^L, L) int64.

    >>> all_sequences(2, 2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    if V < 2 or L < 1:
        raise ValueError(f"need V >= 2 and L >= 1, got V={V}, L={L}")
    N = V ** L
    if N > max_sequences:
        raise ValueError(f"V^L = {N} sequences exceeds max_sequences={max_sequences}")
    idx = torch.arange(N, dtype=torch.int64)
    powers = V ** torch.arange(L - 1, -1, -1, dtype=torch.int64)  # (L,)
    return (idx[:, None] // powers[None, :]) % V


def _onehot(Y: torch.Tensor, V: int, dtype) -> torch.Tensor:
    # comparison instead of F.one_hot: works under torch.func.vmap (no data-dependent size)
    return (Y[..., None] == torch.arange(V, device=Y.device)).to(dtype)


class TabularPolicy:
    """Free logits per prefix. ``n_params = V * (V^L - 1) / (V - 1)``."""

    def __init__(self, V: int, L: int, dtype=torch.float64):
        if V < 2 or L < 1:
            raise ValueError(f"need V >= 2 and L >= 1, got V={V}, L={L}")
        self.V, self.L, self.dtype = V, L, dtype

    @property
    def n_params(self) -> int:
        return sum(self.V ** t * self.V for t in range(self.L))

    def init_params(self, seed: int, scale: float = 1.0) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(seed, "tabular") % 2**62)
        return [scale * torch.randn(self.V ** t, self.V, generator=g, dtype=self.dtype) for t in range(self.L)]

    def prefix_index(self, Y: torch.Tensor) -> torch.Tensor:
        """(B, L) row index of prefix ``y_<t`` inside level t's table."""
        cols = [torch.zeros_like(Y[:, 0])]
        for t in range(1, self.L):  # out-of-place, so it also runs under torch.func.vmap
            cols.append(cols[-1] * self.V + Y[:, t - 1])
        return torch.stack(cols, dim=1)

    def logits(self, params, Y: torch.Tensor, prompts=None) -> torch.Tensor:
        if prompts is not None:
            raise ValueError("TabularPolicy has no prompt input; use MLPPolicy for prompted tasks")
        idx = self.prefix_index(Y)  # (B, L)
        return torch.stack([params[t][idx[:, t]] for t in range(self.L)], dim=1)  # (B, L, V)


class MLPPolicy:
    """One hidden tanh layer on the causally masked one-hot prefix, the position and the prompt."""

    def __init__(self, V: int, L: int, hidden: int = 32, n_prompts: int = 1, dtype=torch.float64):
        if V < 2 or L < 1 or hidden < 1 or n_prompts < 1:
            raise ValueError(f"bad MLPPolicy sizes V={V}, L={L}, hidden={hidden}, n_prompts={n_prompts}")
        self.V, self.L, self.H, self.P, self.dtype = V, L, hidden, n_prompts, dtype
        self.D = L * V + L + n_prompts

    @property
    def n_params(self) -> int:
        return self.D * self.H + self.H + self.H * self.V + self.V

    def init_params(self, seed: int, scale: float = 1.0) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(derive_seed(seed, "mlp") % 2**62)
        W1 = torch.randn(self.D, self.H, generator=g, dtype=self.dtype) * (2.0 / math.sqrt(self.L + 2))
        b1 = 0.1 * torch.randn(self.H, generator=g, dtype=self.dtype)
        W2 = torch.randn(self.H, self.V, generator=g, dtype=self.dtype) * (scale / math.sqrt(self.H))
        b2 = 0.1 * torch.randn(self.V, generator=g, dtype=self.dtype)
        return [W1, b1, W2, b2]

    def logits(self, params, Y: torch.Tensor, prompts=None) -> torch.Tensor:
        """(B, L, V). Equivalent to ``tanh(x W1 + b1) W2 + b2`` with x = [masked one-hot prefix, one-hot
        position, one-hot prompt]; computed as an exclusive cumulative sum of per-token rows of W1
        instead of building the (B, L, L*V) input (much cheaper, same function)."""
        W1, b1, W2, b2 = params
        B, L = Y.shape
        V, P = self.V, self.P
        W_tok = W1[: L * V].reshape(L, V, -1)  # (L, V, H): row for token v at position s
        W_pos = W1[L * V: L * V + L]  # (L, H)
        W_pr = W1[L * V + L:]  # (P, H)
        e = torch.einsum("blv,lvh->blh", _onehot(Y, V, self.dtype), W_tok)  # (B, L, H)
        prefix = e.cumsum(1) - e  # (B, L, H): sum over s < t
        if prompts is None:
            prompts = torch.zeros(B, dtype=torch.int64)
        pr = _onehot(prompts, P, self.dtype) @ W_pr  # (B, H)
        h = torch.tanh(prefix + W_pos[None] + pr[:, None, :] + b1)  # (B, L, H)
        return h @ W2 + b2  # (B, L, V)


def token_logprobs(policy, params, Y: torch.Tensor, prompts=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp_tok (B, L), logp_all (B, L, V))``: log pi(y_t|y_<t) and the full next-token log-distribution."""
    logp_all = torch.log_softmax(policy.logits(params, Y, prompts), dim=-1)  # (B, L, V)
    return logp_all.gather(-1, Y[..., None]).squeeze(-1), logp_all


@torch.no_grad()
def sample(policy, params, n: int, generator: torch.Generator, prompts: torch.Tensor | None = None) -> torch.Tensor:
    """Ancestral sampling of ``n`` sequences (n, L), token by token (independent of enumeration)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    Y = torch.zeros(n, policy.L, dtype=torch.int64)
    for t in range(policy.L):
        logits_t = policy.logits(params, Y, prompts)[:, t]  # (n, V); uses only Y[:, :t]
        Y[:, t] = torch.multinomial(torch.softmax(logits_t, -1).float(), 1, generator=generator).squeeze(-1)
    return Y


def perturb(params, delta: float, seed: int) -> list[torch.Tensor]:
    """``params + delta * N(0, 1)`` per entry (detached copies)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "perturb") % 2**62)
    return [p.detach() + delta * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


def interpolate(a, b, frac: float) -> list[torch.Tensor]:
    """``a + frac * (b - a)`` per tensor (detached)."""
    return [x.detach() + frac * (y.detach() - x.detach()) for x, y in zip(a, b)]
