"""PRIMA-shaped model at CPU scale, and the GLaMM-like baseline that feeds every image token to the LM.

Paper (Wahed et al., arXiv 2412.15209): per-image frozen encoders (EVA-CLIP, DINOv2) fused by
cross-attention; an instruction-aware, Q-Former-style module of learnable queries that attend across
all images' features (the efficient module, later renamed SQuARE); a LoRA-tuned LLM that emits one
[SEG] token per referred object; each [SEG] hidden state is projected to prompt a SAM mask decoder
that reads SAM's own image embedding.

Here every block keeps its role and interface but is small and trained from scratch:

- ``SemanticEncoder`` (CLIP/DINOv2 stand-in): patchify conv -> (B*N, P, D) tokens; two of them with
  different receptive fields are fused by cross-attention (``FusedImageEncoder``).
- ``GroundingEncoder`` (SAM image-encoder stand-in): conv stack -> dense (B*N, D, h, w) features.
- ``QueryModule``: Q learnable queries; each layer does self-attention over [queries; instruction
  tokens] (InstructBLIP-style instruction awareness), then cross-attention from the queries to the
  concatenated tokens of all N images, then an MLP; outputs (B, Q, D) visual tokens for the LM.
- language decoder (``lm`` blocks + ``head``): causal pre-LN transformer over [visual prefix; [BOS] question [SEP]; answer].
- ``MaskDecoder`` (SAM decoder stand-in): the projected [SEG] state is a prompt token that attends to
  each image's dense features, then a dot product with the upsampled features gives per-image mask
  logits, so one [SEG] yields a mask over the whole image set (empty in images without the object).
- variant ``"glamm"`` replaces the query module by a linear projection of all N*P fused image
  tokens (the LLaVA/GLaMM path); everything else is shared, so FLOPs differ only by that choice.

Reconstructions (the paper gives no sizes for these parts at our scale): widths, depths, the toy conv
encoders, the single-token two-way step of the mask decoder and the causal mask over the visual
prefix. Attention is written with explicit matmuls (not ``scaled_dot_product_attention``) so that
torch's FLOP counter sees every multiply on every backend.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head attention with explicit matmuls. x: (B, T, D), ctx: (B, S, D) -> (B, T, D)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.q = nn.Linear(d, d); self.k = nn.Linear(d, d); self.v = nn.Linear(d, d); self.o = nn.Linear(d, d)

    def forward(self, x, ctx=None, mask=None):
        ctx = x if ctx is None else ctx
        B, T, D = x.shape; S = ctx.shape[1]; hd = D // self.h
        q = self.q(x).view(B, T, self.h, hd).transpose(1, 2)  # (B, h, T, hd)
        k = self.k(ctx).view(B, S, self.h, hd).transpose(1, 2)  # (B, h, S, hd)
        v = self.v(ctx).view(B, S, self.h, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)  # (B, h, T, S)
        if mask is not None:  # mask: (T, S) or (B, 1, T, S) bool, True = may attend
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(-1) @ v  # (B, h, T, hd)
        return self.o(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, d: int, mult: int = 4):
        super().__init__()
        self.fc = nn.Linear(d, mult * d); self.proj = nn.Linear(mult * d, d)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-LN transformer block with optional cross-attention."""

    def __init__(self, d: int, heads: int, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d); self.attn = Attention(d, heads)
        self.cross = cross
        if cross:
            self.ln_c = nn.LayerNorm(d); self.ln_ctx = nn.LayerNorm(d); self.xattn = Attention(d, heads)
        self.ln2 = nn.LayerNorm(d); self.mlp = MLP(d)

    def forward(self, x, ctx=None, mask=None):
        x = x + self.attn(self.ln1(x), mask=mask)
        if self.cross:
            x = x + self.xattn(self.ln_c(x), self.ln_ctx(ctx))
        return x + self.mlp(self.ln2(x))


