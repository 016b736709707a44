"""Run every benchmark script's ``main()`` and write one table (figure, value, unit, machine, date)
to ``bench_results/<date>.csv`` (and print it), so later runs can be compared against it.

    .venv/bin/python benchmarks/run_all.py [name ...]
"""
from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import os
import platform
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_"))
    if names:
        scripts = [p for p in scripts if p.stem in names]
    machine = f"{platform.machine()} {os.cpu_count()} cpus {platform.processor() or ''}".strip()
    date = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    rows, failed = [], []
    for p in scripts:
        print(f"== {p.stem}", flush=True)
        spec = importlib.util.spec_from_file_location(f"bench_{p.stem}", p)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            for r in mod.main():
                rows.append({"benchmark": p.stem, **r, "machine": machine, "date": date})
                print(f"   {r['figure']:<55} {r['value']:>12.4g} {r['unit']}", flush=True)
        except Exception:
            failed.append(p.stem)
            traceback.print_exc()
    out = Path("bench_results")
    out.mkdir(exist_ok=True)
    path = out / f"{dt.datetime.now():%Y%m%d-%H%M%S}.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["benchmark", "figure", "value", "unit", "machine", "date"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {path}" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
