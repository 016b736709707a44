"""MATH^2 views: the review station (browse generated questions with their stage-by-stage trail,
accept / edit / reject into the annotation store, filter by skill and status), the per-stage yield
funnel and the square-law plot. All take the plain data ``workbench.math2.run`` returns."""
from __future__ import annotations

import html
import json
from typing import Any, Sequence

import ipywidgets as W
import plotly.graph_objects as go

STAGE_TITLES = {"pair_validation": "1. skill-pair validation", "generation": "2. question generation",
                "attempt": "3. attempted solution (flaw-seeking)", "validation": "4. rubric validation (majority vote)",
                "final_solution": "5. final solution (majority vote)"}


def _pre(text: Any) -> str:
    if not isinstance(text, str):
        text = json.dumps(text, indent=1, default=str)
    return f"<pre style='white-space:pre-wrap;margin:2px 0;background:#f6f6f6;padding:4px'>{html.escape(text)}</pre>"


def trail_html(cand: dict, *, show_prompts: bool = False) -> str:
    """The audit trail of one candidate as HTML: every stage's decision, raw outputs (and prompts)."""
    head = (f"<b>{html.escape(cand['id'])}</b> &mdash; skills: <i>{html.escape(cand['skills'][0])}</i> + "
            f"<i>{html.escape(cand['skills'][1])}</i><br>pipeline: <b>{cand['status']}</b>")
    if cand.get("dropped_at"):
        head += f" at {html.escape(cand['dropped_at'])} ({html.escape(str(cand.get('reason')))})"
    if cand.get("answer") is not None:
        head += f"<br>majority answer: <code>{html.escape(str(cand['answer']))}</code>"
    parts = [head]
    for stage, title in STAGE_TITLES.items():
        st = cand.get("stages", {}).get(stage)
        if st is None:
            parts.append(f"<details><summary>{title}: not reached</summary></details>")
            continue
        body = ""
        if show_prompts:
            body += "<i>prompt</i>" + _pre(st["prompt"] if isinstance(st["prompt"], str)
                                           else "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in st["prompt"]))
        for i, raw in enumerate(st.get("raw", [])):
            body += f"<i>output {i + 1}</i>" + _pre(raw or "(empty)")
        body += "<i>parsed</i>" + _pre(st.get("parsed"))
        parts.append(f"<details{' open' if stage == 'validation' else ''}><summary>{title}: "
                     f"<b>{html.escape(str(st.get('decision')))}</b></summary>{body}</details>")
    return "".join(parts)


class ReviewStation(W.VBox):
    """Browse candidates, read their trail, and write reviews to an :class:`AnnotationStore`.

    ``candidates``: ``results["candidates"]``. ``store``: the store (or None for read-only browsing).
    Questions the generator never produced have nothing to review and are listed but not editable.
    """

    def __init__(self, candidates: Sequence[dict], store=None, *, show_prompts: bool = False):
        self.cands = {c["id"]: c for c in candidates}
        self.store = store
        self.show_prompts = show_prompts
        skills = sorted({s for c in candidates for s in c["skills"]})
        self.skill_filter = W.Dropdown(options=["(all)"] + skills, description="skill")
        self.status_filter = W.Dropdown(options=["(all)", "kept", "dropped", "pending", "edited", "accepted",
                                                 "rejected"], description="status")
        self.picker = W.Select(options=[], rows=8, description="question", layout=W.Layout(width="340px"))
        self.trail = W.HTML()
        self.question = W.Textarea(description="question", layout=W.Layout(width="95%", height="90px"))
        self.answer = W.Text(description="answer")
        self.reason = W.Text(description="reason", placeholder="needed to reject")
        self.accept_button = W.Button(description="Accept", button_style="success")
        self.edit_button = W.Button(description="Save edit", button_style="info")
        self.reject_button = W.Button(description="Reject", button_style="danger")
        self.message = W.HTML()
        self.history = W.HTML()
        for b, action in ((self.accept_button, "accept"), (self.edit_button, "edit"), (self.reject_button, "reject")):
            b.on_click(lambda _b, a=action: self._review(a))
            b.disabled = store is None
        if store is None:
            self.message.value = "<i>read-only: no annotation store given</i>"
        self.skill_filter.observe(lambda _: self._refilter(), "value")
        self.status_filter.observe(lambda _: self._refilter(), "value")
        self.picker.observe(lambda _: self._show(), "value")
        super().__init__([W.HBox([self.skill_filter, self.status_filter]),
                          W.HBox([self.picker, W.VBox([self.question, self.answer, self.reason,
                                                       W.HBox([self.accept_button, self.edit_button, self.reject_button]),
                                                       self.message], layout=W.Layout(width="60%"))]),
                          self.trail, self.history])
        self._refilter()

    # -------------------------------------------------------------------------------- helpers
    def review_status(self, qid: str) -> str | None:
        """Latest status in the store (None if the question is not there)."""
        if self.store is None:
            return None
        try:
            return self.store.latest(qid)["status"]
        except KeyError:
            return None

    def _matches(self, c: dict) -> bool:
        if self.skill_filter.value != "(all)" and self.skill_filter.value not in c["skills"]:
            return False
        f = self.status_filter.value
        if f == "(all)":
            return True
        if f in ("kept", "dropped"):
            return c["status"] == f
        return self.review_status(c["id"]) == f

    def _refilter(self) -> None:
        ids = [i for i, c in self.cands.items() if self._matches(c)]
        self.picker.options = [(f"{i} [{self.review_status(i) or self.cands[i]['status']}]", i) for i in ids]
        self.picker.value = ids[0] if ids else None
        self._show()

    def _show(self) -> None:
        qid = self.picker.value
        if qid is None:
            self.trail.value, self.history.value = "<i>no question matches the filters</i>", ""
            return
        c = self.cands[qid]
        self.trail.value = trail_html(c, show_prompts=self.show_prompts)
        latest = None
        if self.store is not None:
            try:
                latest = self.store.latest(qid)
            except KeyError:
                latest = None
        self.question.value = (latest or {}).get("question") or c.get("question") or ""
        self.answer.value = str((latest or {}).get("answer") or c.get("answer") or "")
        editable = self.store is not None and latest is not None
        for b in (self.accept_button, self.edit_button, self.reject_button):
            b.disabled = not editable
        if self.store is not None and latest is None:
            self.message.value = "<i>nothing to review: no question was generated</i>"
        self.history.value = self._history_html(qid) if latest is not None else ""

    def _history_html(self, qid: str) -> str:
        rows = "".join(f"<tr><td>{h['version']}</td><td>{h['action']}</td><td>{h['status']}</td>"
                       f"<td>{html.escape(str(h['question']))[:120]}</td><td>{html.escape(str(h['answer']))}</td>"
                       f"<td>{html.escape(str(h['reason'] or ''))}</td><td>{h['created_at']}</td></tr>"
                       for h in self.store.history(qid))
        return ("<b>history (append-only)</b><table><tr><th>v</th><th>action</th><th>status</th><th>question</th>"
                f"<th>answer</th><th>reason</th><th>when</th></tr>{rows}</table>")

    def _review(self, action: str) -> None:
        qid = self.picker.value
        if qid is None or self.store is None:
            return
        kw: dict[str, Any] = {}
        if action == "edit":
            kw = {"question": self.question.value, "answer": self.answer.value}
        if action == "reject":
            kw = {"reason": self.reason.value}
        try:
            row = self.store.review(qid, action, **kw)
        except (ValueError, KeyError) as e:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"
            return
        self.message.value = f"saved version {row['version']}: <b>{row['status']}</b>"
        self.history.value = self._history_html(qid)


def review_station(candidates: Sequence[dict], store=None, **kw) -> ReviewStation:
    """Build the review station (see :class:`ReviewStation`)."""
    return ReviewStation(candidates, store, **kw)


def yield_figure(yields: dict[str, int], title: str = "Questions surviving each stage") -> go.Figure:
    """Funnel of the per-stage yields (``results["summary"]["yields"]``)."""
    names = ["pairs_sampled", "pair_validation", "generation", "attempt", "validation", "final_solution"]
    fig = go.Figure(go.Funnel(y=[n.replace("_", " ") for n in names], x=[yields.get(n, 0) for n in names],
                              textinfo="value"))
    fig.update_layout(title=title, height=360, margin=dict(l=140, r=20, t=50, b=30))
    return fig


def square_law_figure(square_law: dict) -> go.Figure:
    """Accuracy on pair questions vs on single-skill questions: the paper's rows, our points, y = x^2."""
    xs = [i / 100 for i in range(101)]
    fig = go.Figure(go.Scatter(x=xs, y=[x * x for x in xs], mode="lines", name="y = x²", line=dict(dash="dash")))
    fig.add_trace(go.Scatter(x=xs, y=xs, mode="lines", name="y = x", line=dict(dash="dot", color="#bbb")))
    t = square_law.get("paper_table", [])
    fig.add_trace(go.Scatter(x=[r["math"] / 100 for r in t], y=[r["math2"] / 100 for r in t], mode="markers+text",
                             text=[r["model"] for r in t], textposition="top left", name="paper (MATH vs MATH²)",
                             marker=dict(size=10, symbol="diamond")))
    pts = {k: v for k, v in square_law.get("points", {}).items() if v[0] is not None and v[1] is not None}
    if pts:
        fig.add_trace(go.Scatter(x=[v[0] for v in pts.values()], y=[v[1] for v in pts.values()], mode="markers+text",
                                 text=list(pts), textposition="bottom right", name="this run (seed vs generated)",
                                 marker=dict(size=11)))
    fig.update_layout(title="Square law: accuracy on skill pairs vs single skills", xaxis_title="accuracy on singles",
                      yaxis_title="accuracy on pairs", xaxis_range=[0, 1], yaxis_range=[0, 1], height=420)
    return fig
