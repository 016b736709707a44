"""Batching, losses, trainer with checkpoints, greedy generation, evaluation, FLOPs and throughput.

Loss (LISA/PRIMA recipe): answer-token cross-entropy + ``bce_weight`` * per-pixel BCE +
``dice_weight`` * DICE on the mask each [SEG] decodes over the whole image set.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from workbench.seeding import derive_seed, make_rng

from .config import Config
from .data import SEG, M4SegItem, Vocab, seg_phrases
from .metrics import evaluate_predictions
from .model import PrimaModel

IMG_MEAN, IMG_STD = 127.5, 64.0


class Batch:
    """Tensors for a list of items. Shapes: images (B, N, 3, H, W); question (B, L); q_pad (B, L);
    inp/tgt (B, T) with inp = [BOS] question [SEP] answer and tgt its shift; loss_mask (B, T) marks
    answer targets; masks: list of (n_obj, N, H, W) bool tensors."""

    def __init__(self, items: list[M4SegItem], vocab: Vocab):
        if not items:
            raise ValueError("empty batch")
        n_img = {it.n_images for it in items}
        if len(n_img) != 1:
            raise ValueError(f"items in one batch must have the same number of images, got {sorted(n_img)}")
        self.items = items
        ims = np.stack([np.stack(it.images) for it in items])  # (B, N, H, W, 3) uint8
        self.images = (torch.from_numpy(ims).float().permute(0, 1, 4, 2, 3) - IMG_MEAN) / IMG_STD
        qs = [vocab.encode(it.question) for it in items]
        seqs, starts = [], []
        for q, it in zip(qs, items):
            a = vocab.encode(it.answer)
            seqs.append([vocab.bos] + q + [vocab.sep] + a + [vocab.eos])
            starts.append(len(q) + 2)  # index of the first answer token in the full sequence
        L = max(map(len, qs)); T = max(map(len, seqs)) - 1
        B = len(items)
        self.question = torch.full((B, L), vocab.pad); self.q_pad = torch.ones(B, L, dtype=torch.bool)
        self.inp = torch.full((B, T), vocab.pad); self.tgt = torch.full((B, T), vocab.pad)
        self.pad = torch.ones(B, T, dtype=torch.bool); self.loss_mask = torch.zeros(B, T, dtype=torch.bool)
        for b, (q, s, st) in enumerate(zip(qs, seqs, starts)):
            self.question[b, : len(q)] = torch.tensor(q); self.q_pad[b, : len(q)] = False
            n = len(s) - 1
            self.inp[b, :n] = torch.tensor(s[:-1]); self.tgt[b, :n] = torch.tensor(s[1:])
            self.pad[b, :n] = False
            self.loss_mask[b, st - 1: n] = True  # predict answer tokens and [EOS]
        self.masks = [torch.from_numpy(it.set_masks()) for it in items]
        self.seg_id = vocab.seg


def seg_positions(tokens: torch.Tensor, seg_id: int):
    """(B, T) ids -> (batch index (S,), position (S,)) of every [SEG], row-major (matches object order)."""
    return (tokens == seg_id).nonzero(as_tuple=True)


def dice_loss(logits, target, eps=1.0):
    """Mean over masks of 1 - (2|p*t| + eps) / (|p| + |t| + eps); logits/target (S, ...)."""
    p = logits.sigmoid().flatten(1); t = target.float().flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def compute_loss(model: PrimaModel, batch: Batch, cfg: Config) -> dict:
    logits, hid, dense = model(batch.images, batch.question, batch.q_pad, batch.inp, batch.pad)
    ce = F.cross_entropy(logits[batch.loss_mask], batch.tgt[batch.loss_mask])
    bi, pos = seg_positions(batch.inp, batch.seg_id)
    target = torch.cat(batch.masks)  # (S, N, H, W)
    if len(bi) != len(target):
        raise RuntimeError(f"{len(bi)} [SEG] tokens but {len(target)} target masks")
    if len(bi):
        mlog = model.masks_from_hidden(hid[bi, pos], dense, bi)
        bce = F.binary_cross_entropy_with_logits(mlog, target.float())
        dice = dice_loss(mlog, target)
    else:
        bce = dice = torch.zeros(())
    total = cfg.text_weight * ce + cfg.bce_weight * bce + cfg.dice_weight * dice
    return {"loss": total, "ce": ce.detach(), "bce": bce.detach(), "dice": dice.detach()}


def build_model(cfg: Config, vocab: Vocab, variant: str, seed: int) -> PrimaModel:
    """Initialise with a private generator state (the global torch RNG is restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PrimaModel(cfg, len(vocab), variant)


def save_checkpoint(path, model: PrimaModel, vocab: Vocab, step: int, optimizer=None, history=None) -> Path:
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    state = {"state_dict": model.state_dict(), "cfg": model.cfg_dict, "variant": model.variant,
             "vocab": list(vocab.itos), "step": int(step), "history": history or {}}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    tmp = path.with_suffix(".tmp"); torch.save(state, tmp); tmp.replace(path)
    return path


def load_checkpoint(path):
    """-> (model, vocab, state) with the model in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = Config(**state["cfg"])
    vocab = Vocab(state["vocab"])
    if vocab.itos != state["vocab"]:
        raise ValueError("checkpoint vocabulary is not in canonical order")
    model = PrimaModel(cfg, len(vocab), state["variant"])
    model.load_state_dict(state["state_dict"])
    return model.eval(), vocab, state


def train(model: PrimaModel, items: list[M4SegItem], vocab: Vocab, cfg: Config, *, seed: int,
          out_dir: str | None = None, progress: bool = True, desc: str = "train",
          curve_items: list[M4SegItem] | None = None) -> dict:
    """AdamW with warm-up and cosine decay; returns the loss history (per step).

    The minibatch order depends on ``seed`` only, not on the variant, so variants trained with the
    same seed see the same batches in the same order. With ``curve_items`` the history also holds a
    learning curve: :func:`teacher_forced_scores` on them every ``cfg.eval_every`` steps and at the end
    (``hist["curve"]``: lists ``step``, ``tf_giou``, ``answer_acc``, ``token_acc``).
    """
    if len(items) < 1:
        raise ValueError("no training items")
    rng = make_rng(seed, "prima-train")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    warm = min(20, cfg.steps)

    def lr_at(s):
        if s < warm:
            return (s + 1) / warm
        frac = (s - warm) / max(1, cfg.steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    hist = {"step": [], "loss": [], "ce": [], "bce": [], "dice": []}
    curve = {"step": [], "tf_giou": [], "answer_acc": [], "token_acc": []}
    curve_batches = ([Batch(curve_items[s: s + 64], vocab) for s in range(0, len(curve_items), 64)]
                     if curve_items else None)

    def add_curve_point(n_done):
        sc = teacher_forced_scores(model, curve_batches, cfg)
        curve["step"].append(n_done)
        for k in ("tf_giou", "answer_acc", "token_acc"):
            curve[k].append(sc[k])
        model.train()

    if curve_batches:
        add_curve_point(0)
    model.train()
    bar = tqdm(range(cfg.steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        idx = rng.choice(len(items), size=min(cfg.batch_size, len(items)), replace=False)
        batch = Batch([items[i] for i in idx], vocab)
        out = compute_loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step()
        hist["step"].append(step)
        for k in ("loss", "ce", "bce", "dice"):
            hist[k].append(float(out[k].detach()))
        if progress and step % 10 == 0:
            bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}")
        if out_dir and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0:
            save_checkpoint(Path(out_dir) / f"{model.variant}_step{step + 1}.pt", model, vocab, step + 1, opt, hist)
        if curve_batches and cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            add_curve_point(step + 1)
    if curve_batches:
        hist["curve"] = curve
    if out_dir:
        save_checkpoint(Path(out_dir) / f"{model.variant}_final.pt", model, vocab, cfg.steps, opt, hist)
    model.eval()
    return hist


@torch.inference_mode()
def generate(model: PrimaModel, items: list[M4SegItem], vocab: Vocab, max_len: int = 40,
             mask_threshold: float = 0.0) -> list[dict]:
    """Greedy answers and [SEG] masks. Items are grouped by question length (no prompt padding).

    Returns per item: ``answer`` (text), ``pred_masks`` (n_seg, N, H, W) bool, ``mask_probs`` (same,
    float16 probabilities) and ``pred_phrases``.
    """
    model.eval()
    out: list[dict | None] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(len(vocab.encode(it.question)), []).append(i)
    for _, idxs in sorted(groups.items()):
        sub = [items[i] for i in idxs]
        b = Batch(sub, vocab)
        img_tok, dense = model.encode_images(b.images)
        prefix = model.visual_prefix(img_tok, b.question, b.q_pad)
        B = len(sub)
        seq = torch.cat([torch.full((B, 1), vocab.bos), b.question, torch.full((B, 1), vocab.sep)], 1)
        pad = torch.zeros_like(seq, dtype=torch.bool)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_len):
            hid = model.lm_forward(prefix, seq, pad)
            nxt = model.head(hid[:, -1]).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, vocab.pad), nxt)
            seq = torch.cat([seq, nxt[:, None]], 1)
            pad = torch.cat([pad, done[:, None]], 1)
            done = done | (nxt == vocab.eos)
            if done.all():
                break
        hid = model.lm_forward(prefix, seq, pad)
        start = b.question.shape[1] + 2
        ans_ids = seq[:, start:]
        bi, pos = seg_positions(torch.where(pad, torch.full_like(seq, vocab.pad), seq), vocab.seg)
        keep = pos >= start
        bi, pos = bi[keep], pos[keep]
        probs = model.masks_from_hidden(hid[bi, pos], dense, bi).sigmoid() if len(bi) else None
        H = W = model.image_size
        for j, i in enumerate(idxs):
            ids = [int(t) for t in ans_ids[j] if int(t) not in (vocab.pad,)]
            if vocab.eos in ids:
                ids = ids[: ids.index(vocab.eos)]
            text = vocab.decode(ids)
            sel = (bi == j).nonzero(as_tuple=True)[0]
            n_img = items[i].n_images
            if probs is not None and len(sel):
                p = probs[sel]
            else:
                p = torch.zeros(0, n_img, H, W)
            thr = 1 / (1 + math.exp(-mask_threshold))
            out[i] = {"answer": text, "pred_masks": (p > thr).numpy(), "mask_probs": p.half().numpy(),
                      "pred_phrases": seg_phrases(text)}
    return out


def evaluate(model, items, vocab, cfg: Config) -> dict:
    """Generate and score; returns the metrics dict plus the per-item predictions."""
    preds = generate(model, items, vocab, cfg.max_answer_len, cfg.mask_threshold)
    records = []
    for it, p in zip(items, preds):
        true_text = vocab.decode(vocab.encode(it.answer))
        records.append({"category": it.category, "pred_masks": list(p["pred_masks"]),
                        "pred_phrases": p["pred_phrases"], "true_masks": list(it.set_masks()),
                        "true_phrases": seg_phrases(it.answer), "answer_correct": p["answer"] == true_text})
    metrics = evaluate_predictions(records, cfg.iou_threshold, cfg.text_threshold, cfg.text_similarity)
    metrics["overall"]["teacher_forced_giou"] = teacher_forced_giou(model, items, vocab, cfg)
    return {"metrics": metrics, "predictions": preds}


@torch.inference_mode()
def teacher_forced_scores(model, batches: list[Batch], cfg: Config) -> dict:
    """One teacher-forced pass over ``batches``: ``tf_giou`` (gIoU of the masks decoded from the
    [SEG] states of the *true* answer: the mask path apart from answer generation), ``token_acc``
    (answer tokens whose argmax is right) and ``answer_acc`` (items whose every answer token and
    [EOS] is the argmax; exactly the items greedy decoding answers right, word for word)."""
    from .metrics import giou_ciou

    was_training = model.training
    model.eval()
    pairs, tok_ok, tok_n, ans_ok, n_items = [], 0, 0, 0, 0
    thr = 1 / (1 + math.exp(-cfg.mask_threshold))
    for b in batches:
        logits, hid, dense = model(b.images, b.question, b.q_pad, b.inp, b.pad)
        ok = (logits.argmax(-1) == b.tgt) | ~b.loss_mask  # (B, T)
        tok_ok += int(((logits.argmax(-1) == b.tgt) & b.loss_mask).sum()); tok_n += int(b.loss_mask.sum())
        ans_ok += int(ok.all(1).sum()); n_items += len(b.items)
        bi, pos = seg_positions(b.inp, b.seg_id)
        if len(bi):
            pm = (model.masks_from_hidden(hid[bi, pos], dense, bi).sigmoid() > thr).numpy()
            pairs += list(zip(pm, torch.cat(b.masks).numpy()))
    model.train(was_training)
    return {"tf_giou": giou_ciou(pairs)["giou"] if pairs else float("nan"),
            "token_acc": tok_ok / max(1, tok_n), "answer_acc": ans_ok / max(1, n_items)}


def teacher_forced_giou(model, items, vocab, cfg: Config, batch_size: int = 64) -> float:
    """gIoU of the masks decoded from the [SEG] states of the *true* answer (see :func:`teacher_forced_scores`)."""
    batches = [Batch(items[s: s + batch_size], vocab) for s in range(0, len(items), batch_size)]
    return teacher_forced_scores(model, batches, cfg)["tf_giou"]


# ---------------------------------------------------------------------------------------------
def _component(name: str) -> str:
    parts = name.split(".")
    top = parts[1] if len(parts) > 1 else "other"
    return {"encoder": "vision_encoders", "grounding": "vision_encoders", "img_index": "vision_encoders",
            "query": "connector", "proj": "connector", "lm": "language_decoder", "ln_f": "language_decoder",
            "head": "language_decoder", "tok_emb": "language_decoder", "pos": "language_decoder",
            "seg_proj": "mask_decoder", "mask_decoder": "mask_decoder", "mask_upscale": "mask_decoder"}.get(top, "other")


def count_flops(model: PrimaModel, batch: Batch) -> dict:
    """FLOPs of one teacher-forced forward (encoders, connector, LM, mask decoding) via torch's counter.

    Returns ``{"total": int, "per_sample": float, "components": {name: int}, "modules": {fqn: int}}``.
    Components are the top-level children; sub-module counts are nested within their parents.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        logits, hid, dense = model(batch.images, batch.question, batch.q_pad, batch.inp, batch.pad)
        bi, pos = seg_positions(batch.inp, batch.seg_id)
        if len(bi):
            model.masks_from_hidden(hid[bi, pos], dense, bi)
    model.train(was_training)
    counts = {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    total = counts.get("Global", counter.get_total_flops())
    root = type(model).__name__
    # attribute each op once: keep the outermost recorded modules below the root (a ModuleList
    # such as ``lm`` is never called itself, so its blocks ``lm.0``, ``lm.1`` are the outermost)
    names = [k for k in counts if k.startswith(root + ".")]
    outer = [k for k in names if not any(k != o and k.startswith(o + ".") for o in names)]
    comp: dict[str, int] = {}
    for k in outer:
        c = _component(k)
        comp[c] = comp.get(c, 0) + counts[k]
    # ops run directly in the model's own forward (embedding sums, [SEG] gathers) are the remainder
    comp["other"] = total - sum(comp.values())
    return {"total": int(total), "per_sample": total / len(batch.items), "components": comp, "modules": counts}


@torch.inference_mode()
def throughput(model: PrimaModel, batch: Batch, repeats: int = 3) -> float:
    """Samples/s of the teacher-forced forward + mask decoding (best of ``repeats``, after one warm-up)."""
    model.eval()

    def once():
        logits, hid, dense = model(batch.images, batch.question, batch.q_pad, batch.inp, batch.pad)
        bi, pos = seg_positions(batch.inp, batch.seg_id)
        if len(bi):
            model.masks_from_hidden(hid[bi, pos], dense, bi)

    once()
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter(); once(); best = min(best, time.perf_counter() - t0)
    return len(batch.items) / best
