"""`workbench run autobench` writes results.json (notebook executed with the scripted backend, small; the
scripted texts are not JSON, so structured outputs are off)."""
import json

import pytest


@pytest.mark.slow
def test_workbench_run_autobench_writes_results(tmp_path):
    from workbench.runs import run_notebook

    res = run_notebook("autobench", {"backend": "scripted", "sizes": "3,4", "graphs_per_size": 3,
                                     "llm_sizes": "3", "llm_graphs_per_size": 2,
                                     "structured": False}, tmp_path / "run", html=False)
    assert res.status == "ok", res.error
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    s = data["metrics"]["summary"]
    assert data["notebook"] == "autobench"
    assert s["chemistry"]["one_per_node"]["success_rate"] == 1.0
    h = s["head_to_head"]["llm"]["chemistry"]
    assert h["unparsed_rate"] == 1.0 and h["similarity"] == 0.0  # empty answers are unparsed and earn nothing
