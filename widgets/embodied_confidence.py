"""Views of an embodied-confidence run (the dict ``workbench.confidence.run`` returns): a Table-1-style
table with the paper's numbers beside, reliability diagrams, a confidence timeline and the trace viewer
(frame per step, question, answer, confidence per stage, outcome). Plain data in, no model inside.
"""
from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

__all__ = ["PAPER_TABLE1", "results_table", "effects_table", "reliability_figure", "timeline_figure", "step_html",
           "trace_viewer"]

# arXiv 2503.10628 Table 1 (from the authors' project-site data, PAPERS.md): Vanilla/Self-Int/CoT/P&S/Top-K
PAPER_TABLE1 = {
    "GPT-4V": {"ece": [.27, .21, .16, .15, .17], "auroc": [.69, .76, .83, .82, .73],
               "pr_p": [.66, .76, .81, .79, .70], "pr_n": [.52, .53, .58, .55, .53]},
    "STEVE": {"ece": [.43, .32, .26, .26, .35], "auroc": [.58, .69, .72, .67, .68]},
}
_PAPER_ORDER = ["vanilla", "self_intervention", "cot", "plan_solve", "top_k"]


def results_table(results: dict, stage: str = "perception", paper_model: str | None = "GPT-4V") -> pd.DataFrame:
    """One row per policy combination. Units: ``steps`` is a count of graded steps; every other column
    is a share (0-1) or a metric. Parse shares are of completions (an execution policy sends K per step):
    strict (the asked format), lenient only (only the lenient reader found an answer and a confidence),
    unparsed, truncated (``finish_reason == "length"``). Accuracy, ECE, AUROC, PR-P, PR-N use the strict
    reads (an unreadable answer is not correct; an unreadable confidence leaves the step out of the
    calibration metrics, see ``calibrated``, a share of steps); the lenient ECE / AUROC sit beside,
    labelled. Then task success and, for the five elicitation policies, the paper's numbers for
    ``paper_model``."""
    rows = []
    for name in results["combos"]:
        m = results["table"][name][stage]
        n = m["n"]
        row = {"policy": name, "steps": n, "parsed strict": m["strict"], "lenient only": m["lenient_only"],
               "unparsed": m["unparsed"], "truncated": m["truncated"], "accuracy": m["accuracy"],
               "answer unreadable": m["answer_unreadable"],
               "calibrated": m["n_cal"] / n if n else float("nan"), "mean_conf": m["mean_conf"],
               "ECE": m["ece"], "ECE se": m["ece_se"], "AUROC": m["auroc"], "AUROC se": m["auroc_se"],
               "Brier": m["brier"], "PR-P": m["pr_p"], "PR-N": m["pr_n"],
               "ECE (lenient)": m["ece_lenient"], "AUROC (lenient)": m["auroc_lenient"],
               "task success": results["table"][name]["task_success"]}
        if paper_model and name in _PAPER_ORDER:
            i = _PAPER_ORDER.index(name)
            for k, v in PAPER_TABLE1[paper_model].items():
                row[f"paper {k.upper().replace('_', '-')}"] = v[i]
        rows.append(row)
    return pd.DataFrame(rows).set_index("policy")


def effects_table(results: dict) -> pd.DataFrame:
    """The paper's comparisons on this run: each policy combination minus Vanilla, AUROC and ECE per
    stage, with standard errors (bootstrap over graded steps, the two cells independent)."""
    rows = []
    for comp, d in results.get("effects", {}).items():
        for stage, m in d.items():
            rows.append({"comparison": comp, "stage": stage, "AUROC diff": m["auroc"], "AUROC diff se": m["auroc_se"],
                         "ECE diff": m["ece"], "ECE diff se": m["ece_se"]})
    return pd.DataFrame(rows)


