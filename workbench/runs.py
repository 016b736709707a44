"""Notebook runs: discovery, parameter validation, papermill execution into run folders, reports.

Run folder layout (one folder holds exactly one run):

- ``run.json``: the run section: id, status (``running`` while it executes, then ``ok``, ``failed``,
  ``no-results`` or ``bad-results``), error, parameters as passed to papermill, start time, wall
  time, out_dir, notebook path and ``notebook_sha256`` (the notebook file's content hash). Written
  first, so a killed run leaves ``running`` behind; rewritten atomically at the end.
- ``results.json``: what the notebook's last cell wrote (``workbench.results.record``); the runner
  adds the same ``run`` section under ``"run"``. A malformed one is left untouched and the run is
  marked ``bad-results``.
- ``<id>.ipynb`` (the executed notebook), ``<id>.html`` (its export), ``run.log`` (cell outputs as
  they streamed, then the traceback of a failure), plus whatever the notebook itself saved there.

``--out`` policy: ``workbench run ID --out DIR`` needs DIR new or empty. A non-empty DIR is refused
(nothing is written) unless ``--force``, which deletes the contents of an earlier run folder (one
holding run.json, run.log or results.json; any other folder is refused even then) before running.
Without ``--out`` a fresh ``runs/<id>/<timestamp>`` is made; ``run all --out BASE`` makes a fresh
``BASE/<id>/<timestamp>`` per notebook. So old metrics can never sit under a new run's info.

Parameter values (``-p NAME VALUE``) follow Python literal rules by the type of the notebook's
default (see :func:`coerce_value`); ``workbench report`` skips and lists unreadable files (see
:func:`scan_runs`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import shutil
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


def _literal(text: str) -> Any:
    """``ast.literal_eval`` of a CLI string; raises ValueError with Python's reason on failure."""
    import ast

    try:
        return ast.literal_eval(text.strip())
    except SyntaxError as e:  # e.g. "leading zeros in decimal integer literals are not permitted"
        raise ValueError(e.msg) from None
    except (ValueError, TypeError):
        raise ValueError("not a Python literal") from None
    except (RecursionError, MemoryError):
        raise ValueError("nested too deeply") from None


def _plain(v: Any) -> Any:
    """The value as papermill can pass it (tuples become lists: papermill would quote a tuple into a
    string); ValueError for NaN, infinity and types a parameters cell cannot hold (sets, complex)."""
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("NaN and infinity are not accepted")
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {k: _plain(x) for k, x in v.items()}
    raise ValueError(f"a {type(v).__name__} cannot be passed as a notebook parameter")


# type name -> (accepts a parsed value, what to say when it does not)
_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, (list, tuple)),
    "tuple": lambda v: isinstance(v, (list, tuple)),
    "dict": lambda v: isinstance(v, dict),
    "str": lambda v: isinstance(v, str),
}


def coerce_value(name: str, value: Any, typ: str, default: str | None = None) -> Any:
    """Turn a ``-p NAME VALUE`` string into a value of the type of the notebook's default.

    Rules (Python literals, not YAML): ``str`` takes the text verbatim; ``bool`` takes ``true`` or
    ``false`` (any case) and nothing else; ``int``, ``float``, ``list`` and ``dict`` take what
    ``ast.literal_eval`` reads, checked against the type: ``017`` is an error (Python has no leading
    zeros; write ``17`` or ``0o17``), ``1:30`` is an error, ``1e-3`` and ``3`` are floats, a tuple is
    accepted for a list (and passed as a list). NaN and infinity (``nan``, ``inf``, ``.nan``, ``1e999``) are rejected for
    every type, also inside lists: a parameter that is not finite is a mistake in every notebook here.
    A parameter of another type (default ``None``, an annotation) takes the literal if the text is one,
    else the text. Values that are not strings (the Python API) are type-checked the same way.
    Every error names the parameter, the value and the expected type.

    >>> coerce_value("n", "4", "int"), coerce_value("t", "1e-3", "float"), coerce_value("b", "true", "bool")
    (4, 0.001, True)
    >>> coerce_value("xs", "[1, 2]", "list"), coerce_value("s", "017", "str")
    ([1, 2], '017')
    """
    kind = typ.split("[")[0].strip().lower()
    check = _TYPE_CHECKS.get(kind)
    shown = f"{typ}" + (f" (the notebook's default is {default})" if default is not None else "")

    def fail(why: str) -> RunError:
        return RunError(f"parameter {name!r} expects {shown}, got {value!r}: {why}")

    if isinstance(value, str):
        if kind == "str":
            return value
        if kind == "bool":
            low = value.strip().lower()
            if low in ("true", "false"):
                return low == "true"
            raise fail("write true or false")
        text = value.strip()
        if text.lower().lstrip("+-.") in ("nan", "inf", "infinity") and check is not None:
            raise fail("NaN and infinity are not accepted")
        try:
            parsed = _literal(text)
        except ValueError as e:
            if check is None:  # an untyped parameter: the text itself
                return value
            why = str(e)
            if "leading zeros" in why and text.isdigit():
                why += f"; write {int(text)} (decimal) or 0o{text.lstrip('0') or '0'} (octal)"
            raise fail(why) from None
    else:
        parsed = value
    if check is not None and not check(parsed):
        raise fail(f"that is a {type(parsed).__name__}")
    try:
        parsed = _plain(parsed)
    except ValueError as e:
        raise fail(str(e)) from None
    if kind == "float":
        parsed = float(parsed)
    return parsed


