"""Widget tests for widgets/del_gflownet.py on hand-built plain data (no model, no training)."""
from __future__ import annotations

import plotly.graph_objects as go

from widgets.del_gflownet import comparison_figure, library_viewer, mol_svg, training_figure


def _view(mean_p, ids):
    return {"blocks": [[{"id": ids[0], "smiles": "NCC(=O)O"}], [{"id": ids[1], "smiles": "O=C(O)c1ccc(Br)cc1"}]],
            "log_reward": 10 * mean_p, "mean_p": mean_p, "p": [mean_p, None, 0.2],
            "top_products": [{"smiles": "O=C(O)CNC(=O)c1ccc(Br)cc1", "p": mean_p}]}


def _results():
    metrics = lambda p, d: {"mean_p": p, "top_k_mean_p": p + 0.1, "library_jaccard_distance": d}  # noqa: E731
    return {
        "views": {"gfn_flat_tb": [_view(0.7, ("a1", "b1")), _view(0.6, ("a2", "b2"))], "random": [_view(0.3, ("r1", "r2"))]},
        "methods": {"gfn_flat_tb": {"metrics": metrics(0.6, 0.8)}, "topk": {"metrics": metrics(0.75, float("nan"))}},
        "training": {"gfn_flat_tb": {"mean_log_reward": [1.0, 2.0, 3.0]}},
    }


def test_library_viewer_switches_method_and_library():
    w = library_viewer(_results())
    (method, rank), grid, hist = w.children[0].children, w.children[1], w.children[2]
    assert "a1" in grid.value and "<svg" in grid.value and "mean p = 0.700" in grid.value
    assert list(hist.data[0].x) == [0.7, 0.2]  # failed product (None) not drawn
    rank.value = 1
    assert "a2" in grid.value and "a1" not in grid.value
    method.value = "random"
    assert rank.value == 0 and len(rank.options) == 1 and "r1" in grid.value
    assert list(hist.data[0].x) == [0.3, 0.2]


def test_figures_and_svg():
    fig = comparison_figure(_results())
    assert isinstance(fig, go.Figure) and len(fig.data) == 3 and fig.data[2].y[1] is None  # NaN diversity left out
    assert len(training_figure(_results()).data) == 1
    assert mol_svg("CCO").startswith("<svg") and "unparsable" in mol_svg("zz")
