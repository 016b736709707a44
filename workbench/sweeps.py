"""Parameter sweeps of one notebook: a papermill grid run locally (process pool), sequentially, or as
Ray tasks (a local ``ray.init`` or a cluster address). Each grid point is an ordinary run folder
``<sweep>/<point>/``; ``sweep.json`` at the top lists the grid and each point's status.

- Resumable: a point whose ``run.json`` says ``ok`` is skipped on a rerun.
- A failing point is recorded (status and error in its ``run.json``) and never stops the sweep.
- Ray resources per task come from the notebook's metadata (``workbench.resources``: cpus, gpus);
  GPUs are requested only where the cluster has them, so the same sweep packs GPU runs on a GPU
  cluster and still runs on a laptop.
- Ray writes only under the sweep folder: its temp/session dir is set there (``_temp_dir``), the
  dashboard is off, and Ray is shut down at the end, also on error. Ray's Unix socket paths must stay
  under 108 bytes, so for a sweep folder with a long path the session lives in a short temporary
  folder for the sweep's duration; its logs are then copied to ``<sweep>/ray_logs`` and the folder
  removed.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

from .runs import RunError, list_notebooks, notebook_parameters, run_notebook, runs_dir, validate_parameters


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["n=1,2", "t=0.5,1"]`` -> ``{"n": ["1", "2"], "t": ["0.5", "1"]}``.

    >>> parse_grid(["n=1,2", "backend=default"])
    {'n': ['1', '2'], 'backend': ['default']}
    """
    grid: dict[str, list[str]] = {}
    for it in items:
        name, sep, vals = it.partition("=")
        if not sep or not name or not vals:
            raise RunError(f"--grid takes NAME=V1,V2,..., got {it!r}")
        if name in grid:
            raise RunError(f"grid axis {name!r} given twice")
        grid[name.strip()] = [v.strip() for v in vals.split(",")]
    return grid


