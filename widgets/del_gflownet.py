"""Views for the DEL GFlowNet notebook, fed the plain dict that ``workbench.del_gflownet.run`` returns.

* :func:`library_viewer`: a sampled library as a grid of building blocks per cycle (RDKit SVG),
  its reward, the distribution of p over its molecules and its best products; pick the method
  (GFlowNets, baselines) and the library.
* :func:`comparison_figure`: reward and diversity per method.
* :func:`training_figure`: GFlowNet training curves.

Structures are drawn once when the viewer is built; callbacks only index into prepared data.
"""
from __future__ import annotations

import html

import ipywidgets as W
import plotly.graph_objects as go


def mol_svg(smiles: str, width: int = 150, height: int = 110) -> str:
    """An SVG drawing of a molecule (RDKit), or an error note if the SMILES does not parse."""
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        return f"<div style='width:{width}px;color:#a00'>unparsable: {html.escape(str(smiles))}</div>"
    d = rdMolDraw2D.MolDraw2DSVG(width, height)
    d.drawOptions().clearBackground = False
    d.DrawMolecule(mol)
    d.FinishDrawing()
    svg = d.GetDrawingText()
    return svg[svg.find("<svg"):]


def _library_html(view: dict, svgs: dict[str, str]) -> str:
    rows = [f"<div style='font-weight:bold;margin:4px 0'>log R = {view['log_reward']:.3f} "
            f"&nbsp; mean p = {view['mean_p']:.3f} &nbsp; |L| = {sum(v is not None for v in view['p'])}</div>"]
    for c, blocks in enumerate(view["blocks"]):
        cards = "".join(
            f"<div style='display:inline-block;border:1px solid #ddd;margin:2px;text-align:center'>"
            f"{svgs[b['smiles']]}<div style='font-size:11px'>{html.escape(b['id'])}</div></div>" for b in blocks)
        rows.append(f"<div><span style='display:inline-block;width:70px'>cycle {c + 1}</span>{cards}</div>")
    prods = "".join(
        f"<div style='display:inline-block;margin:2px;text-align:center'>{svgs[p['smiles']]}"
        f"<div style='font-size:11px'>p = {p['p']:.3f}</div></div>" for p in view["top_products"] if p["smiles"])
    rows.append(f"<div style='margin-top:6px'>best products:<br>{prods}</div>")
    return "".join(rows)


def library_viewer(results: dict) -> W.VBox:
    """Browse the libraries in ``results["views"]`` (method -> list of library views)."""
    views = results["views"]
    if not views:
        raise ValueError("results hold no library views")
    svgs: dict[str, str] = {}
    for libs in views.values():
        for v in libs:
            for blocks in v["blocks"]:
                for b in blocks:
                    svgs.setdefault(b["smiles"], mol_svg(b["smiles"]))
            for p in v["top_products"]:
                if p["smiles"]:
                    svgs.setdefault(p["smiles"], mol_svg(p["smiles"], 220, 150))
    pages = {m: [_library_html(v, svgs) for v in libs] for m, libs in views.items()}
    method = W.Dropdown(options=list(views), description="method")
    rank = W.Dropdown(options=[(f"#{i + 1}", i) for i in range(len(views[method.value]))], description="library")
    grid = W.HTML()
    hist = go.FigureWidget(layout=dict(height=250, width=520, margin=dict(l=40, r=10, t=30, b=40),
                                       title="p over the library's molecules", xaxis=dict(range=[0, 1], title="p"),
                                       yaxis=dict(title="molecules")))
    hist.add_histogram(x=[], xbins=dict(start=0, end=1, size=0.05))

    def show(*_):
        v = views[method.value][rank.value]
        grid.value = pages[method.value][rank.value]
        hist.data[0].x = [p for p in v["p"] if p is not None]

    def on_method(change):
        rank.options = [(f"#{i + 1}", i) for i in range(len(views[change["new"]]))]
        rank.value = 0
        show()

    method.observe(on_method, names="value")
    rank.observe(show, names="value")
    show()
    return W.VBox([W.HBox([method, rank]), grid, hist])


def comparison_figure(results: dict) -> go.Figure:
    """Mean p, top-k mean p and library diversity (mean pairwise Jaccard distance) per method."""
    names = list(results["methods"])
    met = [results["methods"][n]["metrics"] for n in names]
    fig = go.Figure()
    fig.add_bar(name="mean p of sampled libraries", x=names, y=[m["mean_p"] for m in met])
    fig.add_bar(name="top-k mean p (distinct)", x=names, y=[m["top_k_mean_p"] for m in met])
    fig.add_bar(name="library Jaccard distance", x=names,
                y=[m["library_jaccard_distance"] if m["library_jaccard_distance"] == m["library_jaccard_distance"]
                   else None for m in met])
    fig.update_layout(barmode="group", height=380, title="Reward and diversity by method",
                      yaxis=dict(range=[0, 1]))
    return fig


def training_figure(results: dict) -> go.Figure:
    """Mean log reward of each training batch per GFlowNet."""
    fig = go.Figure()
    for name, h in results["training"].items():
        fig.add_scatter(y=h["mean_log_reward"], mode="lines", name=name)
    fig.update_layout(height=320, title="GFlowNet training: mean log R of sampled batches",
                      xaxis_title="iteration", yaxis_title="mean log R")
    return fig
