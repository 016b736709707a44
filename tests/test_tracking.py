"""MLflow tracking (workbench/tracking.py) with the real mlflow package on a local SQLite store, and
the sweep report page (workbench/sweeps.py: sweep_report -> sweep_report.html)."""
import json
import re
import sys
from pathlib import Path

import pytest

from workbench import tracking
from workbench.runs import RunError, run_notebook

FIXED = {"backend": "scripted", "cache": "off", "prompts": '["a", "b"]'}


def test_requested_reads_flag_then_environment(monkeypatch):
    monkeypatch.delenv(tracking.ENV, raising=False)
    assert tracking.requested() is None
    monkeypatch.setenv(tracking.ENV, "1")
    assert tracking.requested() == "local"
    assert tracking.requested("off") is None  # the flag wins over the environment
    monkeypatch.setenv(tracking.ENV, "http://tracker.example:5000")
    assert tracking.requested() == "http://tracker.example:5000"
    monkeypatch.setenv(tracking.ENV, "0")
    assert tracking.requested() is None


def test_missing_mlflow_names_the_extra_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(tracking.TrackingError, match=r"workbench\[tracking\]"):
        tracking._mlflow()
    out = tmp_path / "run"
    with pytest.raises(RunError, match=r"workbench\[tracking\]"):
        run_notebook("quickstart", FIXED, out, mlflow="local")
    assert not out.exists()


def _client(runs_base: Path):
    from mlflow.tracking import MlflowClient

    uri, _ = tracking.local_store(runs_base)
    return MlflowClient(tracking_uri=uri)


def test_sweep_points_round_trip_through_mlflow(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from workbench.sweeps import sweep

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(tracking.ENV, raising=False)
    out = tmp_path / "sw"
    rec = sweep("quickstart", {"n": ["1", "2"]}, FIXED, executor="sequential", out=out, mlflow="local")
    assert [p["status"] for p in rec["points"]] == ["ok", "ok"]
    client = _client(tmp_path / "runs")
    exp = client.get_experiment_by_name("workbench/quickstart")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2
    by_n = {r.data.params["n"]: r for r in runs}
    assert set(by_n) == {"1", "2"}
    for n, r in by_n.items():
        assert r.data.metrics["completions"] == 2 * int(n)  # the summary metric, as results.json has it
        assert r.data.params["backend"] == "scripted" and "out_dir" not in r.data.params
        assert r.data.tags["workbench.status"] == "ok"
        assert r.data.tags["workbench.sweep"] == str(out.resolve())
        assert r.info.status == "FINISHED"
        files = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"results.json", "run.json", "quickstart.html"} <= files
        folder = Path(r.data.tags["workbench.run_folder"])
        local = client.download_artifacts(r.info.run_id, "results.json", str(tmp_path / f"dl{n}"))
        assert json.loads(Path(local).read_text())["metrics"] == json.loads(
            (folder / "results.json").read_text())["metrics"]
        assert "MLflow: logged as run" in (folder / "run.log").read_text()
    # the store lives under the runs folder, artifacts included
    assert (tmp_path / "runs" / "mlflow" / "mlflow.db").is_file()
    assert list((tmp_path / "runs" / "mlflow" / "artifacts").rglob("results.json"))


def test_record_outside_the_runner_logs_when_asked(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from workbench.results import record

    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv(tracking.ENV, "1")
    monkeypatch.delenv(tracking.RUNNER_ENV, raising=False)
    out = tmp_path / "runs" / "toy" / "interactive"
    record({"summary": {"acc": 0.25, "nested": {"se": 0.05}, "label": "x", "nan": float("nan")}},
           {"lr": 1e-3, "layers": [1, 2]}, out, notebook_id="toy")
    client = _client(tmp_path / "runs")
    (r,) = client.search_runs([client.get_experiment_by_name("workbench/toy").experiment_id])
    metrics = dict(r.data.metrics)
    assert isinstance(metrics.pop("wall_time_s"), float)
    assert metrics == {"acc": 0.25, "nested.se": 0.05}  # strings and NaN are not metrics
    assert r.data.params == {"lr": "0.001", "layers": "[1, 2]"}
    # under the runner (its variable set) record() leaves logging to the runner: nothing new is logged
    monkeypatch.setenv(tracking.RUNNER_ENV, str(out))
    record({"summary": {"acc": 0.5}}, {}, out, notebook_id="toy")
    assert len(client.search_runs([client.get_experiment_by_name("workbench/toy").experiment_id])) == 1


def _fake_point(d: Path, params: dict, metrics: dict) -> None:
    d.mkdir(parents=True)
    info = {"id": "quickstart", "status": "ok", "error": None, "params": params, "wall_time_s": 1.0,
            "out_dir": str(d), "notebook_sha256": "x"}
    (d / "run.json").write_text(json.dumps(info))
    (d / "results.json").write_text(json.dumps({"notebook": "quickstart", "params": params,
                                                "metrics": {"summary": metrics}, "run": info}))
    (d / "quickstart.html").write_text("<html></html>")


def _values(a):
    """A plotly JSON array: a list, or plotly's typed-array form {"dtype", "bdata" (base64)}."""
    if isinstance(a, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(a["bdata"]), dtype=a["dtype"]).tolist()
    return list(a)


def test_sweep_report_page_colours_each_line_with_its_own_points(tmp_path):
    """Grid values 2 and 10 sort differently as text and as numbers; every line of the report's
    figure must hold exactly the points of its colour (value = n * 100 + k)."""
    from workbench.sweeps import sweep_report

    grid = {"n": [2, 10], "k": [1, 3]}
    points = []
    for n in (10, 2):  # written out of order on purpose
        for k in (3, 1):
            d = tmp_path / f"n{n}-k{k}"
            _fake_point(d, {"n": n, "k": k}, {"value": n * 100 + k})
            points.append({"point": {"n": n, "k": k}, "dir": str(d), "status": "ok"})
    (tmp_path / "sweep.json").write_text(json.dumps({"grid": grid, "points": points}))
    table = sweep_report(tmp_path)
    assert table is not None and len(table.read_text().splitlines()) == 5
    page = (tmp_path / "sweep_report.html").read_text()
    assert page.count("<script") >= 2 and not re.search(r"<script[^>]*src=", page)  # plotly.js inline: offline
    assert len(re.findall(r'href="n\d+-k\d/quickstart.html"', page)) == 4  # every point's HTML linked
    from workbench.export import html_figure_count

    assert html_figure_count(page) == 1  # one numeric metric: one figure
    specs = re.findall(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page, flags=re.S)
    traces = json.loads(specs[0])
    seen = {}
    for t in traces:
        k = int(t["name"])
        xs, ys = _values(t["x"]), _values(t["y"])
        assert ys == [x * 100 + k for x in xs], t
        assert xs == sorted(xs)
        seen[k] = xs
    assert seen == {1: [2, 10], 3: [2, 10]}
