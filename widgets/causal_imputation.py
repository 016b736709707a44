"""Imputation explorer for causal imputation results.

Fed the plain dict ``run(cfg)["explorer"]`` (see ``workbench.causal_imputation.core.explorer_data``):
``contexts``, ``actions``, ``features``, ``mask`` (C x A of 0/1), ``r2_heatmaps`` {estimator: C x A
with None on measured pairs}, ``pairs`` (one dict per scored pair: ``context``, ``action`` indices,
``true``, ``pred`` {estimator: F values}, ``donors`` {estimator: {donors, weights, donor_contexts,
context_weights, fallback}}) and ``estimators``.

Views: the measured mask as a heatmap (click a cell, or pick a pair in the dropdown), the selected
pair's donors and learned weights per estimator, predicted vs true features, and an R^2 heatmap for
the estimator chosen. Callbacks only index into the data.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go


def _none_to_nan(m):
    return np.array([[np.nan if v is None else v for v in row] for row in m], dtype=float)


def mask_figure(data: dict[str, Any]) -> go.Figure:
    """Heatmap of the measured mask (1 measured, 0 missing)."""
    fig = go.Figure(go.Heatmap(z=data["mask"], x=data["actions"], y=data["contexts"], colorscale=[[0, "#eeeeee"], [1, "#3465a4"]],
                               showscale=False, hovertemplate="%{y} / %{x}: measured=%{z}<extra></extra>"))
    fig.update_layout(title="measured pairs (blue); click a grey cell", height=420, margin=dict(l=60, r=10, t=40, b=60))
    return fig


def r2_heatmap_figure(data: dict[str, Any], estimator: str) -> go.Figure:
    """Per-pair R^2 of ``estimator`` on the scored pairs (clipped to [-1, 1] for colour)."""
    z = np.clip(_none_to_nan(data["r2_heatmaps"][estimator]), -1, 1)
    fig = go.Figure(go.Heatmap(z=z, x=data["actions"], y=data["contexts"], zmin=-1, zmax=1, colorscale="RdBu",
                               colorbar=dict(title="R^2"), hovertemplate="%{y} / %{x}: R^2=%{z:.3f}<extra></extra>"))
    fig.update_layout(title=f"per-pair R^2: {estimator}", height=420, margin=dict(l=60, r=10, t=40, b=60))
    return fig


def pair_scatter_figure(data: dict[str, Any], index: int) -> go.Figure:
    """Predicted vs true features of one pair, one trace per estimator."""
    p = data["pairs"][index]
    fig = go.Figure()
    lo, hi = min(p["true"]), max(p["true"])
    for name, pred in p["pred"].items():
        fig.add_trace(go.Scatter(x=p["true"], y=pred, mode="markers", name=name))
        lo, hi = min(lo, min(pred)), max(hi, max(pred))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dot", color="grey"), name="y = x"))
    fig.update_layout(title=f"{data['contexts'][p['context']]} / {data['actions'][p['action']]}: predicted vs true",
                      xaxis_title="true", yaxis_title="predicted", height=380)
    return fig


def donor_html(data: dict[str, Any], index: int) -> str:
    """Donors and learned weights of one pair, per estimator."""
    p = data["pairs"][index]
    parts = []
    for name, d in p["donors"].items():
        rows = ""
        for lab, w in zip(d.get("donors", []), d.get("weights", [])):
            rows += f"<tr><td>{html.escape(lab)}</td><td>{w:+.3f}</td></tr>"
        crow = ""
        for lab, w in zip(d.get("donor_contexts", []), d.get("context_weights", [])):
            crow += f"<tr><td>{html.escape(lab)}</td><td>{w:+.3f}</td></tr>"
        kind = "donor contexts" if name == "si_c" else "donor actions"
        block = f"<b>{html.escape(name)}</b> (fallback: {html.escape(d['fallback'])})<table>"
        block += f"<tr><th>{kind}</th><th>weight</th></tr>{rows}</table>"
        if crow:
            block += f"<table><tr><th>donor contexts</th><th>weight</th></tr>{crow}</table>"
        parts.append(f"<div style='display:inline-block;vertical-align:top;margin-right:18px;font-size:12px'>{block}</div>")
    return "".join(parts)


def imputation_explorer(data: dict[str, Any]) -> W.VBox:
    """Mask heatmap (click to select), pair dropdown, donors / weights, predicted vs true, R^2 heatmap."""
    pairs = data["pairs"]
    if not pairs:
        return W.VBox([W.HTML("<i>no scored pairs</i>")])
    lookup = {(p["context"], p["action"]): i for i, p in enumerate(pairs)}
    mask_fig = go.FigureWidget(mask_figure(data))
    pick = W.Dropdown(options=[(f"{data['contexts'][p['context']]} / {data['actions'][p['action']]}", i)
                               for i, p in enumerate(pairs)], value=0, description="pair")
    est = W.Dropdown(options=list(data["r2_heatmaps"]), value=list(data["r2_heatmaps"])[0], description="R^2 of")
    scatter = go.FigureWidget(pair_scatter_figure(data, 0))
    heat = go.FigureWidget(r2_heatmap_figure(data, est.value))
    donors = W.HTML(donor_html(data, 0))

    def show_pair(change=None):
        i = pick.value
        new = pair_scatter_figure(data, i)
        with scatter.batch_update():
            for tr, nt in zip(scatter.data, new.data):
                tr.x, tr.y = nt.x, nt.y
            scatter.layout.title = new.layout.title
        donors.value = donor_html(data, i)

    def show_heat(change=None):
        z = np.clip(_none_to_nan(data["r2_heatmaps"][est.value]), -1, 1)
        with heat.batch_update():
            heat.data[0].z = z
            heat.layout.title = f"per-pair R^2: {est.value}"

    def on_click(trace, points, state):
        if points.point_inds:
            ci, ai = data["contexts"].index(points.ys[0]), data["actions"].index(points.xs[0])
            if (ci, ai) in lookup:
                pick.value = lookup[(ci, ai)]

    mask_fig.data[0].on_click(on_click)
    pick.observe(show_pair, names="value")
    est.observe(show_heat, names="value")
    box = W.VBox([W.HBox([mask_fig, heat]), W.HBox([pick, est]), donors, scatter])
    box.pick, box.est, box.donors, box.scatter, box.heat = pick, est, donors, scatter, heat
    return box
