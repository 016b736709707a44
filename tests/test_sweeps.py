import json
import os
from pathlib import Path

import pytest

from workbench.runs import RunError
from workbench.sweeps import grid_points, parse_grid, point_slug, sweep, sweep_report


def test_grid_parsing_and_points():
    g = parse_grid(["n=1,2", "temperature=0,1"])
    assert grid_points(g) == [{"n": "1", "temperature": "0"}, {"n": "1", "temperature": "1"},
                              {"n": "2", "temperature": "0"}, {"n": "2", "temperature": "1"}]
    with pytest.raises(RunError):
        parse_grid(["n"])
    with pytest.raises(RunError):
        parse_grid(["n=1", "n=2"])
    assert len({point_slug(p) for p in grid_points(g)}) == 4


def test_sweep_validates_before_running(tmp_path):
    with pytest.raises(RunError, match="unknown parameter"):
        sweep("quickstart", {"nope": ["1"]}, out=tmp_path)
    with pytest.raises(RunError, match="expects int"):
        sweep("quickstart", {"n": ["x"]}, out=tmp_path)
    assert not any(tmp_path.iterdir())


FIXED = {"backend": "scripted", "cache": "off", "prompts": '["a", "b"]'}


def test_sweep_2x2_on_local_ray_is_resumable_and_records_failures(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    out = tmp_path / "sw"
    grid = {"n": ["1", "2"], "max_tokens": ["4", "8"]}
    rec = sweep("quickstart", grid, FIXED, executor="ray", max_parallel=2, out=out)
    assert [p["status"] for p in rec["points"]] == ["ok"] * 4
    for p in rec["points"]:
        data = json.loads((Path(p["dir"]) / "results.json").read_text())
        assert data["params"]["n"] == int(p["point"]["n"])
        assert data["metrics"]["summary"]["completions"] == 2 * int(p["point"]["n"])
    # Ray wrote nothing into the home directory (Jupyter kernels may write their own profiles there),
    # and its session files live under the sweep
    assert not [p for p in home.rglob("*") if "ray" in p.name.lower()]
    assert (out / "ray").exists() or (out / "ray_logs").exists()
    short = out / "ray_tmp_dir.txt"
    if short.exists():  # a long sweep path: the short-path session folder is gone after the sweep
        from pathlib import Path as _P

        assert not _P(short.read_text()).exists()
    # a rerun skips completed points
    again = sweep("quickstart", grid, FIXED, executor="ray", max_parallel=2, out=out)
    assert all(p["status"].startswith("ok (skipped") for p in again["points"])
    # a failing point is recorded and does not stop the others
    bad = sweep("quickstart", {"backend": ["scripted", "nonsense"]}, {"cache": "off"}, executor="local",
                max_parallel=2, out=tmp_path / "bad")
    st = {p["point"]["backend"]: p["status"] for p in bad["points"]}
    assert st == {"scripted": "ok", "nonsense": "failed"}
    table = sweep_report(out)
    assert table is not None and table.exists() and len(table.read_text().splitlines()) == 5
    assert (out / "sweep_report.html").is_file() and not list(out.glob("sweep_[!r]*.html"))
