"""Mask viewer for PRIMA results: the image set side by side with predicted and true masks overlaid.

Fed the plain ``results["viewer"]`` list that :func:`workbench.prima.run` returns (images as PNG data
URIs, masks as run-length codes). Masks are decoded once when the viewer is built; the callbacks
only index into that data and set trace properties.
"""
from __future__ import annotations

import html

import numpy as np

from workbench.prima.data import rle_to_mask

SEG_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45"]
ORDERS = ("dataset order", "worst gIoU first", "best gIoU first", "wrong answers only")


def decode_item(item: dict) -> dict:
    """RLE -> arrays: ``true`` (n_true, N, H, W) and ``pred[v]`` (n_pred, N, H, W) bool."""
    n = len(item["images"]); h, w = item["image_size"]
    true = np.zeros((len(item["true"]), n, h, w), bool)
    for k, o in enumerate(item["true"]):
        true[k, o["image"]] = rle_to_mask(o["mask"])
    pred = {}
    for v, p in item["pred"].items():
        arr = np.zeros((len(p["masks"]), n, h, w), bool)
        for k, seg in enumerate(p["masks"]):
            for i, rle in enumerate(seg):
                arr[k, i] = rle_to_mask(rle)
        pred[v] = arr
    return {"true": true, "pred": pred}


