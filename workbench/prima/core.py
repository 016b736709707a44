"""``run(cfg)``: generate data, train both variants on several seeds, evaluate (metrics with SE over
seeds, learning curves, FLOPs and samples/s at the default and the paper's proportions), viewer data."""
from __future__ import annotations

import base64
import io
import math
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from .config import Config
from .data import Vocab, generate_items, mask_to_rle, per_image_chance
from .metrics import text_metrics
from .model import Block, PrimaModel, QueryModule, count_parameters
from .train import Batch, build_model, count_flops, evaluate, throughput, train

PAPER = {"tflops_prima": 62.0, "tflops_glamm": 83.0, "flops_reduction_pct": 25.3,
         "samples_per_s_prima": 5.79, "samples_per_s_glamm": 3.37,
         "miou_prima_v1": 38.5, "recall_prima_v1": 25.0, "miou_glamm_v1": 36.4, "recall_glamm_v1": 22.9}
"""The paper's anchors (arXiv 2412.15209 v1; mIoU/Recall in %)."""


def flops_of(fn) -> int:
    """Total FLOPs torch's counter records while running ``fn()`` (no grad)."""
    c = FlopCounterMode(display=False)
    with torch.no_grad(), c:
        fn()
    return int(c.get_total_flops())


def connector_scaling(cfg: Config, instr_len: int = 20) -> dict:
    """FLOPs of the query module and of the LM prefix it produces, versus queries and image tokens.

    For each (n_queries, n_image_tokens) the query module is run on random inputs, and the LM cost is
    that of ``lm_layers`` blocks over the visual prefix plus ``instr_len`` text tokens: Q tokens for
    PRIMA, all image tokens for the GLaMM-like path. Meta tensors: only shapes matter, nothing runs.
    """
    d, h = cfg.d_model, cfg.n_heads
    rows = []
    with torch.device("meta"):
        lm = torch.nn.ModuleList(Block(d, h) for _ in range(cfg.lm_layers))

        def lm_cost(n_prefix):
            x = torch.empty(1, n_prefix + instr_len, d)
            return flops_of(lambda: [blk(x) for blk in lm])

        for q in cfg.scaling_queries:
            qm = QueryModule(d, h, q, cfg.query_layers)
            for t in cfg.scaling_tokens:
                instr = torch.empty(1, instr_len, d); img = torch.empty(1, t, d)
                rows.append({"n_queries": q, "image_tokens": t,
                             "query_module": flops_of(lambda: qm(instr, img)),
                             "lm_prima": lm_cost(q), "lm_glamm": lm_cost(t)})
    return {"instr_len": instr_len, "rows": rows}


