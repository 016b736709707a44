"""Parameter sweeps of one notebook: a papermill grid run locally (process pool), sequentially, or as
Ray tasks (a local ``ray.init`` or a cluster address). Each grid point is an ordinary run folder
``<sweep>/<point>/`` named ``<readable point>-<hash>``: the grid values with special characters
replaced (cut at 180 characters) and the first 12 hex digits of the SHA-256 of the point's full
parameter set (fixed and grid values after type checking, canonical JSON), so two different points
never share a folder. ``sweep.json`` at the top lists the grid and each point's status; it is
rewritten (atomically) whenever a point finishes, so a killed sweep still says which points are done.

- Resumable: a point is skipped on a rerun only if its ``run.json`` says ``ok``, records exactly the
  same parameter set and the same notebook version (``notebook_sha256``, the notebook file's content
  hash), and its ``results.json`` is there. Any other point is rerun into its folder (emptied
  first). A sweep rerun with other parameters into the same ``--out`` therefore runs new points in
  new folders; ``sweep.json`` and the sweep table list only the points of the latest sweep.
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
import hashlib
import itertools
import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

from .runs import (RUN_FOLDER_MARKERS, RunError, list_notebooks, notebook_sha256, read_json_object, run_notebook,
                   runs_dir, validate_parameters, write_json_atomic)


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
    """The readable part of a grid point's folder name (not unique on its own: see :func:`point_dir_name`).

    >>> point_slug({"n": 2, "backend": "vllm:Qwen/Qwen3-4B"})
    'n=2__backend=vllm-Qwen-Qwen3-4B'
    """
    s = "__".join(f"{k}={v}" for k, v in point.items())
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "-", s)[:180] or "default"


def params_sha256(params: dict[str, Any]) -> str:
    """Hash of a parameter set as canonical JSON (sorted keys): the identity of a grid point."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def point_dir_name(point: dict[str, Any], params: dict[str, Any]) -> str:
    """``<readable point>-<12 hex digits of params_sha256(params)>``; ``params`` is the full
    (type-checked) parameter set, so different points get different folders even where their
    readable parts agree (``vllm:org/model`` and ``vllm:org-model``, long values cut at 180).

    >>> point_dir_name({"n": 2}, {"n": 2, "seed": 0})
    'n=2-7d9d2893cb14'
    """
    return f"{point_slug(point)}-{params_sha256(params)[:12]}"


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def _run_point(nb_id: str, params: dict[str, Any], out: str, timeout: int | None,
               mlflow: str = "off") -> dict[str, Any]:
    """Run one point into its folder (emptied first: the sweep decided it must run)."""
    try:
        r = run_notebook(nb_id, params, out, timeout=timeout, html=True, force=True, mlflow=mlflow,
                         sweep=Path(out).parent)
        return {"dir": out, "status": r.status, "error": r.error, "wall_time_s": r.wall_time_s}
    except Exception as e:  # a broken point is recorded, the sweep goes on
        d = Path(out)
        err = f"{type(e).__name__}: {e}"
        # a failure note goes only where it cannot sit beside another run's files
        if not d.exists() or not any(d.iterdir()) or (d / "run.json").is_file():
            d.mkdir(parents=True, exist_ok=True)
            info = {"id": nb_id, "status": "failed", "error": err, "params": params, "wall_time_s": 0.0,
                    "out_dir": out}
            write_json_atomic(d / "run.json", info)
        return {"dir": out, "status": "failed", "error": err, "wall_time_s": 0.0}


def resumable(out: Path, params: dict[str, Any], nb_sha: str) -> tuple[bool, str]:
    """Whether the point folder ``out`` already holds a finished run of exactly ``params`` with the
    notebook version ``nb_sha``; the reason when not."""
    if not any((out / m).exists() for m in RUN_FOLDER_MARKERS):
        return False, "not run yet"
    info, problem = read_json_object(out / "run.json")
    if info is None:
        return False, f"run.json {problem}"
    if info.get("status") != "ok":
        return False, f"earlier status {info.get('status')!r}"
    recorded = {k: v for k, v in (info.get("params") or {}).items() if k != "out_dir"}
    if json.loads(json.dumps(recorded, default=str)) != json.loads(json.dumps(params, default=str)):
        return False, "recorded parameters differ"
    if info.get("notebook_sha256") != nb_sha:
        return False, "the notebook changed since (or the run recorded no notebook version)"
    if read_json_object(out / "results.json")[0] is None:
        return False, "results.json missing or unreadable"
    return True, "done earlier with the same parameters and notebook"