def filter_items(items: list[dict], category: str = "all", order: str = "dataset order",
                 variant: str | None = None) -> list[int]:
    """Indices of ``items`` in ``category`` ("all" for every one), ordered by ``order`` for ``variant``."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}")
    idx = [i for i, it in enumerate(items) if category == "all" or it["category"] == category]
    if order == "dataset order" or variant is None:
        return idx
    if order == "wrong answers only":
        return [i for i in idx if not items[i]["pred"][variant]["answer_correct"]]
    key = lambda i: items[i]["pred"][variant]["giou"]  # noqa: E731
    return sorted(idx, key=key, reverse=(order == "best gIoU first"))


def answer_html(answer: str, ious: list | None = None, phrases: list | None = None) -> str:
    """Answer text with each [SEG] shown as a coloured badge numbered like its mask (and its IoU)."""
    parts = html.escape(answer).split("[SEG]")
    out = parts[0]
    for k, rest in enumerate(parts[1:]):
        c = SEG_COLORS[k % len(SEG_COLORS)]
        tip = f" IoU {ious[k]:.2f}" if ious is not None and k < len(ious) else ""
        out += (f'<span style="background:{c};color:white;border-radius:3px;padding:0 3px">'
                f"[SEG {k + 1}]{tip}</span>") + rest
    return out


def mask_viewer(items: list[dict], variants: list[str] | None = None):
    """An ipywidgets view: category / order / variant / item selectors, show toggle, opacity, [SEG] pick."""
    import ipywidgets as W
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not items:
        return W.HTML("<i>no items to show</i>")
    variants = variants or list(items[0]["pred"])
    decoded = [decode_item(it) for it in items]
    n = len(items[0]["images"])
    cats = ["all"] + sorted({it["category"] for it in items})

    fig = go.FigureWidget(make_subplots(rows=1, cols=n, subplot_titles=[f"image {i + 1}" for i in range(n)],
                                        horizontal_spacing=0.03))
    clear = "rgba(0,0,0,0)"
    for i in range(n):
        fig.add_trace(go.Image(source=items[0]["images"][i], name=f"image {i + 1}"), 1, i + 1)
        fig.add_trace(go.Heatmap(z=np.zeros(items[0]["image_size"]), zmin=0, zmax=1, showscale=False,
                                 colorscale=[[0, clear], [1, "rgb(0,220,90)"]], name="true", hoverinfo="skip"),
                      1, i + 1)
        fig.add_trace(go.Heatmap(z=np.zeros(items[0]["image_size"]), zmin=0, zmax=1, showscale=False,
                                 colorscale=[[0, clear], [1, "rgb(255,40,200)"]], name="pred", hoverinfo="skip"),
                      1, i + 1)
    fig.update_layout(height=320, width=300 * n + 40, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(showticklabels=False); fig.update_yaxes(showticklabels=False, autorange="reversed")

    w_cat = W.Dropdown(options=cats, value="all", description="category")
    w_order = W.Dropdown(options=ORDERS, value="dataset order", description="order")
    w_var = W.Dropdown(options=variants, value=variants[0], description="variant")
    w_item = W.Dropdown(options=[], description="item")
    w_show = W.ToggleButtons(options=["both", "predicted", "true", "none"], value="both", description="masks")
    w_op = W.FloatSlider(value=0.55, min=0, max=1, step=0.05, description="opacity")
    w_seg = W.Dropdown(options=[("all [SEG]", -1)], value=-1, description="[SEG]")
    info = W.HTML()

    def refresh_items(*_):
        idx = filter_items(items, w_cat.value, w_order.value, w_var.value)
        opts = [(f"{items[i]['id']} ({items[i]['category']}, gIoU {items[i]['pred'][w_var.value]['giou']:.2f})", i)
                for i in idx]
        w_item.options = opts or [("(none)", -1)]
        w_item.value = opts[0][1] if opts else -1

    def draw(*_):
        i = w_item.value
        if i is None or i < 0:
            info.value = "<i>no item matches</i>"; return
        it, dec = items[i], decoded[i]
        p = it["pred"][w_var.value]
        n_seg = max(len(dec["true"]), len(dec["pred"][w_var.value]))
        segs = [("all [SEG]", -1)] + [(f"[SEG {k + 1}]", k) for k in range(n_seg)]
        if list(w_seg.options) != segs:
            w_seg.options = segs; w_seg.value = -1
        k = w_seg.value
        tm, pm = dec["true"], dec["pred"][w_var.value]
        tsel = tm if k < 0 else tm[k:k + 1]
        psel = pm if k < 0 else pm[k:k + 1]
        with fig.batch_update():
            for j in range(n):
                fig.data[3 * j].source = it["images"][j]
                fig.data[3 * j + 1].z = tsel[:, j].any(0).astype(float) if len(tsel) else np.zeros(it["image_size"])
                fig.data[3 * j + 2].z = psel[:, j].any(0).astype(float) if len(psel) else np.zeros(it["image_size"])
                fig.data[3 * j + 1].visible = w_show.value in ("both", "true")
                fig.data[3 * j + 2].visible = w_show.value in ("both", "predicted")
                fig.data[3 * j + 1].opacity = w_op.value
                fig.data[3 * j + 2].opacity = w_op.value
        ok = "correct" if p["answer_correct"] else "wrong"
        info.value = (f"<b>{html.escape(it['question'])}</b><br>"
                      f"true: {answer_html(it['answer'])}<br>"
                      f"{w_var.value} ({ok}): {answer_html(p['answer'], p['ious'])}<br>"
                      f"item gIoU {p['giou']:.3f} · mIoU {p['miou']:.3f} · "
                      f"<span style='color:rgb(0,160,60)'>green = true</span>, "
                      f"<span style='color:rgb(220,30,170)'>magenta = predicted</span>")

    for w in (w_cat, w_order, w_var):
        w.observe(refresh_items, "value")
    for w in (w_item, w_show, w_op, w_seg, w_var):
        w.observe(draw, "value")
    refresh_items(); draw()
    controls = W.VBox([W.HBox([w_cat, w_order, w_var]), W.HBox([w_item, w_seg]), W.HBox([w_show, w_op])])
    box = W.VBox([controls, info, fig])
    box.fig, box.info = fig, info  # handles for tests
    box.controls = {"category": w_cat, "order": w_order, "variant": w_var, "item": w_item, "show": w_show,
                    "opacity": w_op, "seg": w_seg}
    return box
