"""Problems, tasks and lenient answer parsing shared by the reasoning notebooks.

A :class:`Problem` is one question with a verifiable reference answer. A :class:`Task` knows how to
parse a model's answer out of free text (:meth:`Task.extract`), score it against the reference
(:meth:`Task.score`, a float in [0, 1]) and decide whether two parsed answers are the same answer
(:meth:`Task.equivalent`, used for majority voting). Parsing is lenient because small models rarely
follow format instructions: the task's answer tag first, then ``\\boxed{}``, then a "final answer"
phrase, then (for numeric answers) the last number or (otherwise) the last non-empty line. The method
that succeeded is returned with the answer, so callers can count how often the format was followed
and how often nothing could be parsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .math_answers import answers_equivalent, extract_boxed, normalise

# answer formats used in prompts (the paper's three: Reasoning Gym tags, \boxed{} math, \boxed{A} MCQ)
FORMAT_HINTS = {
    "tags": "<answer>...</answer>",
    "boxed": "\\boxed{}",
    "mcq": "\\boxed{}, with only the letter of the correct option inside, for example \\boxed{A}",
}
PARSE_METHODS = ("tag", "boxed", "final_phrase", "last_number", "last_line")

_NUM = r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?"


@dataclass
class Problem:
    """One question with a verifiable answer."""

    id: str
    question: str
    answer: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "answer": self.answer, "source": self.source,
                "meta": self.meta}


@dataclass
class MalformedItem:
    """An input item that could not become a :class:`Problem` (kept and reported, never silently dropped)."""

    source: str
    position: int
    reason: str
    raw: str = ""


def is_number(s: str | None) -> bool:
    """Whether ``s`` is a plain number (integer, decimal, thousands commas, or a fraction a/b).

    >>> is_number("-3.5"), is_number("1,000"), is_number("x")
    (True, True, False)
    """
    return s is not None and re.fullmatch(_NUM, s.strip()) is not None


def _to_float(s: str) -> float | None:
    s = s.strip().replace(",", "")
    try:
        if "/" in s:
            a, b = s.split("/")
            return float(a) / float(b)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


_OPEN_TAG = re.compile(r"<answer>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</answer>", re.IGNORECASE)
# ``\s*(?:\*+\s*)?`` matches what ``\s*\**\s*`` matched, and finds the same first match (the skipped
# splits of two adjacent ``\s*`` only repeat start positions already tried), without the quadratic
# number of splits a run of whitespace gave.
_FINAL_PHRASE = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*(?:\*+\s*)?([^\n]+)", re.IGNORECASE)


def answer_tags(text: str) -> list[str]:
    """The contents of the ``<answer>...</answer>`` tags of ``text`` (case-insensitive), whitespace
    stripped, in order; an opening tag without a closing tag after it ends the search.

    The same result as ``re.findall(r"<answer>\\s*(.*?)\\s*</answer>", text, re.S | re.I)``, found by
    scanning for the tags (linear time); that regex took time cubic in a run of whitespace after an
    unclosed tag.

    >>> answer_tags("<answer> 1 </answer> x <ANSWER>2\\n</Answer> <answer>3")
    ['1', '2']
    """
    out, pos = [], 0
    while True:
        o = _OPEN_TAG.search(text, pos)
        if o is None:
            return out
        c = _CLOSE_TAG.search(text, o.end())
        if c is None:
            return out
        out.append(text[o.end():c.start()].strip())
        pos = c.end()


def parse_answer(text: str | None, fmt: str = "tags", numeric: bool = False) -> tuple[str | None, str | None]:
    """Lenient answer extraction. Returns ``(answer, method)``; ``(None, None)`` if nothing was found.

    >>> parse_answer("so <answer> 12 </answer>")
    ('12', 'tag')
    >>> parse_answer("x = \\\\boxed{7}", fmt="boxed")
    ('7', 'boxed')
    >>> parse_answer("3 + 4 = 7, so the final answer is 7.", numeric=True)
    ('7', 'final_phrase')
    >>> parse_answer("I think it is 12 or 13", numeric=True)
    ('13', 'last_number')
    >>> parse_answer("   ")
    (None, None)
    """
    if not text or not text.strip():
        return None, None
    tags = [t for t in answer_tags(text) if t and t.strip() not in ("...", "…")]
    if tags and fmt != "boxed":
        return tags[-1].strip(), "tag"
    boxed = extract_boxed(text)
    if boxed:
        return boxed, "boxed"
    if tags:
        return tags[-1].strip(), "tag"
    m = _FINAL_PHRASE.findall(text)
    if m:
        cand = m[-1].strip().strip("*").strip().rstrip(".").strip()
        if numeric:
            nums = re.findall(_NUM, cand)
            if nums:
                return nums[0].replace(",", ""), "final_phrase"
        elif cand:
            return cand, "final_phrase"
    if numeric:
        nums = re.findall(_NUM, text)
        if nums:
            return nums[-1].replace(",", ""), "last_number"
        return None, None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1][:300], "last_line") if lines else (None, None)


def same_answer(a: str | None, b: str | None) -> bool:
    """String/numeric equivalence used to cluster non-math answers for majority voting.

    >>> same_answer("12", "12.0"), same_answer(" Yes ", "yes"), same_answer("1 2", "12")
    (True, True, False)
    """
    if a is None or b is None:
        return False
    if is_number(a) and is_number(b):
        fa, fb = _to_float(a), _to_float(b)
        return fa is not None and fb is not None and abs(fa - fb) <= 1e-9 * max(1.0, abs(fa), abs(fb))
    return " ".join(a.split()).lower().rstrip(".") == " ".join(b.split()).lower().rstrip(".")


class Task:
    """A set of problems with a parser, a scorer and an equivalence for voting.

    Subclasses override :meth:`score` (and :meth:`equivalent` where needed).
    """

    name: str = "task"
    answer_format: str = "tags"  # key of FORMAT_HINTS
    problem_kind: str = "problem"

    def __init__(self, problems: Sequence[Problem], *, name: str | None = None,
                 malformed: Sequence[MalformedItem] = ()):
        if not problems:
            raise ValueError(f"task {name or self.name!r} has no problems"
                             + (f" ({len(malformed)} malformed items: {malformed[0].reason})" if malformed else ""))
        ids = [p.id for p in problems]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate problem ids in task {name or self.name!r}")
        self.problems = list(problems)
        self.malformed = list(malformed)
        if name:
            self.name = name

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def format_hint(self) -> str:
        return FORMAT_HINTS[self.answer_format]

    def is_numeric(self, problem: Problem) -> bool:
        return is_number(problem.answer)

    def extract(self, text: str | None, problem: Problem) -> tuple[str | None, str | None]:
        """(answer, parse method) from a completion."""
        return parse_answer(text, self.answer_format, numeric=self.is_numeric(problem))

    def score(self, answer: str | None, problem: Problem) -> float:
        raise NotImplementedError

    def equivalent(self, a: str | None, b: str | None, problem: Problem) -> bool:
        return same_answer(a, b)

    def question_prompt(self, problem: Problem) -> str:
        """The first-generation prompt: the question with the answer-format instruction."""
        return (f"{problem.question.strip()}\n\nThink step by step, then give the final answer "
                f"in {self.format_hint}.")


class MathTask(Task):
    """Math problems with ``\\boxed{}`` answers, checked by math-verify."""

    name = "math"
    answer_format = "boxed"
    problem_kind = "math problem"

    def score(self, answer: str | None, problem: Problem) -> float:
        return float(answers_equivalent(answer, problem.answer))

    def equivalent(self, a: str | None, b: str | None, problem: Problem) -> bool:
        return answers_equivalent(a, b)


class MCQTask(Task):
    """Multiple-choice problems answered with a letter in ``\\boxed{}``."""

    name = "mcq"
    answer_format = "mcq"
    problem_kind = "multiple-choice problem"

    def extract(self, text, problem):
        ans, how = parse_answer(text, "boxed")
        if ans is not None:
            m = re.search(r"\b([A-J])\b", ans.upper())
            return (m.group(1), how) if m else (ans.strip().upper()[:1] or None, how)
        return None, None

    def score(self, answer, problem):
        return float(answer is not None and answer.strip().upper() == problem.answer.strip().upper())


__all__ = ["FORMAT_HINTS", "PARSE_METHODS", "Problem", "MalformedItem", "Task", "MathTask", "MCQTask",
           "parse_answer", "same_answer", "is_number", "normalise"]
