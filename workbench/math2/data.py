"""Seed problems: the built-in easy set (offline default), local JSONL, MATH and GSM8K via `datasets`.

Every loader returns a list of dicts ``{"id", "question", "solution", "answer", "topic"}`` (``topic``
may be ``None``; for the built-in set it is the topic we wrote each problem for, used only to check
the clustering, never shown to the model).
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ..tasks.math_answers import extract_boxed

REQUIRED = ("question", "answer")


def load_builtin() -> list[dict[str, Any]]:
    """The 24 easy problems written for this project (8 topics x 3), with worked solutions.

    >>> len(load_builtin()), load_builtin()[0]["answer"]
    (24, '15')
    """
    text = resources.files(__package__).joinpath("seed_problems.json").read_text()
    return [_normalise_row(r, i, "builtin") for i, r in enumerate(json.loads(text))]


def _normalise_row(r: dict[str, Any], i: int, source: str) -> dict[str, Any]:
    if not isinstance(r, dict):
        raise ValueError(f"{source}: row {i} is not an object: {r!r:.120}")
    q = r.get("question", r.get("problem"))
    sol = r.get("solution", "")
    ans = r.get("answer")
    if ans is None and sol:
        ans = extract_boxed(sol)
    if not q or ans is None or str(ans).strip() == "":
        raise ValueError(f"{source}: row {i} needs a 'question' (or 'problem') and an 'answer' "
                         f"(or a solution with \\boxed{{}}); got keys {sorted(r)}")
    return {"id": str(r.get("id", f"{source}-{i}")), "question": str(q), "solution": str(sol or ""),
            "answer": str(ans).strip(), "topic": r.get("topic", r.get("type", r.get("subject")))}


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Problems from a local JSONL file: one object per line with question/problem and answer
    (or a solution with ``\\boxed{}``); optional id, solution, topic."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"seed problem file {p} does not exist")
    rows = []
    for ln, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(_normalise_row(json.loads(line), ln, str(p)))
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}:{ln}: not valid JSON ({e})") from None
    if not rows:
        raise ValueError(f"{p} holds no problems")
    return rows


def _require_datasets():
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise ImportError("loading MATH/GSM8K needs the Hugging Face `datasets` package: pip install datasets "
                          "(or save the problems as JSONL and use seed_source='jsonl:<path>')") from None
    return datasets


def _load_hub(name: str, config: str | None, split: str):
    datasets = _require_datasets()
    try:
        return datasets.load_dataset(name, config, split=split) if config else datasets.load_dataset(name, split=split)
    except Exception as e:  # offline mode and network failures surface as many exception types
        raise RuntimeError(
            f"could not load {name!r} ({type(e).__name__}: {e}). With HF_HUB_OFFLINE=1 the dataset must already "
            f"be in the Hugging Face cache; otherwise go online once, or export it to JSONL and use "
            f"seed_source='jsonl:<path>'") from e


GSM8K_ANSWER = re.compile(r"####\s*(.+)\s*$")


def load_gsm8k(split: str = "test") -> list[dict[str, Any]]:
    """GSM8K (``openai/gsm8k``, config ``main``); the answer is the text after ``####``."""
    ds = _load_hub("openai/gsm8k", "main", split)
    out = []
    for i, r in enumerate(ds):
        m = GSM8K_ANSWER.search(r["answer"])
        out.append({"id": f"gsm8k-{split}-{i}", "question": r["question"], "solution": r["answer"],
                    "answer": m.group(1).replace(",", "").strip() if m else r["answer"], "topic": None})
    return out


MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")


def load_math(subject: str | None = None, split: str = "test") -> list[dict[str, Any]]:
    """MATH (``EleutherAI/hendrycks_math``, one config per subject); the answer is the last ``\\boxed{}``."""
    subjects = [subject] if subject else list(MATH_SUBJECTS)
    bad = [s for s in subjects if s not in MATH_SUBJECTS]
    if bad:
        raise ValueError(f"unknown MATH subject(s) {bad}; choose from {MATH_SUBJECTS}")
    out = []
    for s in subjects:
        for i, r in enumerate(_load_hub("EleutherAI/hendrycks_math", s, split)):
            out.append({"id": f"math-{s}-{split}-{i}", "question": r["problem"], "solution": r["solution"],
                        "answer": extract_boxed(r["solution"]) or "", "topic": r.get("type", s)})
    return [r for r in out if r["answer"]]


def load_seed_problems(source: str = "builtin") -> list[dict[str, Any]]:
    """Dispatch on ``builtin | jsonl:<path> | math | math:<subject> | gsm8k``."""
    if source == "builtin":
        return load_builtin()
    kind, _, arg = source.partition(":")
    if kind == "jsonl":
        if not arg:
            raise ValueError("seed_source 'jsonl' needs a path: 'jsonl:/path/to/problems.jsonl'")
        return load_jsonl(arg)
    if kind == "math":
        return load_math(arg or None)
    if kind == "gsm8k":
        return load_gsm8k(arg or "test")
    raise ValueError(f"unknown seed_source {source!r}; use builtin | jsonl:<path> | math[:<subject>] | gsm8k")