def point_slug(point: dict[str, Any]) -> str:
    """A folder name for a grid point.

    >>> point_slug({"n": 2, "backend": "vllm:Qwen/Qwen3-4B"})
    'n=2__backend=vllm-Qwen-Qwen3-4B'
    """
    s = "__".join(f"{k}={v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "-", s)[:180] or "default"


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _run_point(nb_id: str, params: dict[str, Any], out: str, timeout: int | None) -> dict[str, Any]:
    try:
        r = run_notebook(nb_id, params, out, timeout=timeout, html=True)
        return {"dir": out, "status": r.status, "error": r.error, "wall_time_s": r.wall_time_s}
    except Exception as e:  # a broken point is recorded, the sweep goes on
        Path(out).mkdir(parents=True, exist_ok=True)
        info = {"id": nb_id, "status": "failed", "error": f"{type(e).__name__}: {e}", "params": params,
                "wall_time_s": 0.0, "out_dir": out}
        (Path(out) / "run.json").write_text(json.dumps(info, indent=2, default=str))
        return {"dir": out, "status": "failed", "error": info["error"], "wall_time_s": 0.0}


def _done(out: Path) -> bool:
    try:
        return json.loads((out / "run.json").read_text()).get("status") == "ok"
    except (OSError, ValueError):
        return False


def sweep(nb_id: str, grid: dict[str, list[Any]], fixed: dict[str, Any] | None = None, *,
          executor: str = "local", address: str | None = None, max_parallel: int | None = None,
          out: str | Path | None = None, timeout: int | None = None) -> dict[str, Any]:
    """Run the grid; returns the sweep record (also written to ``<out>/sweep.json``)."""
    fixed = dict(fixed or {})
    overlap = set(fixed) & set(grid)
    if overlap:
        raise RunError(f"parameter(s) {sorted(overlap)} are both fixed and on the grid")
    points = grid_points(grid)
    for pt in points:  # validate everything before running anything
        validate_parameters(nb_id, {**fixed, **pt})
    out = Path(out) if out else runs_dir() / "sweeps" / f"{nb_id}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for pt in points:
        d = out / point_slug(pt)
        jobs.append({"point": pt, "params": {**fixed, **pt}, "dir": str(d), "skipped": _done(d)})
    todo = [j for j in jobs if not j["skipped"]]
    t0 = time.time()
    results: dict[str, dict[str, Any]] = {}
    if executor == "sequential":
        for j in todo:
            results[j["dir"]] = _run_point(nb_id, j["params"], j["dir"], timeout)
    elif executor == "local":
        workers = max_parallel or os.cpu_count() or 1
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = {ex.submit(_run_point, nb_id, j["params"], j["dir"], timeout): j for j in todo}
            for f in as_completed(futs):
                results[futs[f]["dir"]] = f.result()
    elif executor == "ray":
        results = _run_ray(nb_id, todo, out, address, max_parallel, timeout)
    else:
        raise RunError(f"unknown executor {executor!r}; use local, ray or sequential")
    record = {"notebook": nb_id, "grid": grid, "fixed": fixed, "executor": executor,
              "wall_time_s": round(time.time() - t0, 2), "points": []}
    for j in jobs:
        r = results.get(j["dir"], {"status": "ok (skipped: done earlier)" if j["skipped"] else "missing"})
        record["points"].append({"point": j["point"], "dir": j["dir"], **r})
    (out / "sweep.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def _run_ray(nb_id, todo, out: Path, address, max_parallel, timeout) -> dict[str, dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise RunError("the ray executor needs Ray: pip install 'workbench[ray]'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token files in the home directory
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Unix socket paths must stay short (<108 bytes): a short folder under the sweep, else /tmp.
    tmp, outside = out / "ray", False
    if len(str(tmp)) > 60:
        import tempfile

        tmp, outside = Path(tempfile.mkdtemp(prefix="wb-ray-")), True
        (out / "ray_tmp_dir.txt").write_text(str(tmp))
    tmp.mkdir(parents=True, exist_ok=True)
    meta = {n["id"]: n for n in list_notebooks()}[nb_id]["resources"]
    init_kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False,
                                   _node_ip_address="127.0.0.1")
    if address:
        init_kw["address"] = address
    else:
        init_kw.update(num_cpus=max_parallel or os.cpu_count(), _temp_dir=str(tmp))
    for attempt in range(3):  # Ray gives its raylet a fixed 30 s to start: on a loaded machine, retry
        try:
            ray.init(**init_kw)
            break
        except Exception as e:
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(e):
                raise
    try:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        opts = {"num_cpus": float(meta.get("cpus", 1)), "num_gpus": float(meta.get("gpus", 0)) if has_gpu else 0.0,
                "max_retries": 0}
        remote = ray.remote(**opts)(_run_point)
        refs = {remote.remote(nb_id, j["params"], j["dir"], timeout): j for j in todo}
        results = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            j = refs[done[0]]
            try:
                results[j["dir"]] = ray.get(done[0])
            except Exception as e:  # the task itself died (worker crash): record and go on
                results[j["dir"]] = {"dir": j["dir"], "status": "failed", "error": f"ray task: {e}"}
        return results
    finally:
        ray.shutdown()
        if outside:  # keep Ray's logs with the sweep, remove the short-path session folder
            import shutil

            logs = tmp / "session_latest" / "logs"
            if logs.exists():
                shutil.copytree(logs, out / "ray_logs", dirs_exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_report(base: str | Path | None) -> Path | None:
    """Aggregate a sweep folder: ``sweep_table.csv`` (grid params + summary metrics per point) and one
    plotly HTML figure per metric (``sweep_<metric>.html``). Returns the table path."""
    import pandas as pd
    import plotly.express as px

    from .runs import collect_runs

    base = Path(base) if base else runs_dir()
    sj = base / "sweep.json"
    grid = json.loads(sj.read_text())["grid"] if sj.exists() else {}
    rows = []
    for r in collect_runs(base):
        row = {"status": r["status"], "wall_time_s": r["wall_time_s"]}
        row.update({k: r["params"].get(k) for k in grid})
        row.update(r["metrics"])
        rows.append(row)
    if not rows:
        print(f"no runs under {base}")
        return None
    df = pd.DataFrame(rows)
    path = base / "sweep_table.csv"
    df.to_csv(path, index=False)
    print(df.to_string(index=False, max_colwidth=40))
    axes = list(grid)
    metrics = [c for c in df.columns if c not in axes + ["status", "wall_time_s"]
               and pd.api.types.is_numeric_dtype(df[c])]
    for m in metrics:
        if not axes:
            break
        fig = px.line(df.sort_values(axes[0]), x=axes[0], y=m, markers=True,
                      color=df[axes[1]].astype(str) if len(axes) > 1 else None,
                      title=f"{m} over the sweep")
        fig.write_html(base / f"sweep_{re.sub(r'[^A-Za-z0-9_.-]', '_', m)}.html", include_plotlyjs="cdn")
    return path


def main_sweep(a) -> int:
    import sys

    try:
        grid = parse_grid(a.grid)
        fixed = {k: v for k, v in (a.param or [])}
        rec = sweep(a.id, grid, fixed, executor=a.executor, address=a.address, max_parallel=a.max_parallel,
                    out=a.out, timeout=a.timeout)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in rec["points"]:
        print(f"{p['status']:<8} {p['point']} -> {p['dir']}" + (f"  ({p.get('error')})" if p.get("error") else ""))
    sweep_report(Path(rec["points"][0]["dir"]).parent if rec["points"] else None)
    return 0 if all(str(p["status"]).startswith("ok") for p in rec["points"]) else 1
