"""Prompt templates (files in ``prompts/``) and lenient parsers of model output.

Templates use ``string.Template`` placeholders (``$question``) so the LaTeX braces of math text never
clash with the formatting syntax. Every parser returns ``None`` when it cannot read the output; the
callers count those cases and report them.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from string import Template

from ..tasks.math_answers import extract_boxed

TEMPLATES = ("label_skill", "cluster_skills", "validate_pair", "generate_question", "attempt_solution",
             "validate_question", "final_solution", "solve")


@lru_cache(maxsize=None)
def template_text(name: str) -> str:
    """The raw text of ``prompts/<name>.txt``."""
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt template {name!r}; templates: {TEMPLATES}")
    return resources.files(__package__).joinpath("prompts", f"{name}.txt").read_text()


def render(name: str, **values: object) -> str:
    """Fill template ``name``; a missing value raises a KeyError naming it.

    >>> render("solve", question="What is 1+1?").splitlines()[-1]
    'Problem: What is 1+1?'
    """
    try:
        return Template(template_text(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as e:
        raise KeyError(f"template {name!r} needs a value for {e.args[0]!r}") from None


@lru_cache(maxsize=None)
def generation_example() -> dict:
    """The worked generation turn used as a multi-turn exemplar."""
    return json.loads(resources.files(__package__).joinpath("prompts", "generation_example.json").read_text())


def _last_nonempty_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def clean_label(s: str) -> str:
    """Lower-case, strip quotes/markdown/punctuation at the ends, collapse spaces.

    >>> clean_label('  **"Solving Linear Equations."** ')
    'solving linear equations'
    """
    s = re.sub(r"[*_`\"'<>\[\]]", " ", s)
    s = re.sub(r"\s+", " ", s).strip().strip(".:;,-").strip()
    return s.lower()


def parse_skill_label(text: str, max_words: int = 8) -> str | None:
    """A skill name from the labeller's output: ``SKILL: x`` line, ``<skill>x</skill>``, else the last line.

    >>> parse_skill_label("Sure!\\nSKILL: Area of triangles")
    'area of triangles'
    >>> parse_skill_label("<skill>fractions</skill>")
    'fractions'
    >>> parse_skill_label("SKILL: <skill name>") is None
    True
    """
    if not text:
        return None
    cands = []
    m = re.findall(r"skill(?:\s*name)?\s*[:=\-]\s*(.+)", text, flags=re.I)
    if m:
        cands.append(m[0])
    m2 = re.search(r"<skill>(.*?)</skill>", text, flags=re.I | re.S)
    if m2:
        cands.append(m2.group(1))
    if not cands:  # no SKILL line and no tag: a skill phrase in the prose, then the last line
        phrase = skill_phrase(text)
        if phrase:
            cands.append(phrase)
        cands.append(_last_nonempty_line(text))
    for c in cands:
        c = c.splitlines()[0] if c.strip() else ""
        lab = clean_label(c)
        if lab and lab not in ("skill name", "skill") and 1 <= len(lab.split()) <= max_words:
            return lab
    return None


_PHRASE = re.compile(r"\b(?:requires|tests|involves|uses|is about|example of|problem of|skills? (?:is|of|needed is))\s+(.+)",
                     re.I | re.S)
_FILLER = re.compile(r"^(?:(?:a|an|the|basic|some|combination of|classic|example of|understanding of|knowledge of|"
                     r"good|strong|solid|use of|the skill of|skill of)\s+)+", re.I)
_TRAILING = {"a", "an", "the", "and", "or", "of", "to", "for", "with", "in", "on", "by", "is", "that"}


def skill_phrase(text: str, max_words: int = 5) -> str | None:
    """A skill phrase from prose like "This problem requires a combination of algebraic thinking ...":
    the words after requires/tests/involves/example of..., fillers and dangling words removed.

    >>> skill_phrase("This problem is a classic example of a lateral thinking puzzle, and so on")
    'lateral thinking puzzle'
    >>> skill_phrase("This problem requires a combination of algebraic thinking and basic fraction man")
    'algebraic thinking and basic fraction'
    >>> skill_phrase("no phrase here") is None
    True
    """
    m = _PHRASE.search(text or "")
    if not m:
        return None
    rest = re.split(r"[.,;:!?\n(]", m.group(1))[0]
    rest = _FILLER.sub("", rest.strip())
    words = rest.split()[:max_words]
    while words and words[-1].lower() in _TRAILING:
        words.pop()
    return " ".join(words) or None


_FINAL = re.compile(r"final\s*answer\s*[:\-]?\s*[*#\s]*\b(yes|no)\b", re.I)


def parse_yes_no(text: str) -> bool | None:
    """A Yes/No verdict: the ``FINAL ANSWER`` line(s) (all must agree), else a yes/no last line,
    else a lone yes or no word in the text.

    >>> parse_yes_no("# REASONING\\nfine\\n# FINAL ANSWER\\nYes")
    True
    >>> parse_yes_no("# FINAL ANSWER: Yes (good)\\nor\\n# FINAL ANSWER: No (bad)") is None
    True
    >>> parse_yes_no("No, they are the same."), parse_yes_no("maybe") is None
    (False, True)
    """
    if not text:
        return None
    finals = {m.lower() for m in _FINAL.findall(text)}
    if len(finals) == 1:
        return finals.pop() == "yes"
    if len(finals) > 1:
        return None
    last = _last_nonempty_line(text)
    first = re.match(r"\W*(yes|no)\b", last, re.I)
    if first and len({w.lower() for w in re.findall(r"\b(yes|no)\b", last, re.I)}) == 1:
        return first.group(1).lower() == "yes"
    words = {w.lower() for w in re.findall(r"\b(yes|no)\b", text, re.I)}
    if len(words) == 1:
        return words.pop() == "yes"
    return None


_HEADER_Q = re.compile(r"^\W*(?:#+\s*)?\**\s*(?:new\s+)?question\s*\**\s*:?\s*\**", re.I | re.M)
_HEADER_S = re.compile(r"^\W*(?:#+\s*)?\**\s*(?:brief\s+)?solution\s*\**\s*:?\s*\**", re.I | re.M)


def parse_generated(text: str) -> dict | None:
    """Question and brief solution from the generator's ``# QUESTION`` / ``# SOLUTION`` output
    (also ``Question:`` / ``Solution:``). Returns ``{"question", "solution", "answer"}`` or None.

    >>> d = parse_generated("# QUESTION\\nWhat is 2+3?\\n# SOLUTION\\n2+3=5, \\\\boxed{5}")
    >>> d["question"], d["answer"]
    ('What is 2+3?', '5')
    >>> parse_generated("# QUESTION\\n<the question>\\n# SOLUTION\\n<a brief solution>") is None
    True
    """
    if not text or not text.strip():
        return None
    mq = _HEADER_Q.search(text)
    ms = _HEADER_S.search(text, mq.end() if mq else 0)
    if mq:
        q = text[mq.end(): ms.start() if ms else len(text)]
    elif ms:
        q = text[: ms.start()]
    else:
        return None
    sol = text[ms.end():].strip() if ms else ""
    q = q.strip()
    if len(q) < 8 or "<the question>" in q or len(q) > 2000:
        return None
    return {"question": q, "solution": sol, "answer": parse_answer(sol) if sol else None}


_ANSWER_IS = re.compile(r"answer\s*(?:is|:|=)\s*\$?\s*([^\s$][^\n$]*?)\s*\$?\s*(?:\.\s|\.$|$|\n)", re.I)
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?")


def parse_answer(text: str) -> str | None:
    """A final answer: last ``\\boxed{}``, else "answer is X", else the last number of the last line.

    >>> parse_answer("so \\\\boxed{12}"), parse_answer("The answer is 7."), parse_answer("x = 3 + 4 = 7")
    ('12', '7', '7')
    >>> parse_answer("I do not know") is None
    True
    """
    if not text:
        return None
    b = extract_boxed(text)
    if b:
        return b
    m = _ANSWER_IS.findall(text)
    if m:
        return m[-1].strip().rstrip(".")
    nums = _NUMBER.findall(_last_nonempty_line(text))
    if nums:
        return nums[-1].replace(",", "").replace(" ", "")
    return None


def answer_source(text: str) -> str:
    """Which rule of :func:`parse_answer` fired: boxed | answer_is | last_number | none."""
    if not text:
        return "none"
    if extract_boxed(text):
        return "boxed"
    if _ANSWER_IS.findall(text):
        return "answer_is"
    return "last_number" if _NUMBER.findall(_last_nonempty_line(text)) else "none"


def parse_groups(text: str, n_items: int) -> list[tuple[str, list[int]]]:
    """``GROUP name: 1, 3, 5`` lines (1-based numbers) -> [(name, [0, 2, 4])]; out-of-range numbers
    and repeats of an already grouped item are ignored (callers count what stays unassigned).

    >>> parse_groups("GROUP algebra: 1, 2\\nGROUP geometry: 3, 9", 3)
    [('algebra', [0, 1]), ('geometry', [2])]
    """
    out, seen = [], set()
    for m in re.finditer(r"^\W*group\s*(?:\d+\s*)?[:\-]?\s*([^:\n]*?)\s*:\s*([\d,\s and]+)$", text or "", re.I | re.M):
        name = clean_label(m.group(1)) or f"group {len(out) + 1}"
        idx = []
        for tok in re.findall(r"\d+", m.group(2)):
            i = int(tok) - 1
            if 0 <= i < n_items and i not in seen:
                seen.add(i)
                idx.append(i)
        if idx:
            out.append((name, idx))
    return out
