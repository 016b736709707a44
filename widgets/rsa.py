"""RSA population inspector: views fed the plain dict that ``workbench.rsa.run`` returns.

- :func:`population_inspector`: problem dropdown and step slider; the population at that step as cards
  (answer, correct or not, length, parents), the lineage graph across steps with the step highlighted,
  the answer distribution at that step, and the metric curves of RSA and the baselines.
- :func:`metric_curves`, :func:`k_sweep_figure`, :func:`lineage_figure`, :func:`answer_counts`: the
  pieces, usable alone (plain plotly figures).

No model and no computation beyond indexing and counting live here.
"""
from __future__ import annotations

import html
from collections import Counter
from typing import Any, Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

_NAMES = {"rsa": "RSA", "majority_vote": "majority vote (N·t samples)",
          "best_of_n_verify": "best-of-m + self-verification", "self_refine": "self-refinement (K=1)"}
_METRICS = {"accuracy": "accuracy of the method's answer (strict)", "mean_acc": "mean accuracy (expected Pass@1)",
            "accuracy_lenient": "accuracy, lenient reading",
            "majority_acc": "majority-vote accuracy", "pass_at_n": "Pass@N", "distinct_answers": "distinct answers",
            "cum_completion_tokens": "cumulative completion tokens"}


def _series(results: Mapping[str, Any]) -> dict[str, list[dict]]:
    out = {"rsa": results["rsa"]["steps"]}
    out.update({k: v["steps"] for k, v in results.get("baselines", {}).items()})
    return out


def metric_curves(results: Mapping[str, Any], metrics=("accuracy", "mean_acc", "majority_acc", "pass_at_n")) -> go.Figure:
    """Metrics vs budget (generations per problem, N·t at step t) for RSA and each baseline."""
    metrics = list(metrics)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[_METRICS.get(m, m) for m in metrics])
    colors = {"rsa": "#d62728", "majority_vote": "#1f77b4", "best_of_n_verify": "#2ca02c", "self_refine": "#9467bd"}
    for col, m in enumerate(metrics, 1):
        for name, steps in _series(results).items():
            pts = [(s["generations"], s[m]) for s in steps if m in s and s[m] is not None]
            if not pts:
                continue
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     name=_NAMES.get(name, name), legendgroup=name, showlegend=col == 1,
                                     line=dict(color=colors.get(name))), row=1, col=col)
        fig.update_xaxes(title_text="generations per problem", row=1, col=col)
    fig.update_layout(height=330, margin=dict(t=40, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def k_sweep_figure(results: Mapping[str, Any], metric: str = "mean_acc") -> go.Figure:
    """``metric`` vs step for each K of the sweep (plus the self-refinement baseline as K=1 when the
    sweep has no K=1 of its own)."""
    fig = go.Figure()
    sweep = results.get("k_sweep", {})
    sr = results.get("baselines", {}).get("self_refine")
    if sr is not None and "1" not in sweep and metric in sr["steps"][0]:
        fig.add_trace(go.Scatter(x=[s["step"] for s in sr["steps"]], y=[s[metric] for s in sr["steps"]],
                                 mode="lines+markers", name="K=1 (self-refinement of own slot)", line=dict(dash="dot")))
    for k, v in sorted(sweep.items(), key=lambda kv: int(kv[0])):
        fig.add_trace(go.Scatter(x=[s["step"] for s in v["steps"]], y=[s[metric] for s in v["steps"]],
                                 mode="lines+markers", name=f"K={k}"))
    fig.update_layout(title=f"RSA {_METRICS.get(metric, metric)} vs step, by subset size K", xaxis_title="step t",
                      yaxis_title=metric, height=330)
    return fig


def lineage_figure(populations: list, problem: int, highlight_step: int | None = None) -> go.Figure:
    """Candidates as nodes (x = step, y = slot; green correct, red wrong, grey unparsed) with edges from
    each candidate's parents in the previous step. ``populations`` has shape (steps, problems, N)."""
    fig = go.Figure()
    ex, ey = [], []
    for t in range(1, len(populations)):
        for slot, c in enumerate(populations[t][problem]):
            for par in c["parents"]:
                ex += [t, t + 1, None]
                ey += [par, slot, None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                             hoverinfo="skip", showlegend=False))
    xs, ys, col, txt, size = [], [], [], [], []
    for t, pop in enumerate(populations, 1):
        for slot, c in enumerate(pop[problem]):
            xs.append(t)
            ys.append(slot)
            col.append("#2ca02c" if c["correct"] else ("#999999" if c["answer"] is None else "#d62728"))
            txt.append(f"step {t}, slot {slot}<br>answer: {html.escape(str(c['answer']))[:60]}<br>"
                       f"parents: {c['parents']}<br>{c['completion_tokens']} tokens")
            size.append(16 if highlight_step == t else 10)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(color=col, size=size, line=dict(width=1)),
                             hovertext=txt, hoverinfo="text", showlegend=False))
    fig.update_layout(title="lineage (green = correct, red = wrong, grey = unparsed)", xaxis_title="step",
                      yaxis_title="slot", height=300, margin=dict(t=40, b=40),
                      xaxis=dict(dtick=1), yaxis=dict(dtick=1))
    return fig


