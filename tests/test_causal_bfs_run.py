"""`workbench run causal_bfs` writes results.json (notebook executed with the scripted backend, small)."""
import json

import pytest


@pytest.mark.slow
def test_workbench_run_causal_bfs_writes_results(tmp_path):
    from workbench.runs import run_notebook

    res = run_notebook("causal_bfs", {"backend": "scripted", "methods": "bfs,pc",
                                      "scaling_networks": "asia,sachs"}, tmp_path / "run", html=False)
    assert res.status == "ok", res.error
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    s = data["metrics"]["summary"]
    assert data["notebook"] == "causal_bfs" and data["params"]["backend"] == "scripted"
    # empty scripted answers: no roots, so only the init query, once per repeat; unparsed, not "none"
    assert s["asia"]["bfs"]["queries"] == s["asia"]["bfs"]["repeats"] == data["params"]["repeats"]
    assert s["asia"]["bfs"]["unparsed_share"] == 1.0 and s["asia"]["bfs"]["f1"] == 0.0
    assert s["scaling"]["sachs"]["bfs_queries"] == 12
