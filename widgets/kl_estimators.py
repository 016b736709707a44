"""Views for the KL-estimators notebook, fed the plain dict returned by ``workbench.kl.run``.

* :func:`bias_explorer`: controls for V, L, the distance between pi and ref and the configurations to
  show; bars of relative bias, cosine and relative variance per configuration, the expected gradients
  projected to 2-D, and the RL training curves (metric and mode selectable). Callbacks only index
  into precomputed results (no computation in the widget).
* :func:`exact_table`, :func:`sweep_figure`, :func:`mc_figure`, :func:`rl_figure`: static views.
"""
from __future__ import annotations

import ipywidgets as w
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RL_METRICS = ("train_kl", "heldout_kl", "train_accuracy", "heldout_accuracy", "entropy")


def exact_table(results: dict, policy: str = "tabular", mode: str = "on_policy") -> pd.DataFrame:
    """The computed expected-gradient table as a DataFrame (one row per configuration)."""
    tab = results["exact"][policy][mode]
    cols = ["config", "rel_error", "cosine", "rel_variance", "rel_to_tok_fwd", "rel_to_tok_rev", "norm_ratio"]
    return pd.DataFrame([{c: r[c] for c in cols} for r in tab["rows"]]).set_index("config")


def sweep_figure(results: dict) -> go.Figure:
    """Relative bias of each configuration against the exact reverse KL(pi||ref) as pi moves away."""
    pts = results["sweep"]["points"]
    kls = [p["rev_kl"] for p in pts]
    fig = go.Figure()
    for i, row in enumerate(pts[0]["rows"]):
        fig.add_scatter(x=kls, y=[max(p["rows"][i]["rel_error"], 1e-17) for p in pts], mode="lines+markers",
                        name=row["config"])
    fig.update_layout(title="Relative bias of the expected gradient vs distance to the reference",
                      xaxis=dict(title="exact KL(pi || ref) (nats)", type="log"),
                      yaxis=dict(title="||E g - grad KL|| / ||grad KL|| (floored at 1e-17)", type="log"),
                      height=420)
    return fig


def mc_figure(results: dict) -> go.Figure:
    """Monte Carlo error ||mean_n - E g|| / ||grad KL|| vs sample size; dashed: sqrt(trace Cov(g)/n) / ||grad KL||."""
    mc = results["mc"]
    fig = go.Figure()
    for i, c in enumerate(mc["configs"]):
        color = f"hsl({int(360 * i / len(mc['configs']))},70%,45%)"
        fig.add_scatter(x=mc["n"], y=c["rel_error"], mode="markers+lines", name=c["config"], line=dict(color=color),
                        legendgroup=c["config"])
        fig.add_scatter(x=mc["n"], y=c["predicted"], mode="lines", line=dict(color=color, dash="dash"),
                        showlegend=False, legendgroup=c["config"])
    fig.update_layout(title="Monte Carlo error vs n (dashed: predicted from the exact variance)",
                      xaxis=dict(title="samples n", type="log"), yaxis=dict(title="||mean_n - E g|| / ||grad KL||", type="log"),
                      height=420)
    return fig


def rl_figure(results: dict, metric: str = "train_kl", mode: str | None = None) -> go.Figure:
    """Training curves of the RL runs for one metric (all modes, or one mode)."""
    if metric not in RL_METRICS:
        raise ValueError(f"metric must be one of {RL_METRICS}")
    fig = go.Figure()
    for r in results["rl"]["runs"]:
        if mode is None or r["mode"] == mode:
            fig.add_scatter(x=r["curves"]["step"], y=r["curves"][metric], mode="lines",
                            name=f"{r['config']} | {r['mode']}")
    fig.update_layout(title=f"RL runs: {metric} (exact, by enumeration)", xaxis_title="update",
                      yaxis_title=metric, height=420)
    return fig


