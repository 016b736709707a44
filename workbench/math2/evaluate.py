"""Evaluation: a model's accuracy on seed problems vs on generated questions (answers compared with
math-verify), and the square-law fit accuracy(pairs) ~ accuracy(singles)^alpha (paper: alpha ~ 2).

The paper's explanation: if a model applies skill i correctly with probability s_i and a pair
question needs both skills independently, it succeeds with s_i * s_j; averaged over random pairs this
is about (mean s)^2. :func:`skill_product_prediction` computes that prediction from per-skill seed
accuracies for the questions actually generated.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..llm import SamplingParams
from ..seeding import derive_seed
from ..tasks.math_answers import answers_equivalent
from .parsing import answer_source, parse_answer, render

# Zero-shot CoT accuracies (%) transcribed from the paper (arXiv 2407.21009); only the rows we could
# check are listed. The paper reports more models, all close to Y = X^2.
PAPER_TABLE = (
    {"model": "GPT-4o", "math": 77.5, "math2": 60.3},
    {"model": "Llama-3.1-8B-Instruct", "math": 45.8, "math2": 19.1},
)


def evaluate(llm, problems: Sequence[dict], *, seed: int, tag: str, max_tokens: int = 96) -> dict[str, Any]:
    """Greedy answers to ``problems`` (dicts with id, question, answer), all in one batch.

    Returns ``{"accuracy", "n", "n_correct", "n_unparsed", "answer_sources", "items": [...]}``;
    ``accuracy`` is None for an empty set. Unreadable answers count as wrong and are reported.
    """
    if not problems:
        return {"accuracy": None, "n": 0, "n_correct": 0, "n_unparsed": 0, "answer_sources": {}, "items": []}
    prompts = [render("solve", question=p["question"]) for p in problems]
    comps = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens),
                         seeds=[derive_seed(seed, "eval", tag, p["id"]) for p in problems])
    items, sources = [], {}
    for p, c in zip(problems, comps):
        pred = parse_answer(c.text)
        src = answer_source(c.text)
        sources[src] = sources.get(src, 0) + 1
        items.append({"id": p["id"], "question": p["question"], "gold": p["answer"], "pred": pred, "source": src,
                      "correct": bool(answers_equivalent(pred, p["answer"])), "raw": c.text})
    n_correct = sum(i["correct"] for i in items)
    return {"accuracy": n_correct / len(items), "n": len(items), "n_correct": n_correct,
            "n_unparsed": sum(i["pred"] is None for i in items), "answer_sources": sources, "items": items}


def fit_square_law(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Fit y = x^alpha to accuracies in (0, 1] by least squares on logs (closed form
    alpha = sum(ln x ln y) / sum(ln x ^2)); also a free log-log line ln y = b ln x + ln c, and how far
    the points are from y = x^2. Points with x or y outside (0, 1] cannot enter the log fit and are
    counted in ``n_excluded``.

    >>> r = fit_square_law([0.5, 0.8], [0.25, 0.64]); round(r["alpha"], 6), round(r["rmse_vs_square"], 6)
    (2.0, 0.0)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    ok = (x > 0) & (x <= 1) & (y > 0) & (y <= 1) & np.isfinite(x) & np.isfinite(y)
    out: dict[str, Any] = {"n": int(ok.sum()), "n_excluded": int((~ok).sum()), "alpha": None, "slope": None,
                           "intercept_c": None, "rmse_vs_square": None}
    if ok.sum() and x.size:
        out["rmse_vs_square"] = float(np.sqrt(np.mean((y[ok] - x[ok] ** 2) ** 2)))
    lx, ly = np.log(x[ok]), np.log(y[ok])
    denom = float(np.sum(lx ** 2))
    if ok.sum() >= 1 and denom > 0:
        out["alpha"] = float(np.sum(lx * ly) / denom)
    if ok.sum() >= 2 and np.ptp(lx) > 0:
        b, a = np.polyfit(lx, ly, 1)
        out["slope"], out["intercept_c"] = float(b), float(math.exp(a))
    return out


def paper_square_law() -> dict[str, Any]:
    """The square-law fit on the paper's transcribed rows."""
    return fit_square_law([r["math"] / 100 for r in PAPER_TABLE], [r["math2"] / 100 for r in PAPER_TABLE])


def skill_accuracies(seed_eval: dict, coarse_of: dict[str, str]) -> dict[str, float]:
    """Per coarse skill: accuracy of the model on that skill's seed problems."""
    tot: dict[str, list[int]] = {}
    for it in seed_eval["items"]:
        s = coarse_of.get(it["id"])
        if s is not None:
            tot.setdefault(s, []).append(int(it["correct"]))
    return {s: float(np.mean(v)) for s, v in sorted(tot.items())}


def skill_product_prediction(candidates: Sequence[dict], s_acc: dict[str, float]) -> float | None:
    """Mean of s_a * s_b over the pairs of the given questions (the paper's independence argument)."""
    vals = [s_acc[a] * s_acc[b] for a, b in (c["skills"] for c in candidates) if a in s_acc and b in s_acc]
    return float(np.mean(vals)) if vals else None