class SemanticEncoder(nn.Module):
    """Patch encoder: (B*N, 3, H, W) -> (B*N, P, D), P = (H/patch)^2 (ViT-style patchify + MLP)."""

    def __init__(self, d: int, patch: int, image_size: int, overlap: int = 0):
        super().__init__()
        # overlap > 0 widens the receptive field beyond the patch, so two encoders see differently
        self.patch = nn.Conv2d(3, d, patch + 2 * overlap, stride=patch, padding=overlap)
        self.mlp = MLP(d, 2); self.ln = nn.LayerNorm(d)
        self.pos = nn.Parameter(torch.zeros(1, (image_size // patch) ** 2, d))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2) + self.pos  # (BN, P, D)
        return t + self.mlp(self.ln(t))


class FusedImageEncoder(nn.Module):
    """Several semantic encoders per image fused by cross-attention (PRIMA: EVA-CLIP + DINOv2)."""

    def __init__(self, d, heads, patch, image_size, n_encoders):
        super().__init__()
        self.encoders = nn.ModuleList(SemanticEncoder(d, patch, image_size, overlap=k)
                                      for k in (0, patch // 2, patch, 1)[:n_encoders])
        self.fuse = nn.ModuleList(Block(d, heads, cross=True) for _ in range(n_encoders - 1))

    def forward(self, x):  # (BN, 3, H, W) -> (BN, P, D)
        toks = [e(x) for e in self.encoders]
        out = toks[0]
        for blk, other in zip(self.fuse, toks[1:]):
            out = blk(out, other)
        return out


class GroundingEncoder(nn.Module):
    """Dense features for the mask decoder (SAM image-encoder stand-in).

    (BN, 3, H, W) -> coarse (BN, D, H/s, W/s) and a cheap full-resolution map (BN, D/4, H, W)
    (a 1x1 colour embedding; reconstruction: it lets the tiny decoder draw exact boundaries, as the
    high-resolution skip features of HQ-SAM do for SAM).
    """

    def __init__(self, d, stride):
        super().__init__()
        layers, c = [], 3
        for i in range(int(math.log2(stride))):
            layers += [nn.Conv2d(c, d, 3, stride=2, padding=1), nn.GELU()]; c = d
        layers += [nn.Conv2d(c, d, 1)]
        self.net = nn.Sequential(*layers)
        self.fine = nn.Sequential(nn.Conv2d(3, d // 4, 1), nn.GELU(), nn.Conv2d(d // 4, d // 4, 1))

    def forward(self, x):
        return self.net(x), self.fine(x)


class QueryModule(nn.Module):
    """Instruction-aware cross-image queries.

    queries (Q, D) learned; instr: (B, L, D) instruction token embeddings; img: (B, N*P, D) tokens of
    all images -> (B, Q, D). Cost: self-attention over Q+L tokens, cross-attention Q x (N*P), and K/V
    projections of the N*P image tokens; the LM then sees Q tokens whatever N*P is.
    """

    def __init__(self, d, heads, n_queries, layers):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, n_queries, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, cross=True) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, instr, img, instr_pad=None):
        B = img.shape[0]; Q = self.queries.shape[1]
        x = torch.cat([self.queries.expand(B, -1, -1), instr], 1)  # (B, Q+L, D)
        mask = None
        if instr_pad is not None:  # keys that are padding are hidden
            keep = torch.cat([torch.ones(B, Q, dtype=torch.bool, device=img.device), ~instr_pad], 1)
            mask = keep[:, None, None, :]
        for blk in self.blocks:
            x = x + blk.attn(blk.ln1(x), mask=mask)
            q = x[:, :Q]
            q = q + blk.xattn(blk.ln_c(q), blk.ln_ctx(img))  # only the queries read the images
            q = q + blk.mlp(blk.ln2(q))
            x = torch.cat([q, x[:, Q:]], 1)
        return self.ln(x[:, :Q])  # (B, Q, D)


class MaskDecoder(nn.Module):
    """SAM-like decoder. prompt (S, D); coarse (S, N, D, h, w); fine (S, N, D/4, H, W) -> logits (S, N, H, W).

    The prompt token attends to each image's coarse features (one step of SAM's two-way
    transformer, prompt side only), a hypernetwork MLP turns it into weights for a dot product with
    upscaled features (SAM: two transposed convolutions), plus the fine full-resolution map.
    The upscaled map (``MaskUpscale``) depends on the image only, so the model computes it once per
    image and indexes it per [SEG] (reconstruction: SAM upscales after its two-way update).
    """

    def __init__(self, d, heads, stride, n_images_max=16):
        super().__init__()
        self.img_emb = nn.Embedding(n_images_max, d)
        self.attn = Attention(d, heads); self.ln = nn.LayerNorm(d); self.ln_f = nn.LayerNorm(d)
        self.mlp = MLP(d, 2)
        c = d // 4
        self.hyper = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 2 * c))
    def forward(self, prompt, coarse, up, fine):
        S, N, D, h, w = coarse.shape
        f = coarse + self.img_emb.weight[:N].view(1, N, D, 1, 1)
        tok = f.flatten(3).transpose(2, 3).reshape(S * N, h * w, D)  # (SN, hw, D)
        p = prompt[:, None, :].expand(S, N, D).reshape(S * N, 1, D)  # (SN, 1, D)
        p = p + self.attn(self.ln(p), self.ln_f(tok))  # the prompt reads each image
        p = p + self.mlp(p)
        hyp = self.hyper(p[:, 0]).view(S, N, 2, -1)  # (S, N, 2, D/4)
        logits = torch.einsum("snc,snchw->snhw", hyp[:, :, 0], up) + torch.einsum("snc,snchw->snhw", hyp[:, :, 1], fine)
        return logits / math.sqrt(up.shape[2])  # (S, N, H, W)


class MaskUpscale(nn.Module):
    """SAM-style output upscaling: coarse (M, D, h, w) -> (M, D/4, h*s, w*s) by a transposed conv."""

    def __init__(self, d, stride):
        super().__init__()
        self.net = nn.Sequential(nn.ConvTranspose2d(d, d // 4, stride, stride=stride), nn.GELU())

    def forward(self, coarse):
        return self.net(coarse)


class PrimaModel(nn.Module):
    """variant 'prima' (query module) or 'glamm' (all image tokens to the LM)."""

    def __init__(self, cfg, vocab_size: int, variant: str = "prima"):
        super().__init__()
        if variant not in ("prima", "glamm"):
            raise ValueError(f"variant must be 'prima' or 'glamm', got {variant!r}")
        self.variant = variant
        self.cfg_dict = {k: v for k, v in asdict(cfg).items() if k != "extra"}
        d, h = cfg.d_model, cfg.n_heads
        self.image_size = cfg.image_size
        self.encoder = FusedImageEncoder(d, h, cfg.patch, cfg.image_size, cfg.n_semantic_encoders)
        self.grounding = GroundingEncoder(d, cfg.decoder_stride)
        self.img_index = nn.Embedding(16, d)
        self.tok_emb = nn.Embedding(vocab_size, d)
        if variant == "prima":
            self.query = QueryModule(d, h, cfg.n_queries, cfg.query_layers)
        self.proj = nn.Linear(d, d)  # vision -> LM projection (an MLP/linear in LLaVA-style models)
        self.max_len = 512 + cfg.n_images * (cfg.image_size // cfg.patch) ** 2
        self.pos = nn.Embedding(self.max_len, d)
        self.lm = nn.ModuleList(Block(d, h) for _ in range(cfg.lm_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab_size, bias=False)
        self.seg_proj = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))  # [SEG] -> prompt
        self.mask_upscale = MaskUpscale(d, cfg.decoder_stride)
        self.mask_decoder = MaskDecoder(d, h, cfg.decoder_stride)

    # -- pieces -----------------------------------------------------------------------------
    def encode_images(self, images):
        """images (B, N, 3, H, W) float -> tokens (B, N*P, D) and dense maps for the mask decoder
        (dict of coarse (B, N, D, h, w), up (B, N, D/4, H, W), fine (B, N, D/4, H, W))."""
        B, N = images.shape[:2]
        x = images.flatten(0, 1)
        tok = self.encoder(x)  # (BN, P, D)
        P, D = tok.shape[1:]
        tok = tok.view(B, N, P, D) + self.img_index.weight[:N].view(1, N, 1, D)
        coarse, fine = self.grounding(x)
        up = self.mask_upscale(coarse)
        dense = {"coarse": coarse.view(B, N, *coarse.shape[1:]), "up": up.view(B, N, *up.shape[1:]),
                 "fine": fine.view(B, N, *fine.shape[1:])}
        return tok.reshape(B, N * P, D), dense

    def visual_prefix(self, img_tokens, question, q_pad):
        """(B, N*P, D) -> (B, V, D) with V = n_queries (prima) or N*P (glamm)."""
        if self.variant == "prima":
            return self.proj(self.query(self.tok_emb(question), img_tokens, q_pad))
        return self.proj(img_tokens)

    def lm_forward(self, prefix, tokens, pad):
        """prefix (B, V, D), tokens (B, T) ids, pad (B, T) bool -> hidden (B, T, D) for the tokens."""
        B, V, D = prefix.shape; T = tokens.shape[1]
        if V + T > self.max_len:
            raise ValueError(f"sequence of {V + T} exceeds max length {self.max_len}")
        x = torch.cat([prefix, self.tok_emb(tokens)], 1)
        x = x + self.pos.weight[: V + T]
        causal = torch.ones(V + T, V + T, dtype=torch.bool, device=x.device).tril()
        keep = torch.cat([torch.ones(B, V, dtype=torch.bool, device=x.device), ~pad], 1)
        mask = causal[None, None] & keep[:, None, None, :]
        mask = mask | torch.eye(V + T, dtype=torch.bool, device=x.device)  # padded rows still see themselves
        for blk in self.lm:
            x = blk(x, mask=mask)
        return self.ln_f(x)[:, V:]

    def forward(self, images, question, q_pad, tokens, pad):
        """Teacher-forced pass. images (B, N, 3, H, W); question (B, L); tokens (B, T) = [BOS] q [SEP] answer.

        Returns logits (B, T, vocab), hidden (B, T, D), dense maps (see :meth:`encode_images`).
        """
        img_tok, dense = self.encode_images(images)
        prefix = self.visual_prefix(img_tok, question, q_pad)
        hid = self.lm_forward(prefix, tokens, pad)
        return self.head(hid), hid, dense

    def masks_from_hidden(self, seg_hidden, dense, item_index):
        """seg_hidden (S, D); dense from :meth:`encode_images`; item_index (S,) -> logits (S, N, H, W)."""
        return self.mask_decoder(self.seg_proj(seg_hidden), dense["coarse"][item_index],
                                 dense["up"][item_index], dense["fine"][item_index])


def count_parameters(model: nn.Module) -> dict:
    """Trainable parameters per top-level child and in total."""
    out = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    out["total"] = sum(p.numel() for p in model.parameters())
    return out