def validate_parameters(nb_id: str, given: dict[str, Any]) -> dict[str, Any]:
    spec = notebook_parameters(nb_id)
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise RunError(f"unknown parameter(s) {unknown} for notebook {nb_id!r}; valid: "
                       + ", ".join(f"{k} ({v['type']})" for k, v in spec.items()))
    return {k: coerce_value(k, v, spec[k]["type"], spec[k].get("default")) for k, v in given.items()}


def notebook_sha256(nb_id_or_path: str | Path) -> str:
    """Content hash of a notebook file: the notebook version recorded in ``run.json``."""
    p = Path(nb_id_or_path)
    p = p if p.suffix == ".ipynb" else notebook_path(str(nb_id_or_path))
    return hashlib.sha256(p.read_bytes()).hexdigest()


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


RUN_FOLDER_MARKERS = ("run.json", "run.log", "results.json")
"""Files by which a folder is recognised as a run folder (that ``force`` may empty)."""


def new_run_dir(nb_id: str, base: Path | None = None) -> Path:
    """A fresh, empty run folder ``<base>/<id>/<timestamp>[-k]``, created here (never an existing one)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = (base or runs_dir()) / nb_id
    root.mkdir(parents=True, exist_ok=True)
    for k in range(10_000):
        d = root / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise RunError(f"no free run folder name under {root}")


def prepare_out_dir(out: Path, force: bool = False) -> None:
    """Make ``out`` an empty folder for a new run. One folder holds one run: an existing non-empty
    folder is refused, unless ``force`` and it is a run folder (holds run.json, run.log or
    results.json), whose whole contents are then removed, so nothing of the earlier run (metrics,
    figures, the executed notebook) can be read as the new run's."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file, not a folder")
    if not out.exists():
        out.mkdir(parents=True)
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not force:
        listed = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RunError(f"--out {out} is not empty ({listed}); one folder holds one run: choose a new "
                       f"folder, or pass --force to delete its contents and run there")
    if not any((out / m).exists() or (out / m).is_symlink() for m in RUN_FOLDER_MARKERS):
        raise RunError(f"--out {out} holds files but no run.json, run.log or results.json: it is not a "
                       f"run folder, so --force will not delete it; choose another folder")
    for p in out.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def describe_failure(e: BaseException, source: Path | None = None, injected: bool = True) -> str:
    """First line: which cell failed and with what (``cell 3 'x = f()' raised ValueError: bad x``),
    then papermill's traceback. Cells count from 0 in the source notebook ``source``: papermill's
    index counts its injected parameters cell (placed after the ``parameters`` cell, else first)."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(e, PapermillExecutionError):
        text = str(e).strip()
        first = next((l.strip() for l in text.splitlines() if l.strip()), "")
        rest = text if first != text else ""
        return f"{type(e).__name__}: {first}" + (f"\n{rest}" if rest else "")
    idx = e.cell_index
    if source is not None and injected:
        try:
            cells = nbformat.read(source, as_version=4).cells
            tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
            at = tagged[0] + 1 if tagged else 0  # where papermill put the injected cell
            if idx > at:
                idx -= 1
        except Exception:  # an unreadable source: papermill's own index, still a pointer
            pass
    line = next((l.strip() for l in str(e.source or "").splitlines() if l.strip()), "")
    if len(line) > 80:
        line = line[:77] + "..."
    evalue = " ".join(str(e.evalue).split())
    return (f"cell {idx} {line!r} raised {e.ename}" + (f": {evalue}" if evalue else "")
            + "\n" + str(e).strip())


def run_notebook(nb_id: str, params: dict[str, Any] | None = None, out_dir: str | Path | None = None, *,
                 timeout: int | None = None, html: bool = True, progress: bool = False,
                 kernel: str = "python3", force: bool = False, mlflow: str | None = None,
                 sweep: str | Path | None = None) -> RunResult:
    """Execute one notebook with papermill into a run folder; never raises for a failing notebook
    (the failure is recorded in ``run.json`` and the returned status).

    ``mlflow``: log the finished run folder to MLflow (``"1"``/``"local"``, a tracking URI, ``"off"``;
    None: as ``$WORKBENCH_MLFLOW`` says; see :mod:`workbench.tracking`). ``sweep``: the sweep folder
    this run is a point of (a tag in MLflow).

    ``out_dir`` must be new or empty (or, with ``force``, an earlier run folder, which is emptied
    first); without it a fresh ``runs/<id>/<timestamp>`` is made. Bad parameters and a refused
    folder raise :class:`RunError` before anything is written."""
    import papermill as pm

    from .export import finish_run_folder, papermill_options

    from . import tracking

    src = notebook_path(nb_id)
    params = validate_parameters(nb_id, dict(params or {}))
    track = tracking.requested(mlflow)
    if track:
        try:
            tracking._mlflow()  # before anything runs: a missing extra is a bad request
        except tracking.TrackingError as e:
            raise RunError(str(e)) from None
    spec = notebook_parameters(nb_id)
    if "out_dir" in params and "out_dir" in spec:
        raise RunError("the run folder is set with --out (out_dir=...), not -p out_dir")
    nb_sha = notebook_sha256(src)
    if out_dir:
        out = Path(out_dir).resolve()
        prepare_out_dir(out, force)
    else:
        out = new_run_dir(nb_id).resolve()
    if "out_dir" in spec:
        params["out_dir"] = str(out)
    executed = out / f"{nb_id}.ipynb"
    log_path = out / "run.log"
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_info = {"id": nb_id, "status": "running", "error": None, "params": dict(params), "started": started,
                "wall_time_s": None, "out_dir": str(out), "notebook": str(src), "notebook_sha256": nb_sha}
    write_json_atomic(out / "run.json", run_info)  # a killed run leaves status "running" behind
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(message)s"))
    pm_log = logging.getLogger("papermill")
    pm_log.addHandler(handler)
    pm_log.setLevel(logging.INFO)
    t0 = time.time()
    status, error = "ok", None
    # record() in the kernel sees this and leaves MLflow logging to the runner (logged once, complete)
    env_before = os.environ.get(tracking.RUNNER_ENV)
    os.environ[tracking.RUNNER_ENV] = str(out)
    try:
        pm.execute_notebook(str(src), str(executed), parameters=params, kernel_name=kernel,
                            cwd=str(src.parent), progress_bar=progress, log_output=True,
                            execution_timeout=timeout, request_save_on_cell_execute=True,
                            **papermill_options(kernel))  # exportable figures, no widget state
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        status = "failed"
        error = describe_failure(e, src, injected=bool(params))
        with open(log_path, "a") as f:
            f.write("\n" + traceback.format_exc())
    finally:
        pm_log.removeHandler(handler)
        handler.close()
        if env_before is None:
            os.environ.pop(tracking.RUNNER_ENV, None)
        else:
            os.environ[tracking.RUNNER_ENV] = env_before
    wall = time.time() - t0
    if executed.exists():
        try:  # compact notebook (no widget state); HTML with plotly.js once (workbench/export.py)
            finish_run_folder(executed, out / f"{nb_id}.html" if html else None)
        except Exception as e:  # an export failure must not hide the run's own result
            with open(log_path, "a") as f:
                f.write(f"\nHTML export failed: {e!r}\n")
    run_info.update(status=status, error=error, wall_time_s=round(wall, 2))
    metrics = None
    res_path = out / "results.json"
    if res_path.exists() or res_path.is_symlink():
        data, problem = read_json_object(res_path)
        if data is not None and "metrics" in data and not isinstance(data["metrics"], dict):
            data, problem = None, f"its metrics are a JSON {_json_kind(data['metrics'])}, not an object"
        if problem is not None:  # left as it is for inspection; the run is not ok
            note = f"results.json written by the notebook is unusable: {problem}"
            if status == "ok":
                status, error = "bad-results", note
            else:
                error = f"{error}\n{note}"
        else:
            data["run"] = run_info
            metrics = data.get("metrics")
            try:
                write_json_atomic(res_path, data)
            except OSError as e:
                error = (error + "\n" if error else "") + f"could not add the run section to results.json: {e}"
    elif status == "ok":
        status = "no-results"
        error = "the notebook finished without writing results.json"
    run_info.update(status=status, error=error)
    write_json_atomic(out / "run.json", run_info)
    if track:
        try:
            rid = tracking.log_run_folder(out, track, runs_base=runs_dir(), sweep=sweep)
            note = f"MLflow: logged as run {rid} ({track})"
        except Exception as e:  # tracking is a copy of the run: its failure does not change the status
            note = f"MLflow logging failed ({track}): {type(e).__name__}: {e}"
            import sys

            print(note, file=sys.stderr)
        with open(log_path, "a") as f:
            f.write(f"\n{note}\n")
    return RunResult(nb_id, out, status, wall, params, error, metrics)


# ------------------------------------------------------------------------------ reports
def _json_kind(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "number")


def read_json_object(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(data, None)`` for a readable JSON object, else ``(None, why)``: never raises for a corrupt,
    unreadable or wrong-shaped file (a folder of that name, invalid UTF-8 or JSON, ``[]``, ``null``)."""
    if path.is_dir():
        return None, "is a directory"
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    except json.JSONDecodeError as e:
        return None, f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    except (ValueError, RecursionError) as e:  # huge integers, deep nesting
        return None, f"is not usable JSON ({type(e).__name__}: {e})"[:200]
    if not isinstance(data, dict):
        return None, f"holds a JSON {_json_kind(data)}, not an object"
    return data, None


