"""The imputation explorer is fed run()'s plain data and only indexes into it."""
from __future__ import annotations

import json

from widgets.causal_imputation import donor_html, imputation_explorer, mask_figure, r2_heatmap_figure
from workbench.causal_imputation import Config, run
from workbench.results import to_jsonable


def _data():
    cfg = Config(models=("gsi",), n_contexts=10, n_actions=10, n_features=12, n_full_contexts=4, sweep_fracs=(),
                 estimators=("si_a", "gsi", "mean_over_actions"), noise=0.0, gsi_energy=1.0)
    # through JSON, as a user loading results.json would feed it
    return json.loads(json.dumps(to_jsonable(run(cfg, progress=False)["explorer"])))


def test_explorer_builds_and_selects():
    data = _data()
    box = imputation_explorer(data)
    n = len(data["pairs"])
    assert n == sum(1 for row in data["mask"] for v in row if v == 0)
    box.pick.value = n - 1
    p = data["pairs"][n - 1]
    assert list(box.scatter.data[0].x) == p["true"]
    assert data["actions"][p["action"]] in box.scatter.layout.title.text
    box.est.value = "gsi"
    assert "gsi" in box.heat.layout.title.text


def test_donor_html_lists_weights():
    data = _data()
    html = donor_html(data, 0)
    d = data["pairs"][0]["donors"]["gsi"]
    for lab in d.get("donors", []):
        assert lab in html
    assert "fallback" in html
    assert mask_figure(data).data[0].z is not None
    assert r2_heatmap_figure(data, "si_a").data[0].z is not None
