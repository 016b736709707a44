"""Answer parsers on adversarial inputs (long runs of spaces/newlines after a tag or keyword): seconds
per call at size n and 2n, and their ratio (about 2 for linear time, 4 quadratic, 8 cubic). Each case
runs in its own process under a time limit (``> limit`` when it did not finish).

Run against another checkout (e.g. the old code in a git worktree) with
``PYTHONPATH=/tmp/old python benchmarks/parsers_linear.py --limit 20``.

The ratios need calls long enough to time: on the new code use ``--scale 20`` (the old code does not
finish most cases at scale 1).

Run: ``python benchmarks/parsers_linear.py [--limit 20] [--scale 1]``
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time


def _cases(scale: float):
    from workbench.confidence.policies import parse_confidence, parse_top_k
    from workbench.math2 import parsing as m2
    from workbench.tasks.base import parse_answer
    from workbench.causal_bfs.parse import parse_answer as cb_parse

    s = lambda n: max(1, int(n * scale))  # noqa: E731
    return {
        # the cases first: (function, input builder, base size)
        "tasks.parse_answer <answer>+spaces": (parse_answer, lambda n: "<answer>" + " " * n, s(800)),
        "tasks.parse_answer <answer>+newlines": (parse_answer, lambda n: "<answer>" + "\n" * n, s(1500)),
        "math2.parse_groups group+spaces": (lambda t: m2.parse_groups(t, 5), lambda n: "GROUP" + " " * n, s(500)),
        "math2.parse_yes_no final answer+spaces": (m2.parse_yes_no, lambda n: "final answer" + " " * n, s(1000)),
        "math2.parse_generated newlines": (m2.parse_generated, lambda n: "\n" * n + "x", s(1000)),
        "math2.parse_answer answer is x+spaces": (m2.parse_answer, lambda n: "answer is x" + " " * n + "y$", s(500)),
        "confidence.parse_top_k g1: x+spaces": (parse_top_k, lambda n: "g1: x" + " " * n + "p", s(300)),
        "confidence.parse_confidence digits": (parse_confidence, lambda n: "confidence " + "1" * n, s(5000)),
        "causal_bfs.parse_answer open tags": (lambda t: cb_parse(t, ["a", "b"]), lambda n: "<answer>" * n, s(2000)),
        "math2.parse_skill_label open tags": (m2.parse_skill_label, lambda n: "<skill>" * n, s(2000)),
    }


def _time_one(name: str, n: int, scale: float, q) -> None:
    fn, build, _ = _cases(scale)[name]
    text = build(n)
    best = float("inf")
    for _ in range(3):  # the fastest of three calls (the machine may be loaded)
        t0 = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - t0)
        if best > 1.0:
            break
    q.put(best)


def _timed(name: str, n: int, scale: float, limit: float) -> float | None:
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_time_one, args=(name, n, scale, q))
    p.start()
    p.join(limit)
    if p.is_alive():
        p.kill()
        p.join()
        return None
    return q.get() if not q.empty() else None


def _rsa_case(newlines: int) -> float:
    """``rsa.run`` with 2 candidates whose completions open ``<answer>`` and then print newlines."""
    from workbench.llm import load_llm
    from workbench.rsa import Config, run

    llm = load_llm("scripted", responses=["<answer>" + "\n" * newlines], cache="off")
    cfg = Config(backend="scripted", task="rg:chain_sum", n_problems=1, population=2, subset_size=2, steps=1,
                 baselines=())
    t0 = time.perf_counter()
    run(cfg, llm=llm, progress=False)
    return time.perf_counter() - t0


def _rsa_one(n, q):
    q.put(_rsa_case(n))


def main(limit: float = 20.0, scale: float = 1.0) -> list[dict]:
    rows = []
    for name, (_, _, n) in _cases(scale).items():
        t1 = _timed(name, n, scale, limit)
        t2 = _timed(name, 2 * n, scale, limit) if t1 is not None else None
        rows.append({"case": name, "n": n, "seconds_n": t1, "seconds_2n": t2,
                     "ratio_2n_over_n": (t2 / t1 if t1 and t2 else None)})
    ctx = mp.get_context("fork")
    for nl in (0, 1500):
        q = ctx.Queue()
        p = ctx.Process(target=_rsa_one, args=(nl, q))
        p.start()
        p.join(limit)
        if p.is_alive():
            p.kill()
            p.join()
        rows.append({"case": f"rsa.run N=2, {nl} newlines after <answer>", "n": nl,
                     "seconds_n": None if q.empty() else q.get(), "seconds_2n": None, "ratio_2n_over_n": None})
    for r in rows:
        fmt = lambda v: f"> {limit:g}" if v is None else f"{v:.4f}"  # noqa: E731
        ratio = "" if r["ratio_2n_over_n"] is None else f"  ratio {r['ratio_2n_over_n']:.1f}"
        second = "" if r["case"].startswith("rsa.run") else f"  2n: {fmt(r['seconds_2n'])} s{ratio}"
        print(f"{r['case']:<45} n={r['n']:<7} {fmt(r['seconds_n'])} s{second}")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=float, default=20.0, help="seconds allowed per call")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every base size")
    a = ap.parse_args()
    main(a.limit, a.scale)