def _run_info_problem(info: dict[str, Any]) -> str | None:
    """What makes a parsed ``run.json`` unusable for a report (None when it is fine)."""
    for key in ("id", "status"):
        if not isinstance(info.get(key), str):
            return f"has no {key!r} string"
    wall = info.get("wall_time_s")
    if wall is not None and (isinstance(wall, bool) or not isinstance(wall, (int, float))):
        return "its 'wall_time_s' is not a number"
    if not isinstance(info.get("params", {}), dict):
        return "its 'params' is not an object"
    if info.get("error") is not None and not isinstance(info["error"], str):
        return "its 'error' is not a string"
    return None


def scan_runs(base: str | Path | None = None) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every run folder under ``base`` (recursively) as a row (run info and flattened summary
    metrics), and the files that were skipped: ``[{"path", "reason"}]``. A corrupt, unreadable or
    wrong-shaped ``run.json`` skips its run; such a ``results.json`` keeps the run's row without
    metrics. Nothing here raises for a bad file."""
    from .results import flatten_scalars

    base = Path(base) if base else runs_dir()
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for rj in sorted(base.rglob("run.json")):
        info, problem = read_json_object(rj)
        if info is not None:
            problem = _run_info_problem(info)
        if problem is not None:
            skipped.append({"path": str(rj), "reason": f"run.json {problem}"})
            continue
        res = rj.parent / "results.json"
        metrics: dict[str, Any] = {}
        backend = None
        if res.exists() or res.is_symlink():
            data, problem = read_json_object(res)
            m = (data or {}).get("metrics", {})
            if data is not None and not isinstance(m, dict):
                problem = f"its metrics are a JSON {_json_kind(m)}, not an object"
            if problem is not None:
                skipped.append({"path": str(res), "reason": f"results.json {problem}"})
            else:
                summary = m.get("summary", m)
                metrics = flatten_scalars(summary if isinstance(summary, dict) else {})
                b = data.get("backend")
                backend = b.get("spec") if isinstance(b, dict) else None
        params = info.get("params") or {}
        rows.append({"id": info["id"], "status": info["status"], "wall_time_s": info.get("wall_time_s"),
                     "backend": backend or params.get("backend"), "dir": str(rj.parent),
                     "params": params, "metrics": metrics, "error": info.get("error")})
    return rows, skipped


def collect_runs(base: str | Path | None = None) -> list[dict[str, Any]]:
    """The rows of :func:`scan_runs` (bad files skipped)."""
    return scan_runs(base)[0]


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
    """Run several notebooks, each into a fresh ``<base>/<id>/<timestamp>`` folder. The shared
    ``params`` go to the notebooks that have them; a name that no notebook has, or a value that one of
    them cannot take, is a :class:`RunError` before anything runs."""
    ids = list(ids)
    params = dict(params or {})
    specs = {nb_id: notebook_parameters(nb_id) for nb_id in ids}
    unknown = sorted(k for k in params if not any(k in spec for spec in specs.values()))
    if unknown:
        known = sorted({k for spec in specs.values() for k in spec})
        raise RunError(f"unknown parameter(s) {unknown}: no notebook of {ids} has them; valid: {', '.join(known)}")
    chosen = {nb_id: {k: v for k, v in params.items() if k in spec} for nb_id, spec in specs.items()}
    for nb_id, p in chosen.items():  # every value checked before the first run
        try:
            validate_parameters(nb_id, p)
        except RunError as e:
            raise RunError(f"notebook {nb_id!r}: {e}") from None
    return [run_notebook(nb_id, chosen[nb_id], new_run_dir(nb_id, base), **kw) for nb_id in ids]