def sweep(nb_id: str, grid: dict[str, list[Any]], fixed: dict[str, Any] | None = None, *,
          executor: str = "local", address: str | None = None, max_parallel: int | None = None,
          out: str | Path | None = None, timeout: int | None = None,
          mlflow: str | None = None) -> dict[str, Any]:
    """Run the grid; returns the sweep record (also written to ``<out>/sweep.json``, after every point).

    ``mlflow``: log each point's run to MLflow, tagged with the sweep folder (see
    :func:`workbench.runs.run_notebook`; None: as ``$WORKBENCH_MLFLOW`` says)."""
    from . import tracking

    track = tracking.requested(mlflow)
    if track:
        try:
            tracking._mlflow()
        except tracking.TrackingError as e:
            raise RunError(str(e)) from None
    track = track or "off"  # resolved here: workers (processes, Ray tasks) get it explicitly
    fixed = dict(fixed or {})
    overlap = set(fixed) & set(grid)
    if overlap:
        raise RunError(f"parameter(s) {sorted(overlap)} are both fixed and on the grid")
    if "out_dir" in fixed or "out_dir" in grid:
        raise RunError("out_dir is set by the sweep (one folder per point); use --out for the sweep folder")
    if executor not in ("local", "ray", "sequential"):
        raise RunError(f"unknown executor {executor!r}; use local, ray or sequential")
    points = grid_points(grid)
    checked = [validate_parameters(nb_id, {**fixed, **pt}) for pt in points]  # everything before running
    nb_sha = notebook_sha256(nb_id)
    out = Path(out) if out else runs_dir() / "sweeps" / f"{nb_id}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for pt, params in zip(points, checked):
        d = out / point_dir_name(pt, params)
        done, why = resumable(d, params, nb_sha)
        jobs.append({"point": pt, "params": params, "dir": str(d), "skipped": done, "why": why})
    dirs = [j["dir"] for j in jobs]
    if len(set(dirs)) != len(dirs):  # the same point twice on the grid (e.g. n=1,1)
        raise RunError("the grid lists the same point more than once")
    todo = [j for j in jobs if not j["skipped"]]
    t0 = time.time()
    record = {"notebook": nb_id, "notebook_sha256": nb_sha, "grid": grid, "fixed": fixed, "executor": executor,
              "finished": False, "wall_time_s": None,
              "points": [{"point": j["point"], "dir": j["dir"], "params_sha256": params_sha256(j["params"]),
                          "status": "ok (skipped: done earlier)" if j["skipped"] else "pending",
                          **({} if j["skipped"] or j["why"] == "not run yet" else {"rerun_because": j["why"]})}
                         for j in jobs]}
    entry = {p["dir"]: p for p in record["points"]}

    def finished(j: dict[str, Any], r: dict[str, Any]) -> None:
        entry[j["dir"]].update({k: v for k, v in r.items() if k != "dir"})
        record["wall_time_s"] = round(time.time() - t0, 2)
        write_json_atomic(out / "sweep.json", record)

    write_json_atomic(out / "sweep.json", record)
    if executor == "sequential":
        for j in todo:
            finished(j, _run_point(nb_id, j["params"], j["dir"], timeout, track))
    elif executor == "local":
        workers = max_parallel or os.cpu_count() or 1
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = {ex.submit(_run_point, nb_id, j["params"], j["dir"], timeout, track): j for j in todo}
            for f in as_completed(futs):
                j = futs[f]
                try:
                    r = f.result()
                except Exception as e:  # the worker process died
                    r = {"status": "failed", "error": f"worker: {type(e).__name__}: {e}"}
                finished(j, r)
    else:
        _run_ray(nb_id, todo, out, address, max_parallel, timeout, finished, track)
    record["finished"] = True
    record["wall_time_s"] = round(time.time() - t0, 2)
    write_json_atomic(out / "sweep.json", record)
    return record


