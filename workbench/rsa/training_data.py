"""Aggregation-aware training data: aggregation prompts built from K candidates sampled from a
reference model, with verifiable answers, written as JSONL or Parquet in the row format verl's RL
datasets use and TRL's GRPO/RLOO trainers accept.

Each row::

    {"data_source": "workbench.rsa/<task>", "prompt": [{"role": "user", "content": <aggregation prompt>}],
     "ability": <task kind>, "reward_model": {"style": "rule", "ground_truth": <answer>},
     "answer": <answer>,                       # top-level copy: TRL passes dataset columns to reward functions
     "extra_info": {"index", "problem_id", "split", "k", "candidate_answers", "candidates_correct"}}

verl reads ``prompt`` (a chat), ``data_source`` and ``reward_model.ground_truth``; TRL uses the
conversational ``prompt`` column and hands every other column (``answer``) to the reward function.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ..llm import SamplingParams
from ..seeding import make_rng
from ..tasks.base import Problem, Task
from . import prompts as P
from .core import generate_initial


def aggregation_rows(task: Task, problems: Sequence[Problem], pool: list[list[dict]], *, k: int, sets_per_problem: int,
                     seed: int, templates: dict | None = None, split: str = "train") -> list[dict]:
    """Rows from an already sampled pool (shape (problems, M >= K)): ``sets_per_problem`` K-subsets each,
    drawn uniformly without replacement like RSA's aggregation sets."""
    templates = templates or P.load_templates()
    rows = []
    for pi, (p, cands) in enumerate(zip(problems, pool)):
        if len(cands) < k:
            raise ValueError(f"problem {p.id}: {len(cands)} candidates, need K={k}")
        rng = make_rng(seed, "train-sets", p.id)
        for s in range(sets_per_problem):
            idx = [int(i) for i in rng.choice(len(cands), size=k, replace=False)]
            chosen = [cands[i] for i in idx]
            prompt = P.aggregate_prompt(templates, p.question, [c["text"] for c in chosen], task.format_hint,
                                        task.problem_kind)
            rows.append({
                "data_source": f"workbench.rsa/{task.name}",
                "prompt": [{"role": "user", "content": prompt}],
                "ability": task.problem_kind,
                "reward_model": {"style": "rule", "ground_truth": p.answer},
                "answer": p.answer,
                "extra_info": {"index": len(rows), "problem_id": p.id, "split": split, "k": k,
                               "candidate_answers": [c["answer"] for c in chosen],
                               "candidates_correct": [bool(c["correct"]) for c in chosen]},
            })
    return rows


def write_rows(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write rows as ``.jsonl`` or ``.parquet`` (chosen by the suffix)."""
    path = Path(path)
    if not rows:
        raise ValueError("no rows to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        with path.open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    elif path.suffix == ".parquet":
        import pandas as pd

        pd.DataFrame(rows).to_parquet(path, index=False)
    else:
        raise ValueError(f"unknown format {path.suffix!r}: use a .jsonl or .parquet path")
    return path


def write_aggregation_dataset(llm, task: Task, path: str | os.PathLike, *, k: int = 2, pool_size: int = 4,
                              sets_per_problem: int = 2, sampling: SamplingParams | None = None, seed: int = 0,
                              templates: dict | None = None, problems: Sequence[Problem] | None = None,
                              threshold: float = 1.0) -> dict:
    """Sample ``pool_size`` candidates per problem from ``llm`` (the reference model, one batched call),
    build ``sets_per_problem`` aggregation prompts of K candidates per problem and write them to ``path``.
    Returns ``{"path", "rows", "problems", "frac_sets_with_a_correct_candidate", "rows_preview"}``."""
    if Path(path).suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"unknown format {Path(path).suffix!r}: use a .jsonl or .parquet path")
    if not 1 <= k <= pool_size:
        raise ValueError(f"need 1 <= K <= pool_size, got K={k}, pool_size={pool_size}")
    problems = list(task.problems if problems is None else problems)
    templates = templates or P.load_templates()
    sampling = sampling or SamplingParams(temperature=1.0, max_tokens=256)
    pool = generate_initial(llm, task, problems, pool_size, sampling, seed=seed, templates=templates, threshold=threshold)
    rows = aggregation_rows(task, problems, pool, k=k, sets_per_problem=sets_per_problem, seed=seed, templates=templates)
    out = write_rows(rows, path)
    has_correct = [any(r["extra_info"]["candidates_correct"]) for r in rows]
    return {"path": str(out), "rows": len(rows), "problems": len(problems),
            "frac_sets_with_a_correct_candidate": sum(has_correct) / len(rows), "rows_preview": rows[:2]}


def _question_key(q: str) -> str:
    return " ".join(q.split()).lower()


def disjoint_problems(candidates: Sequence[Problem], held_out: Sequence[Problem], n: int | None = None) -> list[Problem]:
    """The problems of ``candidates`` whose question text (whitespace and case normalised) is not the
    question of any ``held_out`` problem, in order; the first ``n`` of them when ``n`` is given.

    Small generated tasks repeat questions across generator seeds (one-digit sums have ~200 distinct
    questions), so a different seed alone does not keep training and evaluation problems apart.

    >>> a, b = Problem("t/0", "4 + 2 =", "6"), Problem("t/1", "1 + 1 =", "2")
    >>> [p.id for p in disjoint_problems([a, b], [Problem("e/0", "4  + 2 =", "6")])]
    ['t/1']
    """
    seen = {_question_key(p.question) for p in held_out}
    keep = [p for p in candidates if _question_key(p.question) not in seen]
    if n is not None:
        if len(keep) < n:
            raise ValueError(f"only {len(keep)} of {len(candidates)} candidate problems are disjoint from the "
                             f"{len(held_out)} held-out ones, {n} needed: generate more candidates or use a "
                             "harder task setting (more distinct questions)")
        keep = keep[:n]
    return keep
