"""Optional experiment tracking in MLflow: each run's parameters, summary metrics and run folder.

Asked for with ``workbench run|sweep ... --mlflow [URI]`` or the environment variable
``WORKBENCH_MLFLOW`` (``1``/``on``: the local store; anything else: a tracking URI, e.g.
``http://mlflow.example:5000`` or ``sqlite:////abs/path/mlflow.db``). Unset, nothing is logged and
mlflow is never imported.

- Local store (the default): ``<runs folder>/mlflow/mlflow.db`` (SQLite; MLflow 3 keeps its plain
  file store in maintenance mode) with artifacts in ``<runs folder>/mlflow/artifacts``. Look at it with
  ``mlflow ui --backend-store-uri sqlite:///<runs folder>/mlflow/mlflow.db`` (README: the UI server
  needs the full ``mlflow`` package, best in its own environment).
- Experiment ``workbench/<notebook id>``; one MLflow run per run folder, named after it; parameters
  from ``run.json`` (``out_dir`` left out), metrics: the numeric scalars of ``results.json``'s
  ``summary`` (else of all metrics), flattened to ``a.b`` keys, plus ``wall_time_s``; tags: status,
  notebook SHA-256, git commit, run folder, and the sweep folder for sweep points; the whole run folder
  as artifacts (so the HTML export opens from the MLflow UI).
- Who logs: the runner (``workbench run``/``run all``/``sweep``), after the run folder is complete. A
  ``record()`` call in a notebook opened by hand logs its own results when ``WORKBENCH_MLFLOW`` is
  set; under the runner it leaves the logging to the runner (``WORKBENCH_RUNNER_OUT`` is set), so a
  run is logged once.
- MLflow is the ``tracking`` extra (``pip install 'workbench[tracking]'``: mlflow-skinny, SQLAlchemy,
  alembic), not a core dependency; asked for without it, :class:`TrackingError` names the extra. A
  tracking failure (server down) is reported in ``run.log`` and the run's status is not changed.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

ENV = "WORKBENCH_MLFLOW"
RUNNER_ENV = "WORKBENCH_RUNNER_OUT"
_ON = {"1", "on", "true", "yes", "local"}
_OFF = {"", "0", "off", "false", "no"}


class TrackingError(RuntimeError):
    """Tracking was asked for but cannot be done (mlflow missing, bad URI)."""


def requested(value: str | None = None) -> str | None:
    """The tracking target asked for: ``"local"``, a URI, or None (off). ``value`` (a CLI flag's value)
    wins over the environment variable.

    >>> requested("off"), requested("1"), requested("sqlite:////tmp/x.db")
    (None, 'local', 'sqlite:////tmp/x.db')
    """
    v = os.environ.get(ENV, "") if value is None else value
    v = v.strip()
    if v.lower() in _OFF:
        return None
    return "local" if v.lower() in _ON else v


def _mlflow():
    try:
        import mlflow
    except ImportError:
        raise TrackingError("MLflow tracking needs the Python package 'mlflow-skinny' (or 'mlflow'), which is "
                            "not installed. Install it with: pip install 'workbench[tracking]'") from None
    return mlflow


def local_store(runs_base: str | os.PathLike) -> tuple[str, Path]:
    """(tracking URI, artifact root) of the local store under a runs folder."""
    root = Path(runs_base).resolve() / "mlflow"
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


def _metric_values(metrics: Any) -> dict[str, float]:
    from .results import flatten_scalars

    if not isinstance(metrics, Mapping):
        return {}
    src = metrics.get("summary") if isinstance(metrics.get("summary"), Mapping) else metrics
    out = {}
    for k, v in flatten_scalars(src).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(float(v)):  # MLflow stores NaN but its UI cannot plot it; keep it as a tag below
            out[_key(k)] = float(v)
    return out


def _key(k: str) -> str:
    """MLflow keys allow alphanumerics, ``_ - . space / :``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in str(k))[:250]


def _param_values(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        if k == "out_dir":
            continue
        s = v if isinstance(v, str) else json.dumps(v, default=str)
        out[_key(k)] = s[:6000]  # MLflow's limit on a parameter value
    return out


def log_run_folder(run_dir: str | os.PathLike, target: str, *, runs_base: str | os.PathLike | None = None,
                   sweep: str | os.PathLike | None = None, artifacts: bool = True) -> str:
    """Log one run folder (``run.json`` + ``results.json`` + files) as an MLflow run; returns its id.

    ``target``: ``"local"`` (the store under ``runs_base``, default the folder's grandparent) or a URI."""
    from .runs import read_json_object

    mlflow = _mlflow()
    from mlflow.tracking import MlflowClient

    d = Path(run_dir).resolve()
    info, _ = read_json_object(d / "run.json")
    res, _ = read_json_object(d / "results.json")
    info, res = info or {}, res or {}
    nb_id = str(info.get("id") or res.get("notebook") or d.parent.name)
    artifact_root = None
    if target == "local":
        base = Path(runs_base) if runs_base else d.parent.parent
        uri, artifact_root = local_store(base)
        artifact_root.mkdir(parents=True, exist_ok=True)
    else:
        uri = target
    client = MlflowClient(tracking_uri=uri)
    name = f"workbench/{nb_id}"
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        name, artifact_location=(artifact_root / nb_id).as_uri() if artifact_root else None)
    params = info.get("params") if isinstance(info.get("params"), Mapping) else res.get("params")
    tags = {"workbench.notebook": nb_id, "workbench.status": str(info.get("status", "interactive")),
            "workbench.run_folder": str(d), "workbench.notebook_sha256": str(info.get("notebook_sha256") or ""),
            "workbench.git_commit": str(res.get("git_commit") or "")}
    if sweep:
        tags["workbench.sweep"] = str(Path(sweep).resolve())
    run = client.create_run(exp_id, run_name=d.name, tags=tags)
    rid = run.info.run_id
    try:
        from mlflow.entities import Metric, Param

        values = _metric_values(res.get("metrics"))
        wall = info.get("wall_time_s", res.get("wall_time_s"))
        if isinstance(wall, (int, float)) and not isinstance(wall, bool):
            values["wall_time_s"] = float(wall)
        import time

        now = int(time.time() * 1000)
        client.log_batch(rid, metrics=[Metric(k, v, now, 0) for k, v in values.items()],
                         params=[Param(k, v) for k, v in _param_values(params or {}).items()])
        if artifacts:
            client.log_artifacts(rid, str(d))
        client.set_terminated(rid, "FINISHED" if info.get("status", "ok") == "ok" else "FAILED")
    except Exception:
        client.set_terminated(rid, "FAILED")
        raise
    return rid
