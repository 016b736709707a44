"""Run folders a researcher can open: plotly figures that survive the HTML export, compact notebooks.

Three pieces, used by :func:`workbench.runs.run_notebook`:

- **Kernel setup** (:func:`setup_kernel`, run in the notebook's kernel before its first cell through
  ipykernel's ``exec_lines``, see :func:`papermill_options`): plotly's default renderer becomes
  ``plotly_mimetype+workbench_html``, so every ``fig.show()`` output carries plotly's own mimetype (what
  JupyterLab renders) *and* a ``text/html`` view (what nbconvert can export). The HTML view holds the
  figure only; plotly.js is not repeated per figure nor per notebook (plotly's ``notebook`` renderer
  would write the 4.8 MB bundle into the executed ``.ipynb``). Widgets get a ``text/html`` fallback
  too: a note that the widget needs a live kernel, with a static snapshot of the plotly figures inside
  it (``FigureWidget`` children of boxes, figures shown into ``Output`` widgets) as they were when the
  widget was displayed.
- **Compaction**: :func:`compact_notebook` strips the widget state papermill leaves in the executed
  notebook, so no run folder carries a copy of a widget JavaScript bundle (plotly's ``FigureWidget`` is an
  anywidget whose state embeds plotly.js). The state is kept while the notebook runs: nbclient 0.11's
  hook for ``Output`` widgets writes into it, and without it a cell that prints into an ``Output``
  widget fails with a KeyError.
- **HTML export** (:func:`export_html`): nbconvert's HTML with plotly.js embedded once, at the top of
  ``<head>`` (before nbconvert's require.js tag), so the file works offline and stands alone.

Sizes: :data:`RUN_FOLDER_BUDGET_BYTES` is the budget for a run folder at a notebook's CPU default,
checked by the tests; about 4.8 MB of it is the one embedded plotly.js.
"""
from __future__ import annotations

import copy
import html as _html
import os
import re
from pathlib import Path
from typing import Any

import nbformat

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"
RENDERER_NAME = "workbench_html"
RENDERER = f"plotly_mimetype+{RENDERER_NAME}"
SNAPSHOT_CLASS = "workbench-widget-snapshot"
FIGURE_DIV = 'class="plotly-graph-div"'
RUN_FOLDER_BUDGET_BYTES = 8 * 1024 * 1024
"""A run folder at the CPU default stays under this (4.8 MB of it: the plotly.js embedded in the HTML)."""

_KERNEL_LINE = "__import__('workbench.export').export.setup_kernel()"


# ------------------------------------------------------------------------------ in the kernel
def _figure_html(fig: Any) -> str:
    """A figure's HTML view without plotly.js (the export adds plotly.js once per page)."""
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, default_width="100%",
                       default_height=525, validate=False)


def _register_renderer() -> None:
    import plotly.io as pio
    from plotly.io._base_renderers import HtmlRenderer

    # HtmlRenderer with include_plotlyjs=False and no global init: the figure's div and its
    # Plotly.newPlot call, nothing else (plotly's "notebook" renderer would embed plotly.js itself).
    pio.renderers[RENDERER_NAME] = HtmlRenderer(connected=False, full_html=False, global_init=False,
                                                include_plotlyjs=False)
    pio.renderers.default = RENDERER


def _widget_figures(w: Any, seen: set[int] | None = None) -> list[tuple[str, Any]]:
    """``(kind, figure or html)`` for the plotly figures inside widget ``w``: FigureWidgets (also
    nested in boxes) and what was displayed into ``Output`` widgets (their plotly or HTML outputs)."""
    from plotly.basewidget import BaseFigureWidget

    seen = set() if seen is None else seen
    if id(w) in seen:
        return []
    seen.add(id(w))
    if isinstance(w, BaseFigureWidget):
        return [("figure", w.to_dict())]
    found: list[tuple[str, Any]] = []
    for out in getattr(w, "outputs", None) or ():  # an ipywidgets.Output
        data = out.get("data", {}) if isinstance(out, dict) else {}
        if PLOTLY_MIMETYPE in data:
            found.append(("figure", data[PLOTLY_MIMETYPE]))
        elif "text/html" in data:
            found.append(("html", data["text/html"]))
    for child in getattr(w, "children", None) or ():
        found += _widget_figures(child, seen)
    return found


