"""Per-step population metrics: mean accuracy (expected Pass@1), majority vote over equivalence
clusters, Pass@N, distinct answers, unparsed answers and tokens.

All functions take plain lists. A *population* is a list of candidate dicts with at least
``answer`` (parsed answer or None), ``correct`` (bool), ``prompt_tokens``, ``completion_tokens``.
"""
from __future__ import annotations

from typing import Callable, Sequence

Equiv = Callable[[str, str], bool]


def cluster_answers(answers: Sequence[str | None], equivalent: Equiv) -> list[list[int]]:
    """Group the indices of parsed answers into equivalence clusters (unparsed answers excluded).

    Greedy: each answer joins the first cluster whose first member it is equivalent to, so clusters are
    ordered by first appearance.

    >>> cluster_answers(["1", "2", "1.0", None, "2"], lambda a, b: float(a) == float(b))
    [[0, 2], [1, 4]]
    """
    clusters: list[list[int]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for c in clusters:
            if equivalent(answers[c[0]], a):
                c.append(i)
                break
        else:
            clusters.append([i])
    return clusters


def majority_vote(answers: Sequence[str | None], equivalent: Equiv) -> int | None:
    """Index of the representative (first member) of the largest cluster; ties go to the cluster that
    appeared first; None when no answer was parsed.

    >>> majority_vote(["a", "b", "b", None], str.__eq__), majority_vote([None], str.__eq__)
    (1, None)
    >>> majority_vote(["a", "b"], str.__eq__)
    0
    """
    clusters = cluster_answers(answers, equivalent)
    if not clusters:
        return None
    best = max(clusters, key=len)  # max returns the first of equal-sized clusters
    return best[0]


def population_metrics(pop: Sequence[dict], equivalent: Equiv) -> dict:
    """Metrics of one problem's population. Headline fields use the strict reading (``answer``,
    ``correct``); ``*_lenient`` use the lenient one (``answer_lenient``, ``correct_lenient``) where the
    candidates carry it. Parse shares: ``strict_frac``, ``lenient_only_frac``, ``unparsed_frac``
    (``category``) and ``truncated_frac`` (``truncated``: the token budget ended the text).

    >>> pop = [dict(answer="3", correct=True, prompt_tokens=5, completion_tokens=2),
    ...        dict(answer="4", correct=False, prompt_tokens=5, completion_tokens=3),
    ...        dict(answer="4", correct=False, prompt_tokens=5, completion_tokens=3),
    ...        dict(answer=None, correct=False, prompt_tokens=5, completion_tokens=9)]
    >>> m = population_metrics(pop, str.__eq__)
    >>> m["mean_acc"], m["majority_acc"], m["pass_at_n"], m["distinct_answers"], m["unparsed"]
    (0.25, 0.0, 1.0, 2, 1)
    >>> m["strict_frac"], m["unparsed_frac"], m["mean_acc_lenient"]
    (0.75, 0.25, 0.25)
    """
    if not pop:
        raise ValueError("empty population")
    n = len(pop)
    answers = [c["answer"] for c in pop]
    mv = majority_vote(answers, equivalent)
    lenient = [c.get("answer_lenient", c["answer"]) for c in pop]
    lcorrect = [bool(c.get("correct_lenient", c["correct"])) for c in pop]
    lmv = majority_vote(lenient, equivalent)
    cats = [c.get("category", "strict" if c["answer"] is not None else "unparsed") for c in pop]
    return {
        "mean_acc": sum(bool(c["correct"]) for c in pop) / n,
        "majority_acc": float(mv is not None and bool(pop[mv]["correct"])),
        "pass_at_n": float(any(c["correct"] for c in pop)),
        "distinct_answers": len(cluster_answers(answers, equivalent)),
        "mean_acc_lenient": sum(lcorrect) / n,
        "majority_acc_lenient": float(lmv is not None and lcorrect[lmv]),
        "pass_at_n_lenient": float(any(lcorrect)),
        "strict_frac": cats.count("strict") / n,
        "lenient_only_frac": cats.count("lenient_only") / n,
        "unparsed_frac": cats.count("unparsed") / n,
        "truncated_frac": sum(bool(c.get("truncated", False)) for c in pop) / n,
        "unparsed": sum(a is None for a in answers),
        "prompt_tokens": sum(int(c["prompt_tokens"]) for c in pop),
        "completion_tokens": sum(int(c["completion_tokens"]) for c in pop),
        "n": n,
    }


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of ``values`` (sample standard deviation / sqrt(n)); NaN for n < 2.

    >>> round(standard_error([0.0, 1.0, 0.0, 1.0]), 4)
    0.2887
    """
    n = len(values)
    if n < 2:
        return float("nan")
    m = sum(values) / n
    return (sum((v - m) ** 2 for v in values) / (n - 1) / n) ** 0.5


def average_metrics(per_problem: Sequence[dict]) -> dict:
    """Average the per-problem metrics over problems (token and unparsed counts are summed).

    >>> average_metrics([{"mean_acc": 1.0, "unparsed": 1, "prompt_tokens": 2, "completion_tokens": 1, "n": 2},
    ...                  {"mean_acc": 0.0, "unparsed": 0, "prompt_tokens": 3, "completion_tokens": 1, "n": 2}])
    {'mean_acc': 0.5, 'unparsed': 1, 'prompt_tokens': 5, 'completion_tokens': 2, 'n': 4}
    """
    if not per_problem:
        raise ValueError("no problems")
    summed = {"unparsed", "prompt_tokens", "completion_tokens", "n"}
    out = {}
    for k in per_problem[0]:
        vals = [m[k] for m in per_problem]
        out[k] = sum(vals) if k in summed else sum(vals) / len(vals)
    return out
