"""Reading answers and verdicts the way the RSA authors' evaluation code does (the *strict* rule), with
the project's lenient parser beside it, and the structured-output form that makes the strict rule
readable for a small model.

Strict rule (the public reference code, HyperPotatoNeo/RSA ``eval_loop.py``, read, not copied):

- Reasoning Gym (``<answer>`` format): the content of the *first* ``<answer>...</answer>`` pair
  (case-sensitive, whitespace stripped); failing that, when the text has a ``</think>``, whatever
  follows the *last* ``Final Answer:`` after it. Nothing else counts.
- Math (``\\boxed{}``): the content of the last ``\\boxed{...}``.
- Multiple choice: the last ``\\boxed{...}``, read as an option letter (reconstruction: the reference
  scores the boxed string; we take its letter as :class:`~workbench.tasks.base.MCQTask` does).
- Code tasks: the task's own extraction (the program block) is the only rule there is.

Self-verification verdicts: the *last* ``true``/``false`` in the text (case-insensitive, as the
reference's ``re.findall(r'(true|false)', s, re.I)[-1]``); a text with neither is unreadable (None),
counts as "not verified" when selecting (the reference scores it 0) and is reported as unreadable.

Every candidate is put in exactly one parse category: ``strict`` (the strict rule reads it),
``lenient_only`` (only the lenient fallback of :meth:`Task.extract` reads it: tag, boxed, a "final
answer" phrase, the last number or line) or ``unparsed``. Headline accuracies use the strict
reading; the lenient ones are reported beside them, labelled. An unparsed answer is never scored as
an answer: it is its own category (and not correct).

Structured outputs (reconstruction, the paper's models follow the format unaided): for ``<answer>``
tasks, :func:`answer_structure` builds ``reason_then_answer``: up to ``max_reasoning_chars`` of free
text, then ``<answer>`` + an answer of the expected shape + ``</answer>``, so the model can think
before it commits and the strict rule always finds the tag unless the token budget truncates it.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..llm.structure import Choice, ReasonThenAnswer, Regex, reason_then_answer
from ..tasks.base import Problem, Task, is_number
from ..tasks.math_answers import extract_boxed

PARSE_CATEGORIES = ("strict", "lenient_only", "unparsed")

_OPEN, _CLOSE, _THINK, _FINAL = "<answer>", "</answer>", "</think>", "Final Answer:"


def strict_tag_answer(text: str | None) -> tuple[str | None, str | None]:
    """The authors' Reasoning Gym extraction. Returns ``(answer, "tag" | "final_answer")`` or ``(None, None)``.

    Same result as ``re.search(r"<answer>\\s*(.*?)\\s*</answer>", text, re.DOTALL)`` then the
    ``</think>`` / ``Final Answer:`` fallback, found with ``str.find`` (linear time; the regex's
    adjacent lazy and whitespace quantifiers backtrack on long whitespace runs).

    >>> strict_tag_answer("a <answer> 4 </answer> b <answer>5</answer>")
    ('4', 'tag')
    >>> strict_tag_answer("<think>hm</think> so. Final Answer: 7")
    ('7', 'final_answer')
    >>> strict_tag_answer("Final Answer: 7"), strict_tag_answer("<ANSWER>3</ANSWER>")
    ((None, None), (None, None))
    """
    if not text:
        return None, None
    o = text.find(_OPEN)
    if o >= 0:
        c = text.find(_CLOSE, o + len(_OPEN))
        if c >= 0:  # the first opening tag with a closing tag after it (none later has one if this has none)
            return text[o + len(_OPEN):c].strip(), "tag"
    th = text.find(_THINK)
    if th < 0:
        return None, None
    tail = text[th + len(_THINK):].strip()
    f = tail.rfind(_FINAL)
    if f < 0:
        return None, None
    return tail[f + len(_FINAL):].strip(), "final_answer"


def strict_answer(task: Task, text: str | None, problem: Problem) -> tuple[str | None, str | None]:
    """The strict reading of ``text`` for ``task``'s answer format (see the module docstring).

    >>> from workbench.tasks import MathTask, MCQTask
    >>> m = MathTask([Problem("a", "q", "2")]); strict_answer(m, "\\\\boxed{1} then \\\\boxed{2}", m.problems[0])
    ('2', 'boxed')
    >>> q = MCQTask([Problem("b", "q", "B")]); strict_answer(q, "I pick \\\\boxed{(B)}", q.problems[0])
    ('B', 'boxed')
    >>> strict_answer(m, "the answer is 2", m.problems[0])
    (None, None)
    """
    fmt = task.answer_format
    if fmt == "tags":
        return strict_tag_answer(text)
    if fmt in ("boxed", "mcq"):
        b = extract_boxed(text or "")
        if b is None or not b.strip():
            return None, None
        if fmt == "mcq":
            m = re.search(r"\b([A-J])\b", b.upper())
            return (m.group(1), "boxed") if m else (None, None)
        return b, "boxed"
    return task.extract(text, problem)  # code tasks: the program block is the rule


def read_answer(task: Task, text: str | None, problem: Problem) -> dict:
    """Strict and lenient readings of one completion and its parse category.

    >>> from workbench.tasks import MathTask
    >>> t = MathTask([Problem("a", "q", "2")], name="toy"); p = t.problems[0]
    >>> read_answer(t, "so \\\\boxed{2}", p)["category"], read_answer(t, "so it is 2", p)["category"]
    ('strict', 'lenient_only')
    >>> read_answer(t, "", p)["category"]
    'unparsed'
    """
    s_ans, s_how = strict_answer(task, text, problem)
    l_ans, l_how = task.extract(text, problem)
    if s_ans is not None:
        cat = "strict"
    elif l_ans is not None:
        cat = "lenient_only"
    else:
        cat = "unparsed"
    return {"answer": s_ans, "parse_strict": s_how, "answer_lenient": l_ans, "parse": l_how, "category": cat}


_VERDICT = re.compile(r"(true|false)", re.IGNORECASE)


def parse_verdict(text: str | None) -> bool | None:
    """The last ``true``/``false`` of a verification answer, as the authors read it; None if neither occurs.

    >>> parse_verdict("True."), parse_verdict("It is not true. False"), parse_verdict("not correct") is None
    (True, False, True)
    """
    found = _VERDICT.findall(text or "")
    if not found:
        return None
    return found[-1].lower() == "true"


VERDICT_STRUCTURE = Choice(("True", "False"))
"""What a structured verification answer may be: exactly ``True`` or ``False`` (the authors' prompt asks
for that word only, with 10 new tokens)."""


def integer_answers(problems: Sequence[Problem]) -> bool:
    """Whether every reference answer is a plain integer (then the answer slot is constrained to digits)."""
    return all(re.fullmatch(r"-?\d+", p.answer.strip()) is not None for p in problems)


REASONING_FORMS = ("free", "calculation")


def reasoning_regex(reasoning: str, max_reasoning_chars: int) -> str:
    """The regex of the reasoning before the ``<answer>`` tag: ``free`` = any text without ``<`` of at
    most ``max_reasoning_chars`` characters; ``calculation`` = the calculation written out, an
    expression of digits and operators (at most ``max_reasoning_chars`` characters) and ``=``, whose
    result is then the answer in the tags, as in ``4 + 2 = <answer>6</answer>`` (reconstruction for
    arithmetic at CPU scale: the embedded model completes such a line correctly far more often than it
    keeps a free-text thought on track, and in a probe it often wrote ``0 + 4 = 4`` and then a different
    number in the tags); anything else is taken as a custom regex (it must not allow ``<``, so the tag
    stays unambiguous).

    >>> print(reasoning_regex("free", 30), reasoning_regex("calculation", 20))
    [^<]{0,30} [0-9 +\-*/()]{1,20}= ?
    """
    if reasoning == "free":
        return f"[^<]{{0,{max_reasoning_chars}}}"
    if reasoning == "calculation":
        return f"[0-9 +\\-*/()]{{1,{max(1, max_reasoning_chars)}}}= ?"
    if not reasoning:
        raise ValueError("reasoning must be 'free', 'calculation' or a regex without '<'")
    return reasoning


def answer_structure(task: Task, problems: Sequence[Problem], max_reasoning_chars: int,
                     answer_pattern: str = "", reasoning: str = "free") -> ReasonThenAnswer | Regex | None:
    """Reason-then-answer for an ``<answer>``-format task, or None for other formats (boxed math and
    code are left free: their answers do not fit a short pattern).

    The answer slot is ``answer_pattern`` if given, else an integer (``-?[0-9]{1,12}``) when every
    reference answer is one, else one line without tags (``[^<\n]{1,200}``). The reasoning before it
    follows :func:`reasoning_regex` (``free`` is :func:`~workbench.llm.structure.reason_then_answer`).

    >>> from workbench.tasks import ReasoningGymTask
    >>> t = ReasoningGymTask("chain_sum", size=2, seed=0, config={"min_terms": 2, "max_terms": 2, "max_digits": 1})
    >>> print(answer_structure(t, t.problems, 40).regex())
    [^<]{0,40}<answer>(?:-?[0-9]{1,12})</answer>
    >>> answer_structure(t, t.problems, 20, reasoning="calculation").matches("4 + 2 = <answer>6</answer>")
    True
    """
    if task.answer_format != "tags":
        return None
    pat = answer_pattern or (r"-?[0-9]{1,12}" if integer_answers(problems) else r"[^<\n]{1,200}")
    if reasoning == "free":
        return reason_then_answer(Regex(pat), max_reasoning_chars=max_reasoning_chars)
    return Regex(f"{reasoning_regex(reasoning, max_reasoning_chars)}{_OPEN}(?:{pat}){_CLOSE}")


__all__ = ["PARSE_CATEGORIES", "strict_tag_answer", "strict_answer", "read_answer", "parse_verdict",
           "VERDICT_STRUCTURE", "answer_structure", "reasoning_regex", "REASONING_FORMS", "integer_answers", "is_number"]
