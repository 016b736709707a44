"""Notebook utilities: read the parameters cell, freeze a notebook for committing.

``python -m workbench.nbtools freeze notebooks/<id>.ipynb`` executes the notebook in place (its own
defaults, no injected parameters), then keeps only the outputs of cells whose first line is
``# NBVAL_CHECK_OUTPUT`` (what nbval compares), drops execution counts and widget state, and writes
it back. ``strip`` does the same without executing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def is_checked(cell) -> bool:
    return cell.get("cell_type") == "code" and cell.get("source", "").lstrip().startswith(CHECK_MARK)


def strip_notebook(nb, keep_checked: bool = True):
    """Remove outputs (except checked cells'), execution counts, widget state, papermill metadata."""
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        md = cell.setdefault("metadata", {})
        for k in ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled"):
            md.pop(k, None)
        if keep_checked and is_checked(cell):
            outs = []
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stdout":
                    outs.append(o)
                elif o.get("output_type") in ("execute_result", "display_data"):
                    data = {k: v for k, v in o.get("data", {}).items() if k == "text/plain"}
                    if data:
                        o["data"] = data
                        o["metadata"] = {}
                        outs.append(o)
            cell["outputs"] = outs
            # nbval refuses a reference cell with outputs but no execution count ("unrun")
            cell["execution_count"] = 1 if outs else None
            for o in outs:
                if "execution_count" in o:
                    o["execution_count"] = 1
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
    for k in ("widgets", "papermill"):
        nb.metadata.pop(k, None)
    tags = [t for c in nb.cells for t in c.get("metadata", {}).get("tags", [])]
    if "injected-parameters" in tags:
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    return nb


def infer_type(default: str) -> str:
    """Type name of a parameter from its default's source text (papermill only types annotated ones).

    >>> infer_type("3"), infer_type("0.5"), infer_type('"x"'), infer_type("[1]"), infer_type("True"), infer_type("None")
    ('int', 'float', 'str', 'list', 'bool', 'None')
    """
    import ast

    try:
        v = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "None"
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict",
            tuple: "list"}.get(type(v), "None")


def notebook_parameters(path: str | os.PathLike) -> dict[str, dict]:
    """Parameters of a notebook's ``parameters`` cell: name -> {default, type, help} (via papermill;
    types of unannotated parameters inferred from their default)."""
    import papermill as pm

    out = {}
    for k, v in pm.inspect_notebook(str(path)).items():
        t = v["inferred_type_name"]
        if t in (None, "None"):
            t = infer_type(v["default"])
        out[k] = {"default": v["default"], "type": t, "help": v["help"]}
    return out


def freeze(path: str | os.PathLike, timeout: int = 1800, kernel: str = "python3") -> float:
    """Execute in place with defaults, then strip. Returns the execution wall time in seconds."""
    import papermill as pm

    path = Path(path)
    t0 = time.time()
    tmp = path.with_suffix(".executing.ipynb")
    try:
        pm.execute_notebook(str(path), str(tmp), kernel_name=kernel, cwd=str(path.parent),
                            progress_bar=False, request_save_on_cell_execute=False,
                            execution_timeout=timeout)
        wall = time.time() - t0
        nb = nbformat.read(tmp, as_version=4)
    finally:
        if tmp.exists():
            tmp.unlink()
    strip_notebook(nb)
    wb = nb.metadata.setdefault("workbench", {})
    wb.setdefault("runtime_s", round(wall))
    nbformat.write(nb, path)
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.nbtools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("freeze", help="execute in place, keep only checked outputs")
    f.add_argument("paths", nargs="+")
    f.add_argument("--timeout", type=int, default=1800)
    s = sub.add_parser("strip", help="strip outputs without executing")
    s.add_argument("paths", nargs="+")
    a = ap.parse_args(argv)
    for p in a.paths:
        if a.cmd == "freeze":
            wall = freeze(p, timeout=a.timeout)
            print(f"{p}: executed in {wall:.1f} s, frozen")
        else:
            nb = nbformat.read(p, as_version=4)
            nbformat.write(strip_notebook(nb), p)
            print(f"{p}: stripped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
