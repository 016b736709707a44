"""`workbench run git_storm` writes results.json (the notebook executed with small parameters)."""
import json

import pytest


@pytest.mark.slow
def test_workbench_run_git_storm_writes_results(tmp_path):
    from workbench.runs import run_notebook

    res = run_notebook("git_storm", {"dataset_steps": 600, "wm_updates": 5, "groups": 8, "classes": 8,
                                     "d_model": 32, "agent_prior": "none", "progress": False},
                       tmp_path / "run", html=False)
    assert res.status == "ok", res.error
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    s = data["metrics"]["summary"]
    assert data["notebook"] == "git_storm"
    assert set(s) >= {"mlp", "maskgit", "baselines"}
    assert 0 <= s["maskgit"]["token_accuracy"] <= 1
    assert data["params"]["groups"] == 8
