"""Structured outputs and strict/lenient parsing for the MATH^2 stages, and the math-verify check of a
generated solution.

With ``Config.structured`` (on by default) every stage decodes under a structure from
:mod:`workbench.llm.structure`, so the output has the asked form by construction:

- skill label (free): ``SKILL: <1-5 words>`` (:func:`label_structure`);
- skill label (assigned): exactly one name of the extracted coarse-skill list (``Choice``);
- verdicts (pair check, question validation): bounded reasoning, then ``<answer>Yes</answer>`` or
  ``<answer>No</answer>`` (reason-then-answer, the paper's ``# REASONING`` / ``# FINAL ANSWER`` order);
- generation: ``# QUESTION`` line, ``# SOLUTION`` text, then ``Computation: <arithmetic> = \\boxed{<number>}``;
- attempted, final and evaluation solutions: bounded reasoning, then ``<answer><number></answer>``.

Every parse returns a :class:`Parsed`: the value, ``how`` it was read (``strict``: the asked format,
or the paper's ``# FINAL ANSWER`` / ``\\boxed{}``; ``lenient``: only a fallback rule read it; ``none``)
and whether the completion was cut by the token budget (``finish_reason == "length"``). Decisions
use strict values unless ``Config.lenient_parsing``; the shares of each kind are reported per stage.

Reconstruction (the paper is silent; each is a Config field): the reasoning bounds in characters,
the number format of answers (integers, decimals, simple fractions), the ``Computation:`` line that
lets math-verify check the generator's own arithmetic, and that a verdict nobody could read is its
own category (never "No").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..llm import Choice, Regex, reason_then_answer
from ..tasks.math_answers import extract_boxed
from .parsing import _FINAL, clean_label, parse_answer, parse_generated, parse_skill_label, parse_yes_no

NUMBER = r"-?[0-9]{1,7}(\.[0-9]{1,4})?(/[0-9]{1,4})?"
"""the answer form under structure: integer, decimal or simple fraction (reconstruction)"""
_NUMBER_FULL = re.compile(NUMBER)
ARITH = r"[-0-9+*/(). ]{1,48}"
"""the arithmetic of the ``Computation:`` line (numbers, + - * /, parentheses)"""
KINDS = ("strict", "lenient", "none")


@dataclass(frozen=True)
class Parsed:
    """One parsed output: ``value`` (None when unreadable), ``how`` in :data:`KINDS`, ``truncated``."""

    value: Any
    how: str
    truncated: bool = False

    def used(self, lenient: bool) -> Any:
        """The value a decision uses: strict values always, lenient ones only when asked."""
        return self.value if self.how == "strict" or (lenient and self.how == "lenient") else None

    def to_dict(self) -> dict:
        return {"value": self.value, "how": self.how, "truncated": self.truncated}


def _parsed(strict, lenient, truncated: bool) -> Parsed:
    if strict is not None:
        return Parsed(strict, "strict", truncated)
    if lenient is not None:
        return Parsed(lenient, "lenient", truncated)
    return Parsed(None, "none", truncated)


# ------------------------------------------------------------------------------------- structures
def label_structure() -> Regex:
    """``SKILL: `` and one to five words of letters.

    >>> label_structure().matches("SKILL: area of triangles"), label_structure().matches("SKILL: 42")
    (True, False)
    """
    return Regex(r"SKILL: [A-Za-z]+( [A-Za-z]+){0,4}")


def skill_choice(names: Sequence[str]) -> Choice:
    """Exactly one of the extracted skill names (sorted, so the structure does not depend on order)."""
    names = sorted(set(names))
    if not names:
        raise ValueError("the skill list is empty: no label could be assigned (check the labelling stage)")
    return Choice(names)


def verdict_structure(max_reasoning_chars: int):
    """Reasoning of at most ``max_reasoning_chars`` characters, then ``<answer>Yes|No</answer>``.

    >>> s = verdict_structure(40)
    >>> s.matches("Both are needed.<answer>Yes</answer>"), s.matches("<answer>maybe</answer>")
    (True, False)
    """
    return reason_then_answer(Choice(("Yes", "No")), max_reasoning_chars=max_reasoning_chars)


def answer_structure(max_reasoning_chars: int):
    """Reasoning, then ``<answer>`` + a number (:data:`NUMBER`) + ``</answer>``.

    >>> answer_structure(30).answer_of("3 + 4 = 7 <answer>7</answer>")
    '7'
    """
    return reason_then_answer(Regex(NUMBER), max_reasoning_chars=max_reasoning_chars)


def generation_structure(max_question_chars: int, max_solution_chars: int) -> Regex:
    """``# QUESTION`` + one line, ``# SOLUTION`` + text, ``Computation: <arithmetic> = \\boxed{<number>}``.

    >>> g = generation_structure(200, 100)
    >>> g.matches("# QUESTION\\nWhat is 25% of 60 apples?\\n# SOLUTION\\nTake a quarter.\\n"
    ...           "Computation: 60 * 25 / 100 = \\\\boxed{15}")
    True
    """
    return Regex(rf"# QUESTION\n[^#<\n]{{20,{max_question_chars}}}\n# SOLUTION\n[^#<]{{0,{max_solution_chars}}}"
                 rf"Computation: {ARITH} = \\boxed\{{{NUMBER}\}}")


# ---------------------------------------------------------------------------------------- parsers
_TAG_VERDICT = re.compile(r"<answer>\s*(yes|no)\s*</answer>\s*$", re.I)
_TAG_NUMBER = re.compile(r"<answer>\s*([^<]{1,40}?)\s*</answer>", re.I)
_OPEN_TAG_NUMBER = re.compile(r"<answer>\s*(-?[0-9][0-9.,/]*)")


def parse_verdict(text: str, truncated: bool = False) -> Parsed:
    """A Yes/No verdict. Strict: ``<answer>Yes|No</answer>`` closing the text (the structured form) or
    the paper's ``# FINAL ANSWER`` Yes/No (all such lines agree). Lenient: the other rules of
    :func:`~workbench.math2.parsing.parse_yes_no` (a yes/no last line, a lone yes or no word).

    >>> parse_verdict("fine<answer>No</answer>"), parse_verdict("# FINAL ANSWER: Yes").how
    (Parsed(value=False, how='strict', truncated=False), 'strict')
    >>> parse_verdict("Yes, they differ.").how, parse_verdict("I like turtles").how
    ('lenient', 'none')
    """
    text = text or ""
    strict = None
    m = _TAG_VERDICT.search(text)
    if m:
        strict = m.group(1).lower() == "yes"
    else:
        finals = {f.lower() for f in _FINAL.findall(text)}
        if len(finals) == 1:
            strict = finals.pop() == "yes"
    return _parsed(strict, None if strict is not None else parse_yes_no(text), truncated)


def _clean_number(s: str) -> str | None:
    s = s.strip().strip("$").strip().rstrip(".").replace(",", "")
    return s if s else None


def parse_solution_answer(text: str, truncated: bool = False) -> Parsed:
    """A final answer. Strict: the last complete ``<answer>...</answer>`` or the last ``\\boxed{}`` (the
    paper's form). Lenient: an unclosed ``<answer>`` followed by a number, then the rules of
    :func:`~workbench.math2.parsing.parse_answer` ("answer is X", last number of the last line).

    >>> parse_solution_answer("so <answer>12</answer>").value, parse_solution_answer("\\\\boxed{3/4}").how
    ('12', 'strict')
    >>> parse_solution_answer("The answer is 7.").how, parse_solution_answer("<answer>7").how
    ('lenient', 'lenient')
    >>> parse_solution_answer("I do not know").how
    'none'
    """
    text = text or ""
    tags = _TAG_NUMBER.findall(text)
    strict = _clean_number(tags[-1]) if tags else None
    if strict is None:
        b = extract_boxed(text)
        strict = _clean_number(b) if b else None
    lenient = None
    if strict is None:
        opened = _OPEN_TAG_NUMBER.findall(text)  # an <answer> tag the budget cut before it closed
        lenient = _clean_number(opened[-1]) if opened else parse_answer(text)
    return _parsed(strict, lenient, truncated)


_COMPUTATION = re.compile(r"Computation:\s*([^\n=]{1,80}?)\s*=\s*\\boxed\{", re.I)


def parse_generation(text: str, truncated: bool = False) -> Parsed:
    """Question, brief solution, answer and the ``Computation:`` expression of the generator's output.
    Strict: ``# QUESTION`` and ``# SOLUTION`` headers and a ``\\boxed{}`` answer. Lenient: what
    :func:`~workbench.math2.parsing.parse_generated` reads otherwise (``Question:`` / ``Solution:``, a
    question without an answer...). The value is ``{"question", "solution", "answer", "computation"}``.

    >>> p = parse_generation("# QUESTION\\nWhat is 2 + 3 apples?\\n# SOLUTION\\nAdd.\\nComputation: 2 + 3 = \\\\boxed{5}")
    >>> p.how, p.value["answer"], p.value["computation"]
    ('strict', '5', '2 + 3')
    >>> parse_generation("Question: What is 2% of 50?\\nSolution: 1").how
    'lenient'
    """
    text = text or ""
    g = parse_generated(text)
    if g is None:
        return Parsed(None, "none", truncated)
    m = _COMPUTATION.search(g["solution"])
    g = dict(g, computation=m.group(1).strip() if m else None)
    has_headers = re.search(r"^# QUESTION\s*$", text, re.M) and re.search(r"^# SOLUTION\s*$", text, re.M)
    strict = has_headers and extract_boxed(g["solution"]) is not None
    return Parsed(g, "strict" if strict else "lenient", truncated)


def parse_label(text: str, truncated: bool = False, choices: Sequence[str] | None = None) -> Parsed:
    """A skill label. With ``choices`` (a label assigned from the extracted list): strict when the text is
    exactly one of them; lenient when exactly one of them occurs in the text. Without: strict is a
    ``SKILL: <words>`` first line; lenient is what :func:`~workbench.math2.parsing.parse_skill_label`
    reads otherwise (a tag, a skill phrase in the prose, the last line).

    >>> parse_label("SKILL: Area of triangles").value, parse_label("It tests fractions.").how
    ('area of triangles', 'lenient')
    >>> parse_label("fractions", choices=["fractions", "percent"]).how
    'strict'
    >>> parse_label("I pick percent here", choices=["fractions", "percent"]).value
    'percent'
    """
    text = text or ""
    if choices is not None:
        if text.strip() in choices:
            return Parsed(text.strip(), "strict", truncated)
        low = text.lower()
        hits = [c for c in choices if c.lower() in low]
        hits = [c for c in hits if not any(c != d and c.lower() in d.lower() for d in hits)]
        return _parsed(None, hits[0] if len(hits) == 1 else None, truncated)
    m = re.match(r"\s*SKILL:\s*([A-Za-z][A-Za-z ]*[A-Za-z])\s*$", text.splitlines()[0] if text.strip() else "")
    if m and 1 <= len(m.group(1).split()) <= 8:
        return Parsed(clean_label(m.group(1)), "strict", truncated)
    return _parsed(None, parse_skill_label(text), truncated)


# --------------------------------------------------------------------------------- tallies
def tally(parsed: Iterable[Parsed]) -> dict[str, Any]:
    """Counts and shares of strict / lenient-only / unparsed / truncated outputs.

    >>> t = tally([Parsed(1, "strict"), Parsed(2, "lenient", True), Parsed(None, "none")])
    >>> t["n"], t["strict"], t["lenient_only"], t["unparsed"], t["truncated"], round(t["strict_share"], 3)
    (3, 1, 1, 1, 1, 0.333)
    """
    ps = list(parsed)
    n = len(ps)
    out = {"n": n, "strict": sum(p.how == "strict" for p in ps), "lenient_only": sum(p.how == "lenient" for p in ps),
           "unparsed": sum(p.how == "none" for p in ps), "truncated": sum(bool(p.truncated) for p in ps)}
    for k in ("strict", "lenient_only", "unparsed", "truncated"):
        out[f"{k}_share"] = out[k] / n if n else None
    return out


# ------------------------------------------------------------------------ math-verify of solutions
_NUM_TOKEN = re.compile(r"\d+(?:\.\d+)?")


def verify_computation(computation: str | None, answer: str | None, question: str = "",
                       numbers_from_question: bool = True) -> dict[str, Any]:
    """Whether a generated solution's ``Computation:`` line is right, checked by math-verify: the
    expression has at least one operator, math-verify equates its value with the boxed ``answer``,
    and (``numbers_from_question``) every number in it is stated in the question (100 too when the
    question speaks of percent). This checks the
    arithmetic and that it works on the question's data, not that the setup is right; it is what
    stands in for the paper's human check of the reference answer when nobody has reviewed.

    >>> verify_computation("60 * 25 / 100", "15", "25% of 60 apples")["verified"]
    True
    >>> verify_computation("60 * 25 / 100", "14", "25% of 60 apples")["why"]
    'math-verify: the computation does not equal the answer'
    >>> verify_computation("7", "7", "7 cats")["why"]
    'no operation in the computation'
    """
    def res(ok, why, value=None):
        return {"verified": ok, "why": why, "value": value}

    if not computation or answer is None:
        return res(False, "no computation or no answer")
    expr = computation.strip()
    if not re.fullmatch(ARITH, expr):
        return res(False, "the computation is not plain arithmetic")
    if not re.search(r"\d\s*[-+*/]\s*[\d(]|\)\s*[-+*/]", expr):
        return res(False, "no operation in the computation")
    if numbers_from_question:
        stated = {float(x) for x in _NUM_TOKEN.findall(question.replace(",", ""))}
        if "%" in question or "percent" in question.lower():
            stated.add(100.0)  # a percentage is read as x / 100
        missing = [x for x in _NUM_TOKEN.findall(expr) if float(x) not in stated]
        if missing:
            return res(False, f"numbers not stated in the question: {missing[:3]}")
    try:
        from math_verify import parse, verify

        e, a = parse(f"${expr}$"), parse(f"${answer}$")
        if not e or not a:
            return res(False, "math-verify could not parse the computation or the answer")
        ok = bool(verify(a, e))
        return res(ok, "verified" if ok else "math-verify: the computation does not equal the answer", str(e[0]))
    except Exception as ex:  # math-verify raises on exotic input: not verified, with the reason
        return res(False, f"math-verify failed: {type(ex).__name__}")


def is_number(s: str | None) -> bool:
    """Whether ``s`` has the structured answer form (:data:`NUMBER`)."""
    return s is not None and _NUMBER_FULL.fullmatch(s.strip()) is not None
