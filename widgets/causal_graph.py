"""Causal graph viewer shared by the ``causal_bfs`` and ``autobench`` notebooks.

- :func:`graph_figure`: the true graph against one estimate; edges coloured correct (green), extra
  (orange), missing (light grey) and reversed (purple, drawn in the predicted direction).
- :func:`causal_graph_viewer`: the same with a step slider through a sequence of estimates (the BFS
  traversal, one step per query; or the Auto-Bench rounds, one step per round).

Fed plain data (node names, edge lists); the edge classes of every step are computed once when the
viewer is built, so the slider callback only indexes into them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as W
import networkx as nx
import plotly.graph_objects as go

from workbench.graphs import classify_edges

COLORS = {"correct": "#2ca02c", "extra": "#ff7f0e", "missing": "#c7c7c7", "reversed": "#9467bd"}
LABELS = {"correct": "correct", "extra": "extra", "missing": "missing", "reversed": "reversed"}


def layout_positions(nodes: Sequence[str], true_edges, directed: bool = True) -> dict[str, tuple[float, float]]:
    """Node positions: layers by topological generation for a DAG (causes on top), a circle otherwise."""
    g = nx.DiGraph() if directed else nx.Graph()
    g.add_nodes_from(nodes)
    g.add_edges_from(tuple(e) for e in true_edges)
    if directed and nx.is_directed_acyclic_graph(g):
        for layer, gen in enumerate(nx.topological_generations(g)):
            for v in gen:
                g.nodes[v]["layer"] = layer
        pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal", scale=1.0)
        return {v: (float(x), float(-y)) for v, (x, y) in pos.items()}
    pos = nx.circular_layout(g)
    return {v: (float(x), float(y)) for v, (x, y) in pos.items()}


def _edge_classes(true_edges, pred_edges, directed: bool) -> dict[str, list[tuple[str, str]]]:
    t = {tuple(e) for e in true_edges}
    p = {tuple(e) for e in pred_edges}
    if not directed:  # compare unordered pairs; draw each once
        t = {tuple(sorted(e)) for e in t}
        p = {tuple(sorted(e)) for e in p}
        return {"correct": sorted(t & p), "extra": sorted(p - t), "missing": sorted(t - p), "reversed": []}
    return classify_edges(t, p)


def _annotations(classes, pos, directed: bool) -> list[dict]:
    out = []
    for cls in ("missing", "correct", "reversed", "extra"):
        for u, v in classes[cls]:
            (x0, y0), (x1, y1) = pos[u], pos[v]
            out.append(dict(x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="",
                            showarrow=True, arrowhead=2 if directed else 0, arrowsize=1.2, standoff=14,
                            startstandoff=14, arrowwidth=2.5 if cls != "missing" else 2,
                            arrowcolor=COLORS[cls], opacity=0.95))
    return out


def graph_figure(nodes: Sequence[str], true_edges, pred_edges, *, pos: Mapping | None = None,
                 directed: bool = True, title: str = "", widget: bool = False) -> go.Figure:
    """True vs predicted graph, edges coloured by class; ``widget=True`` returns a ``go.FigureWidget``."""
    pos = dict(pos or layout_positions(nodes, true_edges, directed))
    classes = _edge_classes(true_edges, pred_edges, directed)
    fig = (go.FigureWidget if widget else go.Figure)()
    fig.add_trace(go.Scatter(x=[pos[v][0] for v in nodes], y=[pos[v][1] for v in nodes], mode="markers+text",
                             text=list(nodes), textposition="middle center", hoverinfo="text",
                             marker=dict(size=34, color="#f7f7f7", line=dict(color="#444", width=1.5)),
                             textfont=dict(size=10), showlegend=False))
    for cls in ("correct", "extra", "missing", "reversed"):  # legend entries for the arrow colours
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color=COLORS[cls], width=3),
                                 name=f"{LABELS[cls]} ({len(classes[cls])})"))
    fig.update_layout(annotations=_annotations(classes, pos, directed), title=title, height=460,
                      xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white",
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.02))
    return fig


def causal_graph_viewer(nodes: Sequence[str], true_edges, steps: Sequence[Mapping], *, directed: bool = True,
                        title: str = "") -> W.VBox:
    """A step slider over ``steps`` (each ``{"label": str, "edges": [[u, v], ...]}``) above the graph view."""
    if not steps:
        raise ValueError("causal_graph_viewer needs at least one step")
    pos = layout_positions(nodes, true_edges, directed)
    classes = [_edge_classes(true_edges, s["edges"], directed) for s in steps]
    annos = [_annotations(c, pos, directed) for c in classes]
    counts = [{k: len(v) for k, v in c.items()} for c in classes]
    fig = graph_figure(nodes, true_edges, steps[-1]["edges"], pos=pos, directed=directed, title=title, widget=True)
    slider = W.IntSlider(value=len(steps) - 1, min=0, max=len(steps) - 1, description="step",
                         continuous_update=False, layout=W.Layout(width="420px"))
    label = W.HTML()

    def show(change=None):
        i = slider.value
        with fig.batch_update():
            fig.layout.annotations = annos[i]
            for tr, cls in zip(fig.data[1:], ("correct", "extra", "missing", "reversed")):
                tr.name = f"{LABELS[cls]} ({counts[i][cls]})"
        label.value = f"<b>step {i}</b>: {steps[i]['label']}"

    slider.observe(show, names="value")
    show()
    return W.VBox([W.HBox([slider]), label, fig])
