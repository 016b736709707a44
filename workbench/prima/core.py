"""``run(cfg)``: generate data, train both variants, evaluate (metrics, FLOPs, samples/s), viewer data."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from workbench.seeding import derive_seed

from .config import Config
from .data import Vocab, generate_items, mask_to_rle
from .metrics import text_metrics
from .model import Block, QueryModule, count_parameters
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


def run(cfg: Config | None = None, *, progress: bool = True) -> dict:
    """Generate, train each variant in ``cfg.variants``, evaluate; plain-data results.

    ``results["summary"]`` holds per-variant gIoU/cIoU/mIoU/Recall/SS/SIoU/answer accuracy and FLOPs, and the
    FLOP reduction of PRIMA vs GLaMM; ``variants`` holds histories, per-category metrics, FLOP
    breakdowns, samples/s; ``viewer`` the items for the mask viewer; ``paper`` the anchors.
    """
    cfg = cfg or Config()
    old_threads = torch.get_num_threads()
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    try:
        t0 = time.perf_counter()
        train_items = generate_items(cfg, cfg.n_train, split="train")
        test_items = generate_items(cfg, cfg.n_test, split="test")
        vocab = Vocab.from_items(train_items + test_items)
        t_data = time.perf_counter() - t0
        flops_batch = Batch(test_items[:1], vocab)
        tp_batch = Batch(test_items[: cfg.throughput_batch], vocab)
        variants, evals = {}, {}
        for v in cfg.variants:
            model = build_model(cfg, vocab, v, derive_seed(cfg.seed, "prima-init", v))
            t1 = time.perf_counter()
            hist = train(model, train_items, vocab, cfg, seed=cfg.seed,
                         out_dir=(f"{cfg.out_dir}/checkpoints" if cfg.out_dir else None),
                         progress=progress, desc=f"train {v}")
            t_train = time.perf_counter() - t1
            ev = evaluate(model, test_items, vocab, cfg)
            # PRIMA's text metrics on the generated answer vs the true answer (as the vocabulary spells it)
            tm = text_metrics([p["answer"] for p in ev["predictions"]],
                              [vocab.decode(vocab.encode(it.answer)) for it in test_items],
                              [it.category for it in test_items])
            ev["metrics"]["overall"].update(ss=tm["ss"], siou=tm["siou"], ss_se=tm["ss_se"], siou_se=tm["siou_se"])
            for c, m in tm["per_category"].items():
                ev["metrics"]["per_category"][c].update(m)
            for row, a, b in zip(ev["metrics"]["per_item"], tm["per_item"]["ss"], tm["per_item"]["siou"]):
                row.update(ss=a, siou=b)
            evals[v] = ev
            fl = count_flops(model, flops_batch)
            variants[v] = {"history": hist, "metrics": ev["metrics"]["overall"],
                           "per_category": ev["metrics"]["per_category"], "flops": fl,
                           "samples_per_s": throughput(model, tp_batch, cfg.throughput_repeats),
                           "train_s": t_train, "params": count_parameters(model)}
        summary = {}
        for v, r in variants.items():
            m = r["metrics"]
            summary[v] = {"giou": m["giou"], "ciou": m["ciou"], "miou": m["miou"], "recall": m["recall"],
                          "ss": m["ss"], "ss_se": m["ss_se"], "siou": m["siou"], "siou_se": m["siou_se"],
                          "answer_acc": m["answer_acc"], "seg_count_acc": m["seg_count_acc"],
                          "teacher_forced_giou": m["teacher_forced_giou"],
                          "mflops_per_sample": r["flops"]["per_sample"] / 1e6,
                          "loss_first10": float(np.mean(r["history"]["loss"][:10])),
                          "loss_last10": float(np.mean(r["history"]["loss"][-10:]))}
        out = {"summary": summary, "variants": variants, "paper": PAPER,
               "scaling": connector_scaling(cfg), "vocab_size": len(vocab),
               "categories": sorted({it.category for it in test_items}),
               "viewer": viewer_items(test_items, evals, vocab, cfg.n_view),
               "timing_s": {"data": t_data}}
        if "prima" in variants and "glamm" in variants:
            fp, fg = variants["prima"]["flops"]["total"], variants["glamm"]["flops"]["total"]
            summary["flops_reduction_pct"] = 100.0 * (1 - fp / fg)
            out["throughput_ratio"] = variants["prima"]["samples_per_s"] / variants["glamm"]["samples_per_s"]
        return out
    finally:
        torch.set_num_threads(old_threads)
