"""``workbench list | run ID|all [-p NAME VALUE ...] [--out DIR [--force]] | report [DIR] | freeze NB | sweep | serve``"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_list(a) -> int:
    from .runs import list_notebooks

    nbs = list_notebooks()
    w = max([len(n["id"]) for n in nbs] + [2])
    print(f"{'id'.ljust(w)}  {'runtime':>8}  {'gpus':>4}  title")
    for n in nbs:
        rt = f"{n['runtime_s']}s" if n["runtime_s"] is not None else "?"
        print(f"{n['id'].ljust(w)}  {rt:>8}  {n['resources'].get('gpus', 0):>4}  {n['title']}")
    return 0


def _params(pairs) -> dict:
    return {k: v for k, v in (pairs or [])}


def _cmd_run(a) -> int:
    from .runs import RunError, collect_runs, format_table, list_notebooks, run_many, run_notebook

    try:
        if a.id == "all":
            if a.force:
                raise RunError("--force is for one run's --out; 'run all' makes a fresh folder per notebook")
            ids = [n["id"] for n in list_notebooks()]
            base = Path(a.out) if a.out else None
            results = run_many(ids, _params(a.param), base=base, timeout=a.timeout, mlflow=a.mlflow)
        else:
            results = [run_notebook(a.id, _params(a.param), a.out, timeout=a.timeout, progress=not a.quiet,
                                    force=a.force, mlflow=a.mlflow)]
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    for r in results:
        rows += [row for row in collect_runs(r.out_dir)]
        print(f"{r.id}: {r.status} in {r.wall_time_s:.0f} s -> {r.out_dir}"
              + (f"\n  {r.error.splitlines()[0][:300]}" if r.error else ""), file=sys.stderr)
    if a.summary or a.id == "all":
        print(format_table(rows))
    elif results[0].metrics is not None:
        print(json.dumps(results[0].metrics.get("summary", {}) if isinstance(results[0].metrics, dict) else {},
                         indent=2)[:4000])
    return 0 if all(r.status == "ok" for r in results) else 1


def _cmd_report(a) -> int:
    from .runs import format_table, scan_runs

    if a.dir is not None and not Path(a.dir).is_dir():
        print(f"error: {a.dir} is not a folder", file=sys.stderr)
        return 2
    rows, skipped = scan_runs(a.dir)
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows, max_metrics=a.metrics))
    if skipped:  # after the table; on stderr under --json so that stdout stays one JSON document
        lines = [f"skipped {len(skipped)} unusable file(s):"] + [f"  {s['path']}: {s['reason']}" for s in skipped]
        print("\n".join(lines), file=sys.stderr if a.json else sys.stdout)
    if rows:  # the same table as a page: each run's HTML linked, its key metrics (workbench/export.py)
        from .export import write_report_html
        from .runs import runs_dir

        page = write_report_html(rows, Path(a.dir) if a.dir else runs_dir(), max_metrics=max(a.metrics, 6))
        print(f"HTML report (links each run's HTML): {page}", file=sys.stderr if a.json else sys.stdout)
    if a.sweep:
        from .sweeps import sweep_report

        sweep_report(a.dir)
    return 0


def _cmd_freeze(a) -> int:
    from .nbtools import main as nbmain

    return nbmain(["freeze", *a.paths])


def _cmd_sweep(a) -> int:
    from .sweeps import main_sweep

    return main_sweep(a)


def _cmd_serve(a) -> int:
    """Serve a notebook as an app (widgets and outputs, code hidden) with Voila.

    The process turns into Voila (exec) rather than waiting on it as a child: a signal sent to
    `workbench serve` (Ctrl-C, a supervisor's or a test's SIGTERM) then reaches Voila itself, which shuts
    its kernels down before it exits; a child would be orphaned, kernel and all, if only its parent
    were stopped. Each page load executes the notebook in a fresh kernel (Voila's model)."""
    import importlib.util
    import os

    from .runs import RunError, notebook_path

    try:
        nb = notebook_path(a.id)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 0 <= a.port <= 65535:  # bad input first: it is an error whatever is installed
        print(f"error: --port {a.port} is not a TCP port", file=sys.stderr)
        return 2
    if importlib.util.find_spec("voila") is None:
        print("error: serving needs Voila: pip install 'workbench[browser]'", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "voila", str(nb), f"--port={a.port}", "--no-browser", f"--Voila.ip={a.ip}",
           "--strip_sources=True"]
    print(" ".join(cmd), flush=True)
    os.execv(sys.executable, cmd)
    return 0  # not reached: exec replaces this process


MLFLOW_HELP = ("log each run (parameters, summary metrics, run folder) to MLflow: no value = the local store "
               "<runs>/mlflow, or a tracking URI; default: $WORKBENCH_MLFLOW (needs pip install 'workbench[tracking]')")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="workbench", description="Run the paper notebooks headless.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="notebooks with their default runtime").set_defaults(func=_cmd_list)
    r = sub.add_parser("run", help="run one notebook (or 'all') into a run folder")
    r.add_argument("id")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="override a parameter of the notebook's parameters cell")
    r.add_argument("--out", help="run folder, new or empty (default runs/<id>/<timestamp>); for 'all': a base "
                                 "folder, each notebook runs in a fresh <out>/<id>/<timestamp>")
    r.add_argument("--force", action="store_true",
                   help="--out is an earlier run folder: delete its contents, then run there")
    r.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    r.add_argument("--summary", action="store_true", help="print the table of runs at the end")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument("--mlflow", nargs="?", const="local", default=None, metavar="URI", help=MLFLOW_HELP)
    r.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="table of the runs under DIR (default ./runs); files that cannot be "
                                        "read are skipped and listed after it")
    rep.add_argument("dir", nargs="?", default=None)
    rep.add_argument("--json", action="store_true")
    rep.add_argument("--metrics", type=int, default=4, help="metrics shown per run")
    rep.add_argument("--sweep", action="store_true", help="also write the sweep table and figures")
    rep.set_defaults(func=_cmd_report)
    f = sub.add_parser("freeze", help="execute a notebook in place and keep only its checked outputs")
    f.add_argument("paths", nargs="+")
    f.set_defaults(func=_cmd_freeze)
    s = sub.add_parser("sweep", help="run a parameter grid of one notebook (local processes or Ray)")
    s.add_argument("id")
    s.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2", help="one grid axis")
    s.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"), help="fixed parameter")
    s.add_argument("--executor", choices=["local", "ray", "sequential"], default="local")
    s.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    s.add_argument("--max-parallel", type=int, default=None)
    s.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<id>-<timestamp>)")
    s.add_argument("--timeout", type=int, default=None)
    s.add_argument("--mlflow", nargs="?", const="local", default=None, metavar="URI", help=MLFLOW_HELP)
    s.set_defaults(func=_cmd_sweep)
    v = sub.add_parser("serve", help="serve a notebook as an app with Voila")
    v.add_argument("id")
    v.add_argument("--port", type=int, default=8866)
    v.add_argument("--ip", default="127.0.0.1",
                   help="interface to listen on (default loopback; Voila asks for no token, so widen it knowingly)")
    v.set_defaults(func=_cmd_serve)
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
