"""Views of ``workbench.autobench.run`` results: the complexity sweep, the head-to-head table, and the
rounds of one episode in the causal graph viewer (the hypothesis after each round)."""
from __future__ import annotations

from typing import Any, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .causal_graph import causal_graph_viewer


def episode_steps(ep: Mapping[str, Any]) -> list[dict]:
    """One viewer step per round: the hypothesis stated that round (a malformed round keeps the previous one)."""
    names = ep["names"]
    steps, edges = [], []
    for h in ep["history"]:
        if h["malformed"]:
            how = {"lenient": "read only by a lenient fallback"}.get(h.get("parse"), "unreadable")
            cut = ", truncated" if h.get("truncated") else ""
            label = f"round {h['round']}: malformed answer ({how}{cut}: {h.get('error', '')}), round lost"
        else:
            m = h["hypothesis"]
            edges = [[names[i], names[j]] for i in range(len(m)) for j in range(len(m)) if m[i][j]]
            if ep["setting"] == "social":
                edges = [e for e in edges if e[0] < e[1]]
            act = ("<b>correct</b>: episode solved" if h.get("correct") else
                   f"intervene on {names[h['intervention']]} -> changed: "
                   f"{', '.join(names[j] for j in h['observed']) or 'nothing'}")
            jc = h.get("justification_check", {})
            label = (f"round {h['round']}: similarity {h['similarity']:.2f}; {act}; justification "
                     f"{'valid' if jc.get('valid') else 'not valid'}")
        steps.append({"label": label, "edges": list(edges)})
    return steps


def episode_viewer(ep: Mapping[str, Any]):
    names = ep["names"]
    a = ep["true_adj"]
    true = [[names[i], names[j]] for i in range(len(a)) for j in range(len(a)) if a[i][j]]
    directed = ep["setting"] == "chemistry"
    if not directed:
        true = [e for e in true if e[0] < e[1]]
    steps = episode_steps(ep) or [{"label": "no rounds", "edges": []}]
    return causal_graph_viewer(names, true, steps, directed=directed,
                               title=f"{ep['agent']} on a {ep['setting']} graph of {ep['n']} nodes "
                                     f"({'solved in round ' + str(ep['rounds']) if ep['success'] else 'not solved'})")


def sweep_figure(results: Mapping[str, Any], metric: str = "success_rate") -> go.Figure:
    """``metric`` vs graph size, one panel per setting, one line per agent."""
    settings = sorted({r["setting"] for r in results["sweep"]})
    fig = make_subplots(rows=1, cols=len(settings), subplot_titles=settings, shared_yaxes=True)
    agents = list(dict.fromkeys(r["agent"] for r in results["sweep"]))
    for col, s in enumerate(settings, 1):
        for a in agents:
            rows = sorted((r for r in results["sweep"] if r["setting"] == s and r["agent"] == a), key=lambda r: r["n"])
            fig.add_trace(go.Scatter(x=[r["n"] for r in rows], y=[r[metric] for r in rows], mode="lines+markers",
                                     name=a, legendgroup=a, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="nodes", row=1, col=col)
    fig.update_layout(title=f"{metric} vs graph size", height=340)
    return fig


def head_to_head_figure(results: Mapping[str, Any]) -> go.Figure:
    """Success, similarity, justification validity and malformed rate of every agent on the LLM's episodes."""
    h2h = results["llm"]["head_to_head"]
    metrics = ("success_rate", "similarity", "justification_validity", "malformed_rate")
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics)
    for col, m in enumerate(metrics, 1):
        for agent, d in h2h.items():
            xs = list(d)
            ys = [d[s][m] for s in xs]
            fig.add_trace(go.Bar(x=xs, y=[None if v != v else v for v in ys], name=agent, legendgroup=agent,
                                 showlegend=col == 1), row=1, col=col)
    fig.update_layout(barmode="group", height=330, legend=dict(orientation="h", y=-0.2))
    return fig
