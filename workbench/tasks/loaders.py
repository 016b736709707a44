"""Math benchmark loaders: AIME-25, HMMT-25, GSM8K and MATH through ``datasets`` (network needed),
or any local JSONL file.

Every loader returns a :class:`~workbench.tasks.base.MathTask`. Items that cannot become a problem
(missing question or answer, bad JSON, a GSM8K solution without its ``####`` line; in a JSONL file also
invalid UTF-8, NaN/Infinity, an integer over Python's digit limit or nesting too deep for the parser) are collected in
``task.malformed`` with their position and reason and announced with a warning, never silently
dropped; ``strict=True`` raises instead.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .base import MalformedItem, MathTask, Problem
from .math_answers import extract_boxed

# name -> (HF dataset id, config, split, question field, answer getter)
HF_DATASETS: dict[str, tuple[str, str | None, str, str, Callable[[Mapping[str, Any]], Any]]] = {
    "aime25": ("MathArena/aime_2025", None, "train", "problem", lambda r: r.get("answer")),
    "hmmt25": ("MathArena/hmmt_feb_2025", None, "train", "problem", lambda r: r.get("answer")),
    "gsm8k": ("openai/gsm8k", "main", "test", "question", lambda r: gsm8k_answer(r.get("answer"))),
    "math": ("HuggingFaceH4/MATH-500", None, "test", "problem", lambda r: r.get("answer") or extract_boxed(r.get("solution") or "")),
}


def gsm8k_answer(solution: str | None) -> str | None:
    """The number after ``####`` in a GSM8K solution.

    >>> gsm8k_answer("so 3 + 4 = 7\\n#### 7")
    '7'
    >>> gsm8k_answer("no marker") is None
    True
    """
    if not solution or "####" not in solution:
        return None
    return solution.split("####")[-1].strip().replace(",", "")


def problems_from_records(records: Iterable[Any], source: str, question_key: str = "question",
                          answer_key: str | Callable[[Mapping[str, Any]], Any] = "answer",
                          id_key: str | None = None, strict: bool = False, name: str | None = None) -> MathTask:
    """Build a :class:`MathTask` from dict records, reporting the ones that do not fit."""
    problems, bad = [], []
    get_answer = answer_key if callable(answer_key) else (lambda r: r.get(answer_key))
    for i, r in enumerate(records):
        if isinstance(r, MalformedItem):
            bad.append(r)
            continue
        if not isinstance(r, Mapping):
            bad.append(MalformedItem(source, i, f"not an object: {type(r).__name__}", repr(r)[:200]))
            continue
        q, a = r.get(question_key), get_answer(r)
        if not isinstance(q, str) or not q.strip():
            bad.append(MalformedItem(source, i, f"missing or empty {question_key!r}", repr(r)[:200]))
            continue
        if a is None or (isinstance(a, str) and not a.strip()):
            bad.append(MalformedItem(source, i, "missing or empty answer", repr(r)[:200]))
            continue
        if isinstance(a, float) and not math.isfinite(a):  # NaN/Infinity from a dataset row
            bad.append(MalformedItem(source, i, f"answer {a!r} is not a usable answer", repr(r)[:200]))
            continue
        pid = str(r[id_key]) if id_key and r.get(id_key) is not None else f"{Path(source).stem}/{i}"
        problems.append(Problem(pid, q, str(a).strip(), source=source))
    if bad:
        msg = f"{len(bad)} malformed item(s) in {source}: " + "; ".join(f"#{b.position}: {b.reason}" for b in bad[:5])
        if strict:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=2)
    return MathTask(problems, name=name or source, malformed=bad)


def iter_jsonl(path: str | os.PathLike, limit: int | None = None):
    """The lines of a local JSONL file as ``(line number, line, value)``: ``value`` is the parsed JSON,
    or a :class:`MalformedItem` for an empty or unparsable line (reported, never skipped). Raises
    FileNotFoundError at once for a missing file. Shared by the math and code JSONL loaders."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such JSONL file: {path}")

    def lines():
        with path.open("rb") as f:  # bytes: a line of invalid UTF-8 is reported, not fatal for the file
            for lineno, raw in enumerate(f):
                if limit is not None and lineno >= limit:
                    break
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    line = raw.decode("utf-8", errors="replace")
                    yield lineno, line, MalformedItem(str(path), lineno, f"invalid UTF-8 at byte {e.start}", line[:200])
                    continue
                if not line.strip():
                    yield lineno, line, MalformedItem(str(path), lineno, "empty line")
                    continue
                try:
                    yield lineno, line, json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
                except json.JSONDecodeError as e:
                    yield lineno, line, MalformedItem(str(path), lineno, f"invalid JSON: {e.msg}", line[:200])
                except ValueError as e:  # NaN/Infinity, an overflowing float, an integer over Python's digit limit
                    yield lineno, line, MalformedItem(str(path), lineno, f"invalid JSON: {str(e)[:120]}", line[:200])
                except RecursionError:
                    yield lineno, line, MalformedItem(str(path), lineno, "invalid JSON: nested too deeply", line[:200])

    return lines()


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number (non-finite values are not answers)")


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s[:40]} overflows a float")
    return v


def load_jsonl(path: str | os.PathLike, *, question_key: str = "question", answer_key: str = "answer",
               id_key: str | None = "id", limit: int | None = None, strict: bool = False) -> MathTask:
    """Load math problems from a local JSONL file (one JSON object per line)."""
    path = Path(path)
    records = (value for _, _, value in iter_jsonl(path, limit))
    return problems_from_records(records, str(path), question_key, answer_key, id_key, strict, name=path.stem)


def load_hf(name: str, *, limit: int | None = None, strict: bool = False, split: str | None = None) -> MathTask:
    """Load ``aime25`` / ``hmmt25`` / ``gsm8k`` / ``math`` from the Hugging Face hub (needs network once)."""
    if name not in HF_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(HF_DATASETS)} or use load_jsonl(path)")
    repo, conf, default_split, qkey, get_answer = HF_DATASETS[name]
    try:
        import datasets
    except ImportError:
        raise ImportError("loading hub datasets needs the 'datasets' package: pip install datasets") from None
    try:
        ds = datasets.load_dataset(repo, conf, split=split or default_split)
    except Exception as e:  # offline, unknown repo, or a hub error: say what to do
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        raise RuntimeError(
            f"could not load {repo!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]})."
            + (" HF_HUB_OFFLINE=1 is set: unset it with network access, or" if offline else " Without network,")
            + " save the problems as JSONL and use workbench.tasks.load_jsonl(path).") from e
    rows = ds if limit is None else ds.select(range(min(limit, len(ds))))
    return problems_from_records(rows, f"hf:{repo}", qkey, get_answer, None, strict, name=name)


def gsm8k_like_from_text(text: str) -> str | None:
    """Last number in free text (GSM8K-style answers without the ``####`` marker).

    >>> gsm8k_like_from_text("total 1,200 apples")
    '1200'
    """
    nums = re.findall(r"-?\d+(?:,\d{3})*(?:\.\d+)?", text or "")
    return nums[-1].replace(",", "") if nums else None
