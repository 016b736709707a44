"""Views of ``workbench.causal_bfs.run`` results: the BFS traversal in the causal graph viewer, method
metrics side by side, and the query-count curve (BFS ~ n + 1 vs pairwise n(n-1)/2)."""
from __future__ import annotations

from typing import Any, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .causal_graph import causal_graph_viewer, graph_figure

NAMES = {"bfs": "BFS (LLM)", "bfs_stats": "BFS + correlations", "pairwise": "pairwise (LLM)",
         "pairwise_stats": "pairwise + correlation", "pc": "PC", "ges": "GES"}


def _cut(t: Mapping[str, Any]) -> str:
    return ", truncated" if t.get("truncated") else ""


def bfs_steps(method_result: Mapping[str, Any]) -> list[dict]:
    """Viewer steps from a BFS result's trace: one step per query."""
    steps = []
    for t in method_result["trace"]:
        if t["node"] is None:
            label = f"initialisation query: roots = {', '.join(t['answer']) or '(none)'} [parse: {t['parse']}{_cut(t)}]"
        else:
            rej = ", ".join(f"{e['edge'][1]} ({e['reason']})" for e in t["rejected"])
            label = (f"expand <b>{t['node']}</b>: added {', '.join(t['added']) or 'nothing'}"
                     + (f"; rejected {rej}" if rej else "") + f" [parse: {t['parse']}{_cut(t)}]")
        steps.append({"label": label, "edges": t["edges"]})
    return steps


def bfs_viewer(results: Mapping[str, Any], dataset: str, method: str = "bfs"):
    """Step slider through the BFS traversal of ``method`` on ``dataset``."""
    ds = results["datasets"][dataset]
    return causal_graph_viewer(ds["nodes"], ds["true_edges"], bfs_steps(ds["methods"][method]),
                               title=f"{NAMES.get(method, method)} on {dataset}")


def method_graph(results: Mapping[str, Any], dataset: str, method: str) -> go.Figure:
    ds = results["datasets"][dataset]
    m = ds["methods"][method]["metrics"]
    return graph_figure(ds["nodes"], ds["true_edges"], ds["methods"][method]["edges"],
                        title=f"{NAMES.get(method, method)} on {dataset}: F1 {m['f1']:.2f}, SHD {m['shd']}")


def metrics_figure(results: Mapping[str, Any], metrics=("precision", "recall", "f1", "ratio")) -> go.Figure:
    """Grouped bars: one panel per metric, one group per dataset, one bar per method."""
    metrics = list(metrics)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    methods = sorted({m for d in results["datasets"].values() for m in d["methods"]},
                     key=lambda m: list(NAMES).index(m) if m in NAMES else 99)
    for col, met in enumerate(metrics, 1):
        for m in methods:
            xs, ys = [], []
            for name, d in results["datasets"].items():
                if m in d["methods"]:
                    xs.append(name)
                    v = d["methods"][m]["metrics"][met]
                    ys.append(None if v != v else v)  # NaN (undefined) -> gap
            fig.add_trace(go.Bar(x=xs, y=ys, name=NAMES.get(m, m), legendgroup=m, showlegend=col == 1),
                          row=1, col=col)
    fig.update_layout(barmode="group", height=340, margin=dict(t=40), legend=dict(orientation="h", y=-0.2))
    return fig


def query_scaling_figure(results: Mapping[str, Any]) -> go.Figure:
    """Queries vs number of variables: BFS with a perfect expert, pairwise n(n-1)/2, and the LLM runs."""
    rows = sorted(results["scaling"], key=lambda r: r["n"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r["n"] for r in rows], y=[r["bfs_queries"] for r in rows], mode="lines+markers+text",
                             text=[r["network"] for r in rows], textposition="top left",
                             name="BFS, perfect expert (1 + visited)"))
    fig.add_trace(go.Scatter(x=[r["n"] for r in rows], y=[r["pairwise_queries"] for r in rows], mode="lines+markers",
                             name="pairwise n(n-1)/2"))
    for m, sym in (("bfs", "diamond"), ("bfs_stats", "star"), ("pairwise", "x")):
        pts = [(len(d["nodes"]), d["methods"][m]["queries"]) for d in results["datasets"].values() if m in d["methods"]]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                                     marker=dict(symbol=sym, size=11), name=f"{NAMES[m]}: this run"))
    fig.update_layout(title="LLM queries vs number of variables", xaxis_title="variables n",
                      yaxis_title="queries", yaxis_type="log", height=380)
    return fig
