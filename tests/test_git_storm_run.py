"""`workbench run git_storm` writes results.json (the notebook executed with small parameters)."""
import json

import pytest


@pytest.mark.slow
def test_workbench_run_git_storm_writes_results(tmp_path):
    from workbench.runs import run_notebook

    res = run_notebook("git_storm", {"dataset_steps": 600, "wm_updates": 5, "groups": 8, "classes": 8,
                                     "d_model": 32, "seeds": 2, "draft_steps": 4, "revise_steps": 4,
                                     "decode_scan": "1,8", "agent_prior": "none", "progress": False},
                       tmp_path / "run", html=False)
    assert res.status == "ok", res.error
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    s = data["metrics"]["summary"]
    assert data["notebook"] == "git_storm"
    assert set(s) >= {"mlp", "maskgit", "baselines", "diff"} and s["seeds"] == 2
    assert 0 <= s["maskgit"]["token_accuracy"] <= 1 and s["maskgit"]["prior_nll_se"] >= 0
    assert "steps8_prior_nll" in s["maskgit"]
    assert data["params"]["groups"] == 8