def reliability_figure(results: dict, stage: str = "perception") -> go.Figure:
    """Reliability diagram: per-bin accuracy against mean stated confidence, one trace per policy
    (marker size ~ bin count), with the diagonal of perfect calibration."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"),
                             name="perfect calibration"))
    for name in results["combos"]:
        d = results["reliability"][name][stage]
        if d is None:
            continue
        pts = [(c, a, k) for c, a, k in zip(d["confidence"], d["accuracy"], d["count"]) if k]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                 marker=dict(size=[6 + 3 * p[2] ** 0.5 for p in pts]), name=name,
                                 text=[f"n={p[2]}" for p in pts]))
    fig.update_layout(title=f"Reliability diagram ({stage} stage)", xaxis_title="stated confidence",
                      yaxis_title="accuracy", xaxis_range=[0, 1], yaxis_range=[-0.05, 1.05], height=420)
    return fig


def timeline_figure(episode: dict) -> go.Figure:
    """Stated confidence per step for both stages; filled markers = correct / succeeded, open = not."""
    fig = go.Figure()
    for stage, key in (("perception", "correct"), ("action", "success")):
        xs = [s["step"] for s in episode["steps"]]
        ys = [s[stage]["conf"] for s in episode["steps"]]
        ok = [bool(s[stage][key]) for s in episode["steps"]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=stage,
                                 marker=dict(size=12, symbol=["circle" if o else "circle-open" for o in ok])))
    fig.update_layout(title=f"{episode['task']} / {episode['combo']} (success: {episode['success']})",
                      xaxis_title="step", yaxis_title="stated confidence", yaxis_range=[0, 1.05], height=300)
    return fig


def _fmt(v) -> str:
    return "unparsed" if v is None else f"{v:.2f}" if isinstance(v, float) else html.escape(str(v))


def _parse_note(d: dict) -> str:
    """How the samples of a stage were read (strict / lenient / unparsed, truncated ones marked)."""
    parse = d.get("parse")
    if not parse:
        return ""
    marks = [p + (" (truncated)" if f == "length" else "") for p, f in zip(parse, d.get("finish", [""] * len(parse)))]
    return f" <small>[read: {', '.join(marks)}]</small>"


def step_html(episode: dict, step: int) -> str:
    """HTML for one step: frame, scene text, what the model saw (text, or text + image), question + truth,
    answers, confidences, outcomes."""
    s = episode["steps"][step]
    p, a = s["perception"], s["action"]
    raw_p = "<br>".join(html.escape(t) for t in p["texts"])
    raw_a = "<br>".join(html.escape(t) for t in a["texts"])
    img = s.get("prompt_image")
    seen = ("text only" if not img else
            f"text + image ({img['shape'][0]}x{img['shape'][1]} PNG, sha256 {img['sha256'][:12]}...)")
    return (f"<div style='display:flex;gap:16px'><img src='data:image/png;base64,{s['frame_png']}' "
            f"style='image-rendering:pixelated;width:192px;height:192px'/>"
            f"<pre style='font-size:11px'>{html.escape(s['scene'])}</pre></div>"
            f"<b>Task</b> {html.escape(episode['goal'])} &middot; <b>policy</b> {episode['combo']} &middot; "
            f"step {s['step']} &middot; task success so far: {s['task_success']} &middot; model saw: {seen}<br>"
            f"<b>Perception</b>: {html.escape(s['question'])} truth={s['truth']} &rarr; answer "
            f"<b>{_fmt(p['answer'])}</b>, confidence <b>{_fmt(p['conf'])}</b>, "
            f"{'correct' if p['correct'] else 'wrong'}{_parse_note(p)}<br>"
            f"<b>Action</b>: skill <b>{_fmt(a['skill'])}</b> (ran {a['skill_run']}), confidence "
            f"<b>{_fmt(a['conf'])}</b>, {'progress' if a['success'] else 'no progress'} (decided by the "
            f"environment){_parse_note(a)}; primitives {s['primitives']}"
            f"<details><summary>model output</summary><small>perception: {raw_p}<br>action: {raw_a}</small>"
            f"</details>")


def trace_viewer(results: dict):
    """Episode picker + step slider showing :func:`step_html` and the episode's confidence timeline."""
    import ipywidgets as w

    eps = results["episodes"]
    if not eps:
        raise ValueError("results hold no episodes")
    pick = w.Dropdown(options=[(f"{e['task']} | {e['combo']}", i) for i, e in enumerate(eps)],
                      description="episode", layout=w.Layout(width="420px"))
    step = w.IntSlider(min=0, max=max(len(eps[0]["steps"]) - 1, 0), description="step")
    fig = go.FigureWidget(timeline_figure(eps[0]))

    def on_pick(change):
        e = eps[change["new"]]
        step.max = max(len(e["steps"]) - 1, 0)
        step.value = 0
        new = timeline_figure(e)
        with fig.batch_update():
            for tr, nt in zip(fig.data, new.data):
                tr.x, tr.y, tr.marker = nt.x, nt.y, nt.marker
            fig.layout.title = new.layout.title

    pick.observe(on_pick, names="value")
    out = w.interactive_output(lambda i, k: _show(eps[i], k), {"i": pick, "k": step})
    return w.VBox([w.HBox([pick, step]), out, fig])


def _show(episode: dict, k: int) -> None:
    from IPython.display import HTML, display

    if episode["steps"]:
        display(HTML(step_html(episode, min(k, len(episode["steps"]) - 1))))
