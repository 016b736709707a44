"""Notebook runs: discovery, parameter validation, papermill execution into run folders, reports.

A run folder holds the executed notebook ``<id>.ipynb``, its HTML export ``<id>.html``, the
``results.json`` the notebook's last cell wrote (the runner adds a ``run`` section: status, wall
time, parameters as given, error), ``run.json`` (the same ``run`` section alone, also written when the
notebook failed before recording) and ``run.log`` (cell outputs as they streamed).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]


class RunError(RuntimeError):
    """A bad run request (unknown notebook, unknown or ill-typed parameter)."""


def notebooks_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_NOTEBOOKS", REPO_ROOT / "notebooks"))


def runs_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_RUNS_DIR", Path.cwd() / "runs"))


def notebook_path(nb_id: str) -> Path:
    p = notebooks_dir() / f"{nb_id}.ipynb"
    if not p.exists():
        ids = [n["id"] for n in list_notebooks()]
        raise RunError(f"unknown notebook {nb_id!r}; available: {', '.join(ids) or 'none'}")
    return p


def list_notebooks() -> list[dict[str, Any]]:
    """Every notebook with its title, measured default runtime and declared resources."""
    out = []
    for p in sorted(notebooks_dir().glob("*.ipynb")):
        if p.name.endswith(".executing.ipynb"):
            continue
        nb = nbformat.read(p, as_version=4)
        meta = nb.metadata.get("workbench", {})
        title = meta.get("title")
        if not title:
            for c in nb.cells:
                if c.cell_type == "markdown" and c.source.strip().startswith("#"):
                    title = c.source.strip().splitlines()[0].lstrip("# ").strip()
                    break
        out.append({"id": p.stem, "title": title or p.stem, "runtime_s": meta.get("runtime_s"),
                    "resources": meta.get("resources", {"cpus": 1, "gpus": 0}), "path": str(p)})
    return out


# ------------------------------------------------------------------------------ parameters
def notebook_parameters(nb_id_or_path: str | Path) -> dict[str, dict]:
    from .nbtools import notebook_parameters as _np

    p = Path(nb_id_or_path)
    return _np(p if p.suffix == ".ipynb" else notebook_path(str(nb_id_or_path)))


_BOOL = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def coerce_value(name: str, value: Any, typ: str) -> Any:
    """Coerce a CLI string to the type papermill inferred for the parameter's default.

    >>> coerce_value("n", "4", "int"), coerce_value("t", "0.5", "float"), coerce_value("b", "true", "bool")
    (4, 0.5, True)
    >>> coerce_value("xs", "[1, 2]", "list")
    [1, 2]
    """
    import yaml

    if not isinstance(value, str):
        parsed = value
    elif typ == "str":
        return value
    else:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise RunError(f"parameter {name!r}: cannot parse {value!r}") from None
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list),
        "dict": lambda v: isinstance(v, dict),
        "str": lambda v: isinstance(v, str),
    }.get(typ.split("[")[0].lower())
    if typ == "bool" and isinstance(value, str) and value.lower() in _BOOL:
        return _BOOL[value.lower()]
    if ok is not None and not ok(parsed):
        raise RunError(f"parameter {name!r} expects {typ}, got {value!r}")
    if typ == "float" and isinstance(parsed, int):
        parsed = float(parsed)
    return parsed


def validate_parameters(nb_id: str, given: dict[str, Any]) -> dict[str, Any]:
    spec = notebook_parameters(nb_id)
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise RunError(f"unknown parameter(s) {unknown} for notebook {nb_id!r}; valid: "
                       + ", ".join(f"{k} ({v['type']})" for k, v in spec.items()))
    return {k: coerce_value(k, v, spec[k]["type"]) for k, v in given.items()}


# ------------------------------------------------------------------------------ execution
@dataclass
class RunResult:
    id: str
    out_dir: Path
    status: str
    wall_time_s: float
    params: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    metrics: dict[str, Any] | None = None


def new_run_dir(nb_id: str, base: Path | None = None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = (base or runs_dir()) / nb_id / stamp
    k = 1
    while d.exists():
        d = (base or runs_dir()) / nb_id / f"{stamp}-{k}"
        k += 1
    return d


def run_notebook(nb_id: str, params: dict[str, Any] | None = None, out_dir: str | Path | None = None, *,
                 timeout: int | None = None, html: bool = True, progress: bool = False,
                 kernel: str = "python3") -> RunResult:
    """Execute one notebook with papermill into a run folder; never raises for a failing notebook
    (the failure is recorded in ``run.json`` and the returned status)."""
    import papermill as pm

    src = notebook_path(nb_id)
    params = validate_parameters(nb_id, dict(params or {}))
    out = Path(out_dir) if out_dir else new_run_dir(nb_id)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = notebook_parameters(nb_id)
    if "out_dir" in spec:
        params["out_dir"] = str(out)
    executed = out / f"{nb_id}.ipynb"
    log_path = out / "run.log"
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(message)s"))
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()
    status, error = "ok", None
    env_before = os.environ.get("WORKBENCH_RUNS_DIR")
    try:
        pm.execute_notebook(str(src), str(executed), parameters=params, kernel_name=kernel,
                            cwd=str(src.parent), progress_bar=progress, log_output=True,
                            execution_timeout=timeout, request_save_on_cell_execute=True)
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        status = "failed"
        error = f"{type(e).__name__}: {e}"
        with open(log_path, "a") as f:
            f.write("\n" + traceback.format_exc())
    finally:
        pm_log.removeHandler(handler)
        handler.close()
        if env_before is not None:
            os.environ["WORKBENCH_RUNS_DIR"] = env_before
    wall = time.time() - t0
    if html and executed.exists():
        try:
            from nbconvert import HTMLExporter

            body, _ = HTMLExporter().from_filename(str(executed))
            (out / f"{nb_id}.html").write_text(body)
        except Exception as e:  # an export failure must not hide the run's own result
            with open(log_path, "a") as f:
                f.write(f"\nHTML export failed: {e!r}\n")
    run_info = {"id": nb_id, "status": status, "error": error, "params": {k: v for k, v in params.items()},
                "started": started, "wall_time_s": round(wall, 2), "out_dir": str(out),
                "notebook": str(src)}
    metrics = None
    res_path = out / "results.json"
    if res_path.exists():
        data = json.loads(res_path.read_text())
        data["run"] = run_info
        metrics = data.get("metrics")
        tmp = res_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, res_path)
    elif status == "ok":
        run_info["status"] = status = "no-results"
        run_info["error"] = error = "the notebook finished without writing results.json"
    (out / "run.json").write_text(json.dumps(run_info, indent=2))
    return RunResult(nb_id, out, status, wall, params, error, metrics)


# ------------------------------------------------------------------------------ reports
def collect_runs(base: str | Path | None = None) -> list[dict[str, Any]]:
    """Every run folder under ``base`` (recursively): its run info and flattened summary metrics."""
    from .results import flatten_scalars

    base = Path(base) if base else runs_dir()
    rows = []
    for rj in sorted(base.rglob("run.json")):
        info = json.loads(rj.read_text())
        res = rj.parent / "results.json"
        metrics: dict[str, Any] = {}
        backend = None
        if res.exists():
            data = json.loads(res.read_text())
            m = data.get("metrics") or {}
            metrics = flatten_scalars(m.get("summary", m) if isinstance(m, dict) else {})
            backend = (data.get("backend") or {}).get("spec") if isinstance(data.get("backend"), dict) else None
        rows.append({"id": info.get("id"), "status": info.get("status"), "wall_time_s": info.get("wall_time_s"),
                     "backend": backend or info.get("params", {}).get("backend"), "dir": str(rj.parent),
                     "params": info.get("params", {}), "metrics": metrics, "error": info.get("error")})
    return rows


def format_table(rows: Sequence[dict[str, Any]], max_metrics: int = 4) -> str:
    """A plain-text table of runs: id, status, wall time, backend, first few metrics."""
    from .results import round_sig

    header = ["notebook", "status", "wall s", "backend", "metrics"]
    lines = []
    for r in rows:
        ms = r.get("metrics") or {}
        shown = ", ".join(f"{k}={round_sig(v, 3) if isinstance(v, float) else v}"
                          for k, v in list(ms.items())[:max_metrics])
        lines.append([str(r.get("id")), str(r.get("status")),
                      f"{r['wall_time_s']:.0f}" if r.get("wall_time_s") is not None else "-",
                      str(r.get("backend") or "-"), shown or (r.get("error") or "")[:80]])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    fmt = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(l) for l in lines])


def run_many(ids: Iterable[str], params: dict[str, Any] | None = None, base: Path | None = None,
             **kw) -> list[RunResult]:
    results = []
    for nb_id in ids:
        p = dict(params or {})
        spec = notebook_parameters(nb_id)
        p = {k: v for k, v in p.items() if k in spec}  # shared -p values go where they apply
        results.append(run_notebook(nb_id, p, new_run_dir(nb_id, base), **kw))
    return results