def _png_uri(im: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO(); Image.fromarray(im).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def viewer_items(items, evals: dict, vocab: Vocab, n: int) -> list[dict]:
    """Plain data for the mask viewer: images as PNG data URIs, masks as run-length codes."""
    out = []
    for i, it in enumerate(items[:n]):
        rec = {"id": it.id, "category": it.category, "question": it.question,
               "answer": vocab.decode(vocab.encode(it.answer)),
               "images": [_png_uri(im) for im in it.images], "image_size": list(it.images[0].shape[:2]),
               "true": [{"image": o.image, "label": o.label, "level": o.level, "mask": mask_to_rle(o.mask)}
                        for o in it.objects], "pred": {}}
        for v, ev in evals.items():
            p = ev["predictions"][i]; row = ev["metrics"]["per_item"][i]
            rec["pred"][v] = {"answer": p["answer"], "phrases": p["pred_phrases"],
                              "masks": [[mask_to_rle(m) for m in seg] for seg in p["pred_masks"]],
                              "ious": row["ious"], "miou": row["miou"], "giou": row["giou"],
                              "answer_correct": row.get("answer_correct", False)}
        out.append(rec)
    return out


PAPER_PROPORTIONS = dict(n_images=4, image_size=224, patch=14, d_model=1024, n_heads=16, lm_layers=24,
                         n_queries=32, query_layers=2, decoder_stride=16)
"""Reconstruction of the paper's proportions, not of its networks: 4 images of 224 px in 14-px
patches (1024 image tokens), a 1024-wide 24-layer decoder, 32 queries. The toy encoders stay toys."""


def _dummy_inputs(cfg: Config, q_len: int = 20, t_len: int = 40):
    images = torch.zeros(1, cfg.n_images, 3, cfg.image_size, cfg.image_size)
    question = torch.zeros(1, q_len, dtype=torch.long); q_pad = torch.zeros(1, q_len, dtype=torch.bool)
    tokens = torch.zeros(1, t_len, dtype=torch.long); pad = torch.zeros(1, t_len, dtype=torch.bool)
    return images, question, q_pad, tokens, pad


def _sample_forward(model, inputs, n_seg: int = 2):
    """One sample's teacher-forced forward plus ``n_seg`` [SEG] masks (all images)."""
    _, hid, dense = model(*inputs)
    model.masks_from_hidden(hid[0, :n_seg], dense, torch.zeros(n_seg, dtype=torch.long))


def scaled_paper_config(scale: int) -> tuple[Config, int, int]:
    """:data:`PAPER_PROPORTIONS` with width, queries and text length divided by ``scale`` and the image
    tokens by ``scale`` (image side by sqrt(scale)); depth and head width kept. -> (cfg, q_len, t_len)."""
    r = math.isqrt(scale)
    if r * r != scale:
        raise ValueError(f"scale must be a square, got {scale}")
    p = PAPER_PROPORTIONS
    c = Config(**{**p, "image_size": p["image_size"] // r, "d_model": p["d_model"] // scale,
                  "n_heads": max(1, p["n_heads"] // scale), "n_queries": max(1, p["n_queries"] // scale)})
    return c, max(1, 20 // scale), max(2, 40 // scale)


def _meta_flops(cfg: Config, variant: str, q_len: int, t_len: int) -> tuple[int, dict]:
    """FLOPs of one sample on the meta device (nothing runs) and their split per component."""
    with torch.device("meta"):
        model = PrimaModel(cfg, 64, variant).eval()
        inp = _dummy_inputs(cfg, q_len, t_len)
        c = FlopCounterMode(display=False, depth=None)
        with torch.no_grad(), c:
            _sample_forward(model, inp)
    total = int(c.get_total_flops())
    counts = {k: int(sum(x.values())) for k, x in c.get_flop_counts().items()}
    comp: dict[str, int] = {}
    for name, _ in model.named_children():
        key = f"PrimaModel.{name}"
        n = counts.get(key, sum(v for k, v in counts.items() if k.startswith(key + ".") and k.count(".") == 2))
        comp[_component_name(name)] = comp.get(_component_name(name), 0) + n
    comp["other"] = total - sum(comp.values())
    return total, comp


def paper_scale(cfg: Config, time_scale: int | None = 4, repeats: int = 1) -> dict:
    """Both variants at :data:`PAPER_PROPORTIONS` (question 20 tokens, sequence 40, 2 [SEG]s).

    ``flops``/``components``: one sample counted on the meta device at full size. With
    ``time_scale``: the same at :func:`scaled_paper_config` (``timed_flops``), plus samples/s of one
    real forward of it (batch 1, threads as the caller set them, best of ``repeats`` after a
    warm-up, variants interleaved). Weights are random: cost does not depend on them.
    """
    big = Config(**PAPER_PROPORTIONS)
    out = {"config": dict(PAPER_PROPORTIONS), "flops": {}, "components": {}}
    for v in ("prima", "glamm"):
        out["flops"][v], out["components"][v] = _meta_flops(big, v, 20, 40)
    out["flops_reduction_pct"] = 100.0 * (1 - out["flops"]["prima"] / out["flops"]["glamm"])
    if time_scale:
        small, ql, tl = scaled_paper_config(time_scale)
        out["timed_scale"] = time_scale
        out["timed_config"] = {k: getattr(small, k) for k in PAPER_PROPORTIONS}
        out["timed_flops"] = {v: _meta_flops(small, v, ql, tl)[0] for v in ("prima", "glamm")}
        models = {}
        for v in ("prima", "glamm"):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                models[v] = PrimaModel(small, 64, v).eval()
        inp = _dummy_inputs(small, ql, tl)
        best = {v: float("inf") for v in models}
        with torch.inference_mode():  # no warm-up: one forward here is seconds, first-call costs are not
            for _ in range(max(1, repeats)):
                for v, m in models.items():  # interleaved, so load changes hit both
                    t0 = time.perf_counter(); _sample_forward(m, inp); best[v] = min(best[v], time.perf_counter() - t0)
        out["samples_per_s"] = {v: 1.0 / best[v] for v in models}
        out["timed_flops_reduction_pct"] = 100.0 * (1 - out["timed_flops"]["prima"] / out["timed_flops"]["glamm"])
    return out


def _component_name(child: str) -> str:
    return {"encoder": "vision_encoders", "grounding": "vision_encoders", "img_index": "vision_encoders",
            "query": "connector", "proj": "connector", "lm": "language_decoder", "ln_f": "language_decoder",
            "head": "language_decoder", "tok_emb": "language_decoder", "pos": "language_decoder",
            "seg_proj": "mask_decoder", "mask_decoder": "mask_decoder", "mask_upscale": "mask_decoder"}.get(child, "other")


METRICS = ("giou", "ciou", "miou", "recall", "answer_acc", "seg_count_acc", "teacher_forced_giou", "ss", "siou")
CAT_METRICS = ("giou", "miou", "recall", "answer_acc", "ss", "siou")


def _mean_se(xs) -> tuple[float, float]:
    """Mean and standard error over seeds (SE nan with one seed)."""
    x = np.asarray(xs, dtype=float)
    return float(x.mean()), (float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan"))


def run_seed(cfg: Config, seed: int, *, progress: bool = True) -> dict:
    """One replication: data for ``seed``, each variant trained on the same batches, then evaluated."""
    cs = replace(cfg, seed=seed)
    train_items = generate_items(cs, cfg.n_train, split="train")
    test_items = generate_items(cs, cfg.n_test, split="test")
    vocab = Vocab.from_items(train_items + test_items)
    curve_items = test_items[: cfg.n_curve] if cfg.eval_every else None
    out = {"seed": seed, "variants": {}, "evals": {}, "test_items": test_items, "vocab": vocab,
           "per_image_chance": per_image_chance(test_items)}
    for v in cfg.variants:
        model = build_model(cs, vocab, v, derive_seed(seed, "prima-init", v))
        t1 = time.perf_counter()
        hist = train(model, train_items, vocab, cs, seed=seed,
                     out_dir=(f"{cfg.out_dir}/checkpoints/seed{seed}" if cfg.out_dir else None),
                     progress=progress, desc=f"seed {seed} train {v}", curve_items=curve_items)
        t_train = time.perf_counter() - t1
        ev = evaluate(model, test_items, vocab, cs)
        out["evals"][v] = ev
        out["variants"][v] = {"history": hist, "metrics": ev["metrics"]["overall"],
                              "per_category": ev["metrics"]["per_category"], "train_s": t_train,
                              "params": count_parameters(model), "model": model}
    # PRIMA's text metrics on the generated vs the true answer (as the vocabulary spells it), all
    # variants in one embedding call
    trues = [vocab.decode(vocab.encode(it.answer)) for it in test_items]
    cats = [it.category for it in test_items]
    vs = list(out["evals"])
    preds = [p["answer"] for v in vs for p in out["evals"][v]["predictions"]]
    tm_all = text_metrics(preds, trues * len(vs), cats * len(vs))
    n = len(test_items)
    for j, v in enumerate(vs):
        ss = np.array(tm_all["per_item"]["ss"][j * n:(j + 1) * n]); si = np.array(tm_all["per_item"]["siou"][j * n:(j + 1) * n])
        ev = out["evals"][v]
        ev["metrics"]["overall"].update(ss=float(ss.mean()), siou=float(si.mean()))
        for c in set(cats):
            idx = [i for i, x in enumerate(cats) if x == c]
            ev["metrics"]["per_category"][c].update(ss=float(ss[idx].mean()), siou=float(si[idx].mean()))
        for row, a, b in zip(ev["metrics"]["per_item"], ss, si):
            row.update(ss=float(a), siou=float(b))
    return out


def run(cfg: Config | None = None, *, progress: bool = True) -> dict:
    """Generate, train each variant in ``cfg.variants`` on ``cfg.n_seeds`` seeds, evaluate; plain data.

    ``results["summary"]``: per variant the mean and standard error over seeds of gIoU, cIoU, mIoU,
    Recall, answer accuracy, SS, SIoU...; ``prima_minus_glamm`` the paired per-seed difference (same
    data and batches); FLOPs per sample and their reduction at the default and at the paper's
    proportions; the per-image reader's chance level. ``variants``: per seed histories and learning
    curves, per-category metrics, FLOP breakdowns, samples/s. ``viewer``: items of the first seed.
    """
    cfg = cfg or Config()
    old_threads = torch.get_num_threads()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    try:
        t0 = time.perf_counter()
        seeds = [cfg.seed + k for k in range(cfg.n_seeds)]
        reps = []
        for sd in tqdm(seeds, desc="seeds", disable=not progress, leave=False):
            reps.append(run_seed(cfg, sd, progress=progress))
        first = reps[0]
        vocab, test_items = first["vocab"], first["test_items"]
        flops_batch = Batch(test_items[:1], vocab)
        tp_batch = Batch(test_items[: cfg.throughput_batch], vocab)
        variants, summary = {}, {}
        cats = sorted({it.category for it in test_items})
        for v in cfg.variants:
            model = first["variants"][v]["model"]
            fl = count_flops(model, flops_batch)
            per_seed = [r["variants"][v] for r in reps]
            agg = {k: _mean_se([p["metrics"][k] for p in per_seed]) for k in METRICS}
            per_cat = {c: {k: _mean_se([p["per_category"][c][k] for p in per_seed]) for k in CAT_METRICS}
                       for c in cats}
            variants[v] = {
                "seeds": seeds, "flops": fl, "params": per_seed[0]["params"],
                "samples_per_s": throughput(model, tp_batch, cfg.throughput_repeats),
                "metrics": {k: m for k, (m, _) in agg.items()}, "metrics_se": {k: e for k, (_, e) in agg.items()},
                "per_category": {c: {k: m for k, (m, _) in d.items()} for c, d in per_cat.items()},
                "per_category_se": {c: {k: e for k, (_, e) in d.items()} for c, d in per_cat.items()},
                "per_seed": [{"seed": sd, "metrics": p["metrics"], "per_category": p["per_category"]}
                             for sd, p in zip(seeds, per_seed)],
                "history": [p["history"] for p in per_seed], "train_s": [p["train_s"] for p in per_seed]}
            summary[v] = {**{k: agg[k][0] for k in METRICS},
                          **{f"{k}_se": agg[k][1] for k in ("giou", "miou", "recall", "answer_acc")},
                          "mflops_per_sample": fl["per_sample"] / 1e6}
        summary["n_seeds"] = cfg.n_seeds
        summary["per_image_chance"] = float(np.mean([r["per_image_chance"]["overall"] for r in reps]))
        out = {"summary": summary, "variants": variants, "paper": PAPER, "seeds": seeds,
               "scaling": connector_scaling(cfg), "vocab_size": len(vocab), "categories": cats,
               "per_image_chance": {c: float(np.mean([r["per_image_chance"][c] for r in reps]))
                                    for c in cats + ["overall"]},
               "viewer": viewer_items(test_items, first["evals"], vocab, cfg.n_view)}
        if "prima" in variants and "glamm" in variants:
            diff = {}
            for k in ("giou", "miou", "recall", "answer_acc", "teacher_forced_giou"):
                d = [a["metrics"][k] - b["metrics"][k] for a, b in
                     zip(variants["prima"]["per_seed"], variants["glamm"]["per_seed"])]
                diff[k], diff[f"{k}_se"] = _mean_se(d)
            summary["prima_minus_glamm"] = diff
            out["per_category_diff"] = {
                c: {k: _mean_se([a["per_category"][c][k] - b["per_category"][c][k] for a, b in
                                 zip(variants["prima"]["per_seed"], variants["glamm"]["per_seed"])])
                    for k in CAT_METRICS} for c in cats}
            fp, fg = variants["prima"]["flops"]["total"], variants["glamm"]["flops"]["total"]
            summary["flops_reduction_pct"] = 100.0 * (1 - fp / fg)
            out["throughput_ratio"] = variants["prima"]["samples_per_s"] / variants["glamm"]["samples_per_s"]
            ps = paper_scale(cfg, cfg.paper_timing_scale if cfg.paper_timing else None)
            out["paper_scale"] = ps
            summary["paper_proportions_flops_reduction_pct"] = ps["flops_reduction_pct"]
        out["timing_s"] = {"total": time.perf_counter() - t0}
        return out
    finally:
        torch.set_num_threads(old_threads)