class BiasExplorer:
    """The KL gradient bias explorer. ``.widget`` is the ipywidgets box to display."""

    def __init__(self, results: dict):
        if "explorer" not in results:
            raise ValueError("results has no 'explorer' grid; run workbench.kl.run with the 'explorer' part")
        ex = results["explorer"]
        self.ex, self.rl = ex, results.get("rl")
        self.V = w.Dropdown(options=ex["V"], value=ex["V"][-1], description="V")
        self.L = w.Dropdown(options=ex["L"], value=ex["L"][-1], description="L")
        self.d = w.SelectionSlider(options=ex["distances"], value=ex["distances"][len(ex["distances"]) // 2],
                                   description="distance")
        self.cfgs = w.SelectMultiple(options=ex["configs"], value=tuple(ex["configs"]), rows=len(ex["configs"]),
                                     description="configs")
        self.fig = go.FigureWidget(make_subplots(rows=2, cols=2, subplot_titles=(
            "relative bias ||E g - grad KL|| / ||grad KL||", "cosine(E g, grad KL)",
            "relative variance tr Cov(g) / ||grad KL||^2 (per sample)",
            "E g projected: x = along grad KL, y = toward per-token fwd-KL grad")))
        self.fig.add_bar(x=[], y=[], row=1, col=1, showlegend=False)
        self.fig.add_bar(x=[], y=[], row=1, col=2, showlegend=False)
        self.fig.add_bar(x=[], y=[], row=2, col=1, showlegend=False)
        self.fig.add_scatter(x=[], y=[], mode="markers+text", textposition="top center", row=2, col=2,
                             showlegend=False)
        self.fig.update_yaxes(type="log", row=2, col=1)
        self.fig.update_layout(height=700, title="KL gradient bias explorer (exact enumeration, tabular policy)")
        self.info = w.HTML()
        controls = [self.V, self.L, self.d, self.cfgs]
        for c in controls:
            c.observe(self._update, names="value")
        children = [w.HBox([w.VBox([self.V, self.L, self.d]), self.cfgs]), self.info, self.fig]
        if self.rl:
            modes = sorted({r["mode"] for r in self.rl["runs"]})
            self.metric = w.Dropdown(options=RL_METRICS, value="train_kl", description="RL metric")
            self.mode = w.Dropdown(options=modes, value=modes[-1] if "on-policy" not in modes else "on-policy",
                                   description="mode")
            self.rl_fig = go.FigureWidget(rl_figure(results, "train_kl", self.mode.value))
            self.metric.observe(self._update_rl, names="value")
            self.mode.observe(self._update_rl, names="value")
            children += [w.HBox([self.metric, self.mode]), self.rl_fig]
        self.widget = w.VBox(children)
        self._results = results
        self._update()

    def point(self) -> dict:
        return self.ex["points"][f"V={self.V.value},L={self.L.value},d={self.d.value}"]

    def _update(self, *_):
        p = self.point()
        rows = [r for r in p["rows"] if r["config"] in self.cfgs.value]
        names = [r["config"] for r in rows]
        with self.fig.batch_update():
            self.fig.data[0].x, self.fig.data[0].y = names, [r["rel_error"] for r in rows]
            self.fig.data[1].x, self.fig.data[1].y = names, [r["cosine"] for r in rows]
            self.fig.data[2].x, self.fig.data[2].y = names, [r["rel_variance"] for r in rows]
            self.fig.data[3].x = [r["proj"][0] for r in rows] + [1.0, p["proj_tok_fwd"][0]]
            self.fig.data[3].y = [r["proj"][1] for r in rows] + [0.0, p["proj_tok_fwd"][1]]
            self.fig.data[3].text = names + ["TRUE grad KL", "per-token fwd KL"]
        self.info.value = (f"exact KL(pi||ref) = {p['rev_kl']:.4g}, KL(ref||pi) = {p['fwd_kl']:.4g}, "
                           f"{p['n_sequences']} sequences, {p['n_params']} parameters")

    def _update_rl(self, *_):
        f = rl_figure(self._results, self.metric.value, self.mode.value)
        with self.rl_fig.batch_update():
            self.rl_fig.data = []
            for tr in f.data:
                self.rl_fig.add_trace(tr)
            self.rl_fig.layout.title = f.layout.title
            self.rl_fig.layout.yaxis.title = self.metric.value


def bias_explorer(results: dict) -> w.VBox:
    """The explorer widget for ``workbench.kl.run`` results."""
    return BiasExplorer(results).widget
