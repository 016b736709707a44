"""Sweep executors: 8 grid points of a short notebook (quickstart on the scripted backend, so the
cost is papermill's kernel start and the notebook's imports), run sequentially, on a local process
pool and on a local Ray, wall times and ratios measured in one run.

    .venv/bin/python benchmarks/sweep.py
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> list[dict]:
    from workbench.sweeps import sweep

    grid = {"n": ["1", "2"], "max_tokens": ["4", "8"], "temperature": ["0.5", "1.0"]}
    fixed = {"backend": "scripted", "cache": "off"}
    walls = {}
    with tempfile.TemporaryDirectory(prefix="wb-sweep-") as tmp:
        for ex in ("sequential", "local", "ray"):
            t = time.perf_counter()
            rec = sweep("quickstart", grid, fixed, executor=ex, max_parallel=os.cpu_count(), out=Path(tmp) / ex)
            walls[ex] = time.perf_counter() - t
            bad = [p for p in rec["points"] if p["status"] != "ok"]
            if bad:
                raise RuntimeError(f"{ex}: {len(bad)} points failed: {bad[0].get('error')}")
    return [
        {"figure": "sequential, 8 points", "value": walls["sequential"], "unit": "s"},
        {"figure": f"local process pool ({os.cpu_count()} workers), 8 points", "value": walls["local"], "unit": "s"},
        {"figure": f"local Ray ({os.cpu_count()} CPUs), 8 points", "value": walls["ray"], "unit": "s"},
        {"figure": "speed-up local pool vs sequential", "value": walls["sequential"] / walls["local"], "unit": "x"},
        {"figure": "speed-up Ray vs sequential", "value": walls["sequential"] / walls["ray"], "unit": "x"},
    ]


if __name__ == "__main__":
    for r in main():
        print(f"{r['figure']:<50} {r['value']:>8.2f} {r['unit']}")
