import json
import subprocess
import sys

import pytest

from workbench.results import record, round_sig, summary_text, to_jsonable
from workbench.runs import RunError, coerce_value, list_notebooks, run_notebook, validate_parameters


def test_list_has_quickstart_with_metadata():
    nbs = {n["id"]: n for n in list_notebooks()}
    assert "quickstart" in nbs
    assert nbs["quickstart"]["title"].startswith("Quickstart")
    assert isinstance(nbs["quickstart"]["runtime_s"], int)


def test_parameters_validated_against_the_notebook():
    assert validate_parameters("quickstart", {"n": "3", "temperature": "0", "backend": "scripted"}) == {
        "n": 3, "temperature": 0.0, "backend": "scripted"}
    with pytest.raises(RunError, match=r"unknown parameter.*valid: backend \(str\)"):
        validate_parameters("quickstart", {"nn": "3"})
    with pytest.raises(RunError, match="expects int"):
        validate_parameters("quickstart", {"n": "three"})
    with pytest.raises(RunError, match="expects list"):
        validate_parameters("quickstart", {"prompts": "7"})
    with pytest.raises(RunError, match="unknown notebook"):
        validate_parameters("no_such_notebook", {})
    assert coerce_value("p", '["a", "b"]', "list") == ["a", "b"]


def test_record_writes_results_and_prints_rounded(tmp_path, capsys):
    record({"summary": {"acc": 0.123456, "nested": {"n": 3}}, "curve": [0.1, 0.2]},
           {"seed": 1, "backend": "scripted"}, tmp_path, notebook_id="t")
    out = capsys.readouterr().out
    assert out.splitlines() == ["acc: 0.123", "nested.n: 3"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["params"] == {"seed": 1, "backend": "scripted"}
    assert data["metrics"]["curve"] == [0.1, 0.2]
    assert "numpy" in data["versions"] and data["backend"] == {"spec": "scripted"}
    assert data["wall_time_s"] >= 0 and "git_commit" in data
    assert round_sig(123456, 2) == 120000 and to_jsonable({1: {2}}) == {"1": [2]}
    assert summary_text({"a": 1.0}) == "a: 1.0"


def test_run_quickstart_writes_a_run_folder(tmp_path):
    r = run_notebook("quickstart", {"backend": "scripted", "n": "1", "cache": "off"}, tmp_path / "run")
    assert r.status == "ok", r.error
    d = tmp_path / "run"
    for f in ("quickstart.ipynb", "quickstart.html", "results.json", "run.json", "run.log"):
        assert (d / f).exists(), f
    data = json.loads((d / "results.json").read_text())
    assert data["params"]["backend"] == "scripted" and data["metrics"]["summary"]["completions"] == 4
    assert data["run"]["status"] == "ok" and data["run"]["wall_time_s"] > 0
    assert data["backend"]["spec"] == "scripted"
    # the CLI: report finds the run; a failing run is recorded, not raised
    rep = subprocess.run([sys.executable, "-m", "workbench", "report", str(tmp_path)], capture_output=True, text=True)
    assert rep.returncode == 0 and "quickstart" in rep.stdout and "ok" in rep.stdout
    bad = subprocess.run([sys.executable, "-m", "workbench", "run", "quickstart", "-p", "backend", "nonsense",
                          "--out", str(tmp_path / "bad"), "-q"], capture_output=True, text=True)
    assert bad.returncode == 1
    info = json.loads((tmp_path / "bad" / "run.json").read_text())
    assert info["status"] == "failed" and "UnknownBackendError" in info["error"]
    unknown = subprocess.run([sys.executable, "-m", "workbench", "run", "quickstart", "-p", "nope", "1"],
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and "valid:" in unknown.stderr