def widget_snapshot_html(w: Any) -> str:
    """The ``text/html`` view of a widget in an export: a note that it needs a live kernel and a
    static snapshot of its plotly figures (at display time)."""
    parts = _widget_figures(w)
    n_fig = sum(k == "figure" for k, _ in parts)
    name = type(w).__name__
    note = (f"Interactive widget ({_html.escape(name)}): it needs a live kernel. Open the notebook in "
            f"Jupyter or serve it with <code>workbench serve</code> to use it.")
    if n_fig:
        note += f" Static snapshot of its {n_fig} figure{'s' if n_fig != 1 else ''} as displayed:"
    body = []
    for kind, item in parts:
        if kind == "figure":
            try:
                body.append(_figure_html(item))
            except Exception as e:  # a figure that plotly cannot serialise: say so, keep the rest
                body.append(f"<p>(figure not exportable: {_html.escape(repr(e))})</p>")
        elif n_fig == 0:
            body.append(item)
    return (f'<div class="{SNAPSHOT_CLASS}" data-figures="{n_fig}"><p style="font-style:italic;'
            f'color:#555">{note}</p>{"".join(body)}</div>')


def _register_widget_fallback() -> None:
    try:
        import ipywidgets
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None:
        return
    # IPython fills mimetypes a _repr_mimebundle_ lacks from its formatters, where a type printer
    # comes first; the front end still prefers the widget view, nbconvert takes this HTML when the
    # widget state is not stored.
    ip.display_formatter.formatters["text/html"].for_type(ipywidgets.Widget, widget_snapshot_html)


def setup_kernel() -> None:
    """Run in a notebook kernel: plotly outputs and widgets get an exportable HTML view."""
    _register_renderer()
    _register_widget_fallback()


def papermill_options(kernel_name: str = "python3") -> dict[str, Any]:
    """Extra ``papermill.execute_notebook`` options for a run: (for an ipykernel kernel)
    :func:`setup_kernel` run at kernel start through ``--IPKernelApp.exec_lines``, so nothing is added
    to the notebook's cells and the cell numbering stays the source's. Widget state is stored during
    the run (``Output`` widgets need it, see the module docstring) and stripped afterwards by
    :func:`compact_notebook`."""
    opts: dict[str, Any] = {"store_widget_state": True}
    try:
        from jupyter_client.kernelspec import get_kernel_spec

        argv = " ".join(get_kernel_spec(kernel_name).argv)
    except Exception:  # an unknown kernel: papermill reports that itself
        argv = ""
    if "ipykernel" in argv:
        opts["extra_arguments"] = [f"--IPKernelApp.exec_lines={_KERNEL_LINE}"]
    return opts