def answer_counts(populations: list, problem: int, step: int) -> list[tuple[str, int]]:
    """(answer, count) at ``step`` (1-based), most common first; unparsed shown as '(unparsed)'.

    >>> pops = [[[{"answer": "3"}, {"answer": "3"}, {"answer": None}]]]
    >>> answer_counts(pops, 0, 1)
    [('3', 2), ('(unparsed)', 1)]
    """
    cnt = Counter("(unparsed)" if c["answer"] is None else str(c["answer"])[:40] for c in populations[step - 1][problem])
    return cnt.most_common()


def population_cards(populations: list, problem: int, step: int, gold: str | None = None) -> str:
    """HTML cards of the population at ``step``: answer, correct or not, length, parents, full text."""
    cards = []
    for slot, c in enumerate(populations[step - 1][problem]):
        ok = c["correct"]
        border = "#2ca02c" if ok else "#d62728"
        cards.append(
            f"<div style='border:2px solid {border};border-radius:6px;padding:6px;margin:3px;width:230px;"
            f"display:inline-block;vertical-align:top;font-size:12px'>"
            f"<b>slot {slot}</b> {'&#10003; correct' if ok else '&#10007; wrong'} (strict)<br>"
            f"answer: <code>{html.escape(str(c['answer']))[:80]}</code> ({c.get('category', c['parse'] or 'unparsed')})<br>"
            + (f"lenient reading: <code>{html.escape(str(c['answer_lenient']))[:80]}</code> ({c['parse'] or 'unparsed'}, "
               f"{'correct' if c.get('correct_lenient') else 'wrong'})<br>" if "answer_lenient" in c else "")
            + f"length: {c['completion_tokens']} tokens ({c['finish_reason']}{', truncated' if c.get('truncated') else ''})<br>"
            f"parents: {c['parents'] if c['parents'] else '&mdash;'}"
            f"<details><summary>text</summary><pre style='white-space:pre-wrap;max-height:200px;overflow:auto'>"
            f"{html.escape(c['text'])}</pre></details></div>")
    head = f"<div><b>gold answer:</b> <code>{html.escape(str(gold))}</code></div>" if gold is not None else ""
    return head + "".join(cards)


def population_inspector(results: Mapping[str, Any], populations: list | None = None):
    """The interactive inspector (ipywidgets). ``populations`` defaults to RSA's."""
    import ipywidgets as W

    pops = populations if populations is not None else results["rsa"]["populations"]
    problems = results["task"]["problems"]
    n_steps = len(pops)
    dd = W.Dropdown(options=[(f"{i}: {p['id']}", i) for i, p in enumerate(problems)], value=0, description="problem")
    sl = W.IntSlider(value=n_steps, min=1, max=n_steps, description="step", continuous_update=False)
    question = W.HTML()
    cards = W.HTML()
    lineage = go.FigureWidget(lineage_figure(pops, 0, n_steps))
    dist = go.FigureWidget(go.Bar(x=[], y=[]))
    dist.update_layout(title="answers at this step", height=300, margin=dict(t=40, b=40))
    curves = go.FigureWidget(metric_curves(results))

    def update(problem, step):
        p = problems[problem]
        question.value = f"<pre style='white-space:pre-wrap'>{html.escape(p['question'])[:1500]}</pre>"
        cards.value = population_cards(pops, problem, step, p["answer"])
        lf = lineage_figure(pops, problem, step)
        ac = answer_counts(pops, problem, step)
        with lineage.batch_update():
            for i, tr in enumerate(lf.data):
                lineage.data[i].x, lineage.data[i].y = tr.x, tr.y
                if tr.marker is not None and tr.marker.color is not None:
                    lineage.data[i].marker.color, lineage.data[i].marker.size = tr.marker.color, tr.marker.size
                    lineage.data[i].hovertext = tr.hovertext
        with dist.batch_update():
            dist.data[0].x = [a for a, _ in ac]
            dist.data[0].y = [c for _, c in ac]
            dist.data[0].marker.color = ["#2ca02c" if any(c["correct"] and str(c["answer"])[:40] == a
                                                          for c in pops[step - 1][problem]) else "#d62728" for a, _ in ac]

    out = W.interactive_output(update, {"problem": dd, "step": sl})
    return W.VBox([W.HBox([dd, sl]), question, cards, W.HBox([lineage, dist]), curves, out])
