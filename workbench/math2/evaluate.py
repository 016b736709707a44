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
from .parsing import answer_source, render_fmt
from .structured import answer_structure, parse_solution_answer, tally

# Zero-shot CoT accuracies (%) transcribed from the paper (arXiv 2407.21009); only the rows we could
# check are listed. The paper reports more models, all close to Y = X^2.
PAPER_TABLE = (
    {"model": "GPT-4o", "math": 77.5, "math2": 60.3},
    {"model": "Llama-3.1-8B-Instruct", "math": 45.8, "math2": 19.1},
)


def evaluate(llm, problems: Sequence[dict], *, seed: int, tag: str, max_tokens: int = 96,
             structured: bool = False, reasoning_chars: int = 120) -> dict[str, Any]:
    """Greedy answers to ``problems`` (dicts with id, question, answer), all in one batch.

    Returns ``{"accuracy", "accuracy_se", "accuracy_lenient", "n", "n_correct", "n_correct_lenient",
    "n_unparsed", "parse", "answer_sources", "items": [...]}``; ``accuracy`` (the headline) counts only
    answers read by the strict rule (``<answer>`` tag or ``\\boxed{}``), ``accuracy_lenient`` also those
    only a fallback read; an unreadable answer is wrong in both and counted in ``parse``. ``accuracy`` is
    None for an empty set; ``accuracy_se`` is the binomial standard error sqrt(p(1-p)/n).
    """
    if not problems:
        return {"accuracy": None, "accuracy_se": None, "accuracy_lenient": None, "n": 0, "n_correct": 0,
                "n_correct_lenient": 0, "n_unparsed": 0, "parse": tally([]), "answer_sources": {}, "items": []}
    prompts = [render_fmt("solve", structured, question=p["question"]) for p in problems]
    comps = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                                 structure=answer_structure(reasoning_chars) if structured else None),
                         seeds=[derive_seed(seed, "eval", tag, p["id"]) for p in problems])
    items, sources, parsed = [], {}, []
    for p, c in zip(problems, comps):
        r = parse_solution_answer(c.text, c.finish_reason == "length")
        parsed.append(r)
        src = answer_source(c.text)
        sources[src] = sources.get(src, 0) + 1
        ok = bool(answers_equivalent(r.value, p["answer"]))
        items.append({"id": p["id"], "question": p["question"], "gold": p["answer"], "pred": r.value, "how": r.how,
                      "truncated": r.truncated, "source": src, "correct": ok and r.how == "strict",
                      "correct_lenient": ok, "raw": c.text})
    n = len(items)
    n_correct = sum(i["correct"] for i in items)
    acc = n_correct / n
    return {"accuracy": acc, "accuracy_se": binomial_se(acc, n), "n": n, "n_correct": n_correct,
            "accuracy_lenient": sum(i["correct_lenient"] for i in items) / n,
            "n_correct_lenient": sum(i["correct_lenient"] for i in items),
            "n_unparsed": sum(i["pred"] is None for i in items), "parse": tally(parsed),
            "answer_sources": sources, "items": items}


def binomial_se(p: float | None, n: int) -> float | None:
    """Standard error of a proportion, sqrt(p (1 - p) / n) (None without data).

    >>> round(binomial_se(0.5, 100), 3), binomial_se(None, 0)
    (0.05, None)
    """
    if p is None or n <= 0:
        return None
    return math.sqrt(p * (1 - p) / n)


def generated_gold(candidates: Sequence[dict], gold: str = "verified", *, include_dropped: bool = False
                   ) -> tuple[list[dict], dict[str, int]]:
    """The generated questions to evaluate and their reference answers.

    ``gold="verified"``: kept questions whose generator answer math-verify confirmed (its Computation
    line on the question's numbers), with that answer as the reference; ``"majority"``: kept questions
    with the final-solution majority as reference (the same model's vote: shown only for comparison,
    never a gold for the square law). Returns (problems, counts of why questions were left out).

    >>> c = [{"id": "a", "question": "q", "status": "kept", "answer": "3", "generator_answer": "4",
    ...       "verification": {"verified": True}}]
    >>> generated_gold(c)[0][0]["answer"], generated_gold(c, "majority")[0][0]["answer"]
    ('4', '3')
    """
    if gold not in ("verified", "majority"):
        raise ValueError(f"gold must be 'verified' or 'majority', got {gold!r}")
    out, left = [], {"not_kept": 0, "not_verified": 0}
    for c in candidates:
        if not (c["status"] == "kept" or (include_dropped and c.get("answer"))):
            left["not_kept"] += 1
            continue
        if gold == "majority":
            out.append({"id": c["id"], "question": c["question"], "answer": c["answer"], "skills": c.get("skills")})
        elif (c.get("verification") or {}).get("verified"):
            out.append({"id": c["id"], "question": c["question"], "answer": c["generator_answer"],
                        "skills": c.get("skills")})
        else:
            left["not_verified"] += 1
    return out, left


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