def _run_ray(nb_id, todo, out: Path, address, max_parallel, timeout, finished, track: str = "off") -> None:
    """Run the points as Ray tasks; ``finished(job, result)`` is called as each one ends."""
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
        refs = {remote.remote(nb_id, j["params"], j["dir"], timeout, track): j for j in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            j = refs[done[0]]
            try:
                r = ray.get(done[0])
            except Exception as e:  # the task itself died (worker crash): record and go on
                r = {"dir": j["dir"], "status": "failed", "error": f"ray task: {e}"}
            finished(j, r)
    finally:
        ray.shutdown()
        if outside:  # keep Ray's logs with the sweep, remove the short-path session folder
            import shutil

            logs = tmp / "session_latest" / "logs"
            if logs.exists():
                shutil.copytree(logs, out / "ray_logs", dirs_exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_report(base: str | Path | None) -> Path | None:
    """Aggregate a sweep folder: ``sweep_table.csv`` (grid params + summary metrics per point) and
    ``sweep_report.html`` (the points with links to their HTML exports, and one figure per metric over
    the first grid axis, coloured by the second; plotly.js embedded once). Returns the table path.

    With a readable ``sweep.json`` only its points are tabulated (run folders of earlier sweeps with
    other parameters in the same folder are left out, and counted); without one, every run below."""
    import pandas as pd
    import plotly.express as px

    from .runs import scan_runs

    base = Path(base) if base else runs_dir()
    record, problem = read_json_object(base / "sweep.json")
    grid: dict[str, Any] = {}
    members: set[Path] | None = None
    if record is not None and isinstance(record.get("grid"), dict) and isinstance(record.get("points"), list):
        grid = record["grid"]
        members = {Path(p["dir"]).resolve() for p in record["points"] if isinstance(p, dict) and "dir" in p}
    elif (base / "sweep.json").exists():
        print(f"sweep.json {problem or 'has no grid and points'}: tabulating every run under {base}")
    found, skipped = scan_runs(base)
    runs_here = [r for r in found if members is None or Path(r["dir"]).resolve() in members]
    if len(runs_here) < len(found):
        print(f"{len(found) - len(runs_here)} run folder(s) under {base} are not points of the sweep in "
              f"sweep.json (an earlier sweep with other parameters?): left out of the table")
    for sk in skipped:
        print(f"skipped {sk['path']}: {sk['reason']}")
    rows = []
    for r in runs_here:
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
    figures = []
    if axes:
        # sorted once, colour taken from the same sorted frame (a column name, not a Series of the
        # unsorted one: with grid values like 2, 10 a Series would be realigned onto the wrong rows)
        by = df.sort_values(axes[0], kind="stable").reset_index(drop=True)
        if len(axes) > 1:
            by["_colour"] = by[axes[1]].astype(str)
        for m in metrics:
            figures.append(px.line(by, x=axes[0], y=m, markers=True, color="_colour" if len(axes) > 1 else None,
                                   labels={"_colour": axes[1] if len(axes) > 1 else ""},
                                   title=f"{m} over the sweep"))
    from .export import write_sweep_report_html

    page = write_sweep_report_html(base, runs_here, axes, figures)
    print(f"sweep report (table, figures, a link to each point's HTML; works offline): {page}")
    return path


def main_sweep(a) -> int:
    import sys

    try:
        grid = parse_grid(a.grid)
        fixed = {k: v for k, v in (a.param or [])}
        rec = sweep(a.id, grid, fixed, executor=a.executor, address=a.address, max_parallel=a.max_parallel,
                    out=a.out, timeout=a.timeout, mlflow=getattr(a, "mlflow", None))
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in rec["points"]:
        err = str(p.get("error") or "").strip().splitlines()
        print(f"{p['status']:<8} {p['point']} -> {p['dir']}" + (f"  ({err[0][:300]})" if err else ""))
    sweep_report(Path(rec["points"][0]["dir"]).parent if rec["points"] else None)
    return 0 if all(str(p["status"]).startswith("ok") for p in rec["points"]) else 1