# ------------------------------------------------------------------------------ after the run
def compact_notebook(path: str | Path) -> None:
    """Strip widget state from an executed notebook (in place)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if nb.metadata.pop("widgets", None) is not None:
        nbformat.write(nb, path)


def notebook_figure_count(nb: Any) -> int:
    """Plotly figures a notebook shows: outputs with plotly's mimetype, plus the figures inside the
    widget snapshots."""
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if PLOTLY_MIMETYPE in data:
                n += 1
            elif WIDGET_VIEW_MIMETYPE in data:
                m = re.search(r'data-figures="(\d+)"', str(data.get("text/html", "")))
                n += int(m.group(1)) if m else 0
    return n


def html_figure_count(text: str) -> int:
    """Plotly figures an HTML page draws (plotly's figure divs)."""
    return text.count(FIGURE_DIV)


def widget_outputs(nb: Any) -> tuple[int, int]:
    """``(widget outputs, those with an HTML fallback)`` in a notebook."""
    total = with_html = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW_MIMETYPE in data:
                total += 1
                with_html += "text/html" in data
    return total, with_html


def plotlyjs_script() -> str:
    """plotly.js of the installed plotly, as one inline ``<script>`` (with plotly's MathJax setting)."""
    from plotly.offline import get_plotlyjs

    return ('<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: \'local\'};</script>\n'
            f'<script type="text/javascript">{get_plotlyjs()}</script>\n')


def export_html(executed: str | Path, html_path: str | Path) -> int:
    """Write the HTML export of an executed notebook; returns the number of plotly figures in it.

    plotly.js goes in once, first in ``<head>``, when the page holds a figure."""
    from nbconvert import HTMLExporter

    nb = nbformat.read(Path(executed), as_version=4)
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(nb)
    n = html_figure_count(body)
    if n:
        head = re.search(r"<head[^>]*>", body)
        at = head.end() if head else 0
        body = body[:at] + "\n" + plotlyjs_script() + body[at:]
    Path(html_path).write_text(body)
    return n


def finish_run_folder(executed: Path, html_path: Path | None) -> None:
    """After papermill: compact the executed notebook, then export its HTML (when ``html_path``)."""
    if executed.exists():
        compact_notebook(executed)
        if html_path is not None:
            export_html(executed, html_path)


def folder_bytes(path: str | Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ------------------------------------------------------------------------------ reports
def _fmt(v: Any) -> str:
    from .results import round_sig

    return str(round_sig(v, 3)) if isinstance(v, float) else str(v)


def run_html_path(run_dir: str | Path, nb_id: str) -> Path | None:
    """The HTML export of a run folder, when there is one."""
    p = Path(run_dir) / f"{nb_id}.html"
    return p if p.is_file() else None


def _page(title: str, body: str, plotly: bool = False) -> str:
    style = ("body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
             "th{background:#f3f3f3}td.m{font-size:90%}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{plotlyjs_script() if plotly else ''}"
            f"<title>{_html.escape(title)}</title><style>{style}</style></head><body>"
            f"<h1>{_html.escape(title)}</h1>{body}</body></html>")


def _runs_table(rows: list[dict[str, Any]], base: Path, max_metrics: int, extra: list[str] = ()) -> str:
    head = "".join(f"<th>{_html.escape(h)}</th>" for h in
                   ["notebook", *extra, "status", "wall s", "backend", "key metrics", "run folder"])
    lines = []
    for r in rows:
        d = Path(r["dir"])
        page = run_html_path(d, r["id"])
        link = lambda p: _html.escape(Path(os.path.relpath(p, base)).as_posix())  # noqa: E731
        name = (f'<a href="{link(page)}">{_html.escape(r["id"])}</a>' if page else _html.escape(r["id"]))
        ms = list((r.get("metrics") or {}).items())[:max_metrics]
        shown = "<br>".join(f"{_html.escape(k)} = {_html.escape(_fmt(v))}" for k, v in ms)
        if not shown and r.get("error"):
            shown = _html.escape(str(r["error"]).splitlines()[0][:200])
        wall = r.get("wall_time_s")
        cells = [name, *(_html.escape(_fmt(r.get("params", {}).get(k))) for k in extra),
                 _html.escape(str(r.get("status"))), f"{wall:.0f}" if wall is not None else "-",
                 _html.escape(str(r.get("backend") or "-")), shown, f'<a href="{link(d)}">{link(d)}</a>']
        lines.append("<tr>" + "".join(f"<td class='m'>{c}</td>" if i == len(extra) + 4 else f"<td>{c}</td>"
                                      for i, c in enumerate(cells)) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def write_report_html(rows: list[dict[str, Any]], base: str | Path, max_metrics: int = 6) -> Path:
    """``<base>/report.html``: one line per run with a link to its HTML export and its key metrics
    (the first ``max_metrics`` summary values, as in ``workbench report``)."""
    base = Path(base).resolve()
    path = base / "report.html"
    path.write_text(_page(f"Runs under {base}", _runs_table(rows, base, max_metrics)))
    return path


def write_sweep_report_html(base: str | Path, rows: list[dict[str, Any]], axes: list[str], figures: list[Any],
                            max_metrics: int = 8) -> Path:
    """``<base>/sweep_report.html``: the sweep's points (grid values, status, key metrics, a link to
    each point's HTML) and the metric figures, with plotly.js embedded once (works offline)."""
    base = Path(base).resolve()
    figs = "".join(_figure_html(f) for f in figures)
    body = _runs_table(rows, base, max_metrics, extra=list(axes)) + figs
    path = base / "sweep_report.html"
    path.write_text(_page(f"Sweep {base.name}", body, plotly=bool(figures)))
    return path
