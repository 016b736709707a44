"""Completion list: one row per completion (prompt, text, token counts, latency), a selector to read
one in full. Fed plain dicts: ``{"prompt", "text", "prompt_tokens", "completion_tokens",
"latency_s", "finish_reason"}``."""
from __future__ import annotations

import html
from typing import Any, Sequence

import ipywidgets as W


def _table_html(rows: Sequence[dict[str, Any]]) -> str:
    head = "<tr><th>#</th><th>prompt</th><th>completion</th><th>prompt tok</th><th>new tok</th><th>latency s</th><th>finish</th></tr>"
    body = []
    for i, r in enumerate(rows):
        body.append(
            "<tr>" + "".join(f"<td style='padding:2px 6px;vertical-align:top'>{c}</td>" for c in [
                i, html.escape(str(r["prompt"]))[:80], html.escape(str(r["text"]))[:160],
                r["prompt_tokens"], r["completion_tokens"], f"{r['latency_s']:.2f}", r["finish_reason"]]) + "</tr>")
    return f"<table style='border-collapse:collapse;font-size:12px'>{head}{''.join(body)}</table>"


def completion_list(rows: Sequence[dict[str, Any]]) -> W.VBox:
    """A table of completions and a selector showing one completion in full."""
    rows = list(rows)
    table = W.HTML(_table_html(rows))
    pick = W.Dropdown(options=[(f"{i}: {str(r['prompt'])[:40]}", i) for i, r in enumerate(rows)],
                      value=0 if rows else None, description="show")
    detail = W.HTML()

    def show(change=None):
        if pick.value is None:
            detail.value = "<i>no completions</i>"
            return
        r = rows[pick.value]
        detail.value = (f"<b>prompt</b><pre style='white-space:pre-wrap'>{html.escape(str(r['prompt']))}</pre>"
                        f"<b>completion</b> ({r['completion_tokens']} tokens, {r['finish_reason']})"
                        f"<pre style='white-space:pre-wrap'>{html.escape(str(r['text']))}</pre>")

    pick.observe(show, names="value")
    show()
    box = W.VBox([table, pick, detail])
    box.rows, box.pick, box.detail = rows, pick, detail  # for tests and programmatic use
    return box
