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

TEMPLATES = ("label_skill", "assign_skill", "cluster_skills", "validate_pair", "generate_question", "attempt_solution",
             "validate_question", "final_solution", "solve")


@lru_cache(maxsize=None)
def template_text(name: str) -> str:
    """The raw text of ``prompts/<name>.txt``."""
    if name not in TEMPLATES:
        raise KeyError(f"unknown prompt template {name!r}; templates: {TEMPLATES}")
    return resources.files(__package__).joinpath("prompts", f"{name}.txt").read_text()


def render(name: str, **values: object) -> str:
    """Fill template ``name``; a missing value raises a KeyError naming it.

    >>> render("solve", question="What is 1+1?", answer_format="").splitlines()[-1]
    'Problem: What is 1+1?'
    """
    try:
        return Template(template_text(name)).substitute({k: str(v) for k, v in values.items()})
    except KeyError as e:
        raise KeyError(f"template {name!r} needs a value for {e.args[0]!r}") from None


FORMATS = {
    # structured: what the structure enforces, said in words so the model is not surprised by it
    True: {"verdict_format": "Write one or two short sentences of reasoning, then give the verdict as "
                             "<answer>Yes</answer> or <answer>No</answer>.",
           "answer_format": "Write a short computation, then give the final number as <answer>NUMBER</answer>. "
                            "Example: for 'What is 3 + 4?' write: 3 + 4 = 7. <answer>7</answer>",
           "generation_format": "Use this format:\n# QUESTION\n<the question, on one line>\n# SOLUTION\n"
                                "<a brief solution>\nComputation: <the arithmetic with the question's numbers> = "
                                "\\boxed{<the answer>}"},
    # free text: the paper's formats
    False: {"verdict_format": "Write your reasoning under \"# REASONING\", then \"# FINAL ANSWER\" followed by "
                              "Yes or No.",
            "answer_format": "Put the final answer in \\boxed{}.",
            "generation_format": "Use this format:\n# QUESTION\n<the question>\n# SOLUTION\n"
                                 "<a brief solution ending with the final answer in \\boxed{}>"},
}
"""the format instructions put into the templates, for structured decoding on (True) or off (False)"""


def render_fmt(name: str, structured: bool, **values: object) -> str:
    """:func:`render` with the format instructions of ``structured`` filled in."""
    return render(name, **FORMATS[bool(structured)], **values)


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


_SKILL_OPEN, _SKILL_CLOSE = re.compile(r"<skill>", re.I), re.compile(r"</skill>", re.I)


def _first_tag(text: str, open_re: re.Pattern, close_re: re.Pattern) -> str | None:
    """Text between the first opening tag that has a closing tag after it and that closing tag: what
    ``re.search("<t>(.*?)</t>", text, re.I | re.S)`` returns, in linear time (the lazy regex rescanned the
    rest of the text from every unclosed opening tag)."""
    o = open_re.search(text)
    c = close_re.search(text, o.end()) if o else None
    return text[o.end():c.start()] if c else None


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
    tag = _first_tag(text, _SKILL_OPEN, _SKILL_CLOSE)
    if tag is not None:
        cands.append(tag)
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


# Matches what ``final\s*answer\s*[:\-]?\s*[*#\s]*\b(yes|no)\b`` matched (the same language before
# yes/no, which can only start where that run of separators ends), without overlapping quantifiers:
# the old pattern took time cubic in a run of spaces after "final answer".
_FINAL = re.compile(r"final\s*answer\s*(?:[:\-][*#\s]*|[*#][*#\s]*)?\b(yes|no)\b", re.I)


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


# A header is ``^\W*(?:#+\s*)?\**\s*(?:new\s+)?question\s*\**\s*:?\s*\**`` (re.I | re.M; "brief solution" for
# the solution): everything before the word is non-word characters, so the word starts where the run of
# non-word characters from a line start ends. _header finds the same match as that regex by scanning
# (the regex tried every split of that run, from every line start inside it: cubic in a run of newlines).
_HEADER_Q = re.compile(r"(?:new\s+)?question\s*\**\s*:?\s*\**", re.I)
_HEADER_S = re.compile(r"(?:brief\s+)?solution\s*\**\s*:?\s*\**", re.I)
_NON_WORD = re.compile(r"\W*")


def _line_start(text: str, pos: int) -> int | None:
    """The first line start at or after ``pos``, or None."""
    if pos == 0 or text[pos - 1] == "\n":
        return pos
    nl = text.find("\n", pos)
    return None if nl < 0 else nl + 1


def _header(text: str, word: re.Pattern, pos: int = 0) -> tuple[int, int] | None:
    """(start, end) of the first header at a line start at or after ``pos``, or None."""
    start = _line_start(text, pos)
    if start is None:
        return None
    while True:
        run_end = _NON_WORD.match(text, start).end()
        m = word.match(text, run_end)
        if m:
            return start, m.end()
        # every line start inside this run reaches the same run end, and fails the same way
        nl = text.find("\n", run_end)
        if nl < 0:
            return None
        start = nl + 1


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
    mq = _header(text, _HEADER_Q)
    ms = _header(text, _HEADER_S, mq[1] if mq else 0)
    if mq:
        q = text[mq[1]: ms[0] if ms else len(text)]
    elif ms:
        q = text[: ms[0]]
    else:
        return None
    sol = text[ms[1]:].strip() if ms else ""
    q = q.strip()
    if len(q) < 8 or "<the question>" in q or len(q) > 2000:
        return None
    return {"question": q, "solution": sol, "answer": parse_answer(sol) if sol else None}


_ANSWER_HEAD = re.compile(r"answer\s*(?:is|:|=)", re.I)
_WS = re.compile(r"\s*")


def _answer_is(text: str) -> list[str]:
    """What ``re.findall(r"answer\\s*(?:is|:|=)\\s*\\$?\\s*([^\\s$][^\\n$]*?)\\s*\\$?\\s*(?:\\.\\s|\\.$|$|\\n)",
    text, re.I)`` returns, found by scanning in linear time (that regex tried every split of the
    whitespace after each extension of the lazy group: cubic in a run of spaces).

    Written by hand because Python's ``re`` (before 3.11) has no atomic groups; each step below mirrors
    the order in which the regex tries its alternatives, so the first match found is the regex's.
    """
    n = len(text)
    ws_end = lambda i: _WS.match(text, i).end()  # noqa: E731

    def closing(y: int) -> int:  # end of ``(?:\.\s|\.$|$|\n)`` at y, or -1 (y is where whitespace ends)
        if y == n:
            return n
        if text[y] == "." and (y + 1 == n or text[y + 1].isspace()):
            return y + 1 if y + 1 == n else y + 2
        return -1

    def newline_end(lo: int, hi: int) -> int:  # the last "\n" in [lo, hi): the regex backtracks to it
        y = text.rfind("\n", lo, hi)
        return -1 if y < 0 else (y if y == n - 1 else y + 1)

    def tail(x: int) -> int:  # end of ``\s*\$?\s*(?:\.\s|\.$|$|\n)`` matched at x, or -1
        a = ws_end(x)
        if a < n and text[a] == "$":
            b = ws_end(a + 1)
            e = closing(b)
            if e < 0:
                e = newline_end(a + 1, b)
            if e >= 0:
                return e
        else:
            e = closing(a)
            if e >= 0:
                return e
        return newline_end(x, a)

    out, pos, dead_until = [], 0, -1
    while True:
        h = _ANSWER_HEAD.search(text, pos)
        if h is None:
            return out
        g = ws_end(h.end())
        if g < n and text[g] == "$":
            g = ws_end(g + 1)
        found = None
        if g < n and text[g] != "$" and not text[g].isspace() and g >= dead_until:
            stops = [i for i in (text.find("\n", g + 1), text.find("$", g + 1)) if i >= 0]
            limit = min(stops) if stops else n  # the lazy group can grow up to here
            x = g + 1
            while x <= limit:
                e = tail(x)
                if e >= 0:
                    found = (text[g:x], e)
                    break
                # inside a run of whitespace the tail's result does not change: skip the run
                x = max(x + 1, ws_end(x)) if x < n and text[x].isspace() else x + 1
            if found is None:  # a later start whose group begins before ``limit`` fails the same way
                dead_until = limit
        if found is None:
            pos = h.start() + 1
            continue
        out.append(found[0])
        pos = found[1]
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
    m = _answer_is(text)
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
    if _answer_is(text):
        return "answer_is"
    return "last_number" if _NUMBER.findall(_last_nonempty_line(text)) else "none"


_GROUP_WORD = re.compile(r"group", re.I)
_DIGITS = re.compile(r"\d+")
_NUMBER_LIST = re.compile(r"[\d,\s and]*", re.I)


def _group_lines(text: str) -> list[tuple[str, str]]:
    """The (name, numbers) groups of
    ``re.finditer(r"^\\W*group\\s*(?:\\d+\\s*)?[:\\-]?\\s*([^:\\n]*?)\\s*:\\s*([\\d,\\s and]+)$", text, re.I | re.M)``,
    found by scanning in linear time (the regex tried every split of each whitespace run between
    its adjacent quantifiers: cubic in a run of spaces after "GROUP"). As in the regex, a number list may
    go on over the next lines ("1, 2,\\n3").

    Written by hand because Python's ``re`` (before 3.11) has no atomic groups; the order in which the
    places where the name may start are tried (``starts``) is the order the regex tries them, and a
    place the regex tries later can only succeed where an earlier one did.
    """
    n = len(text)
    ws_end = lambda i: _WS.match(text, i).end()  # noqa: E731

    def numbers(u: int) -> tuple[int, int] | None:  # ``\s*([\d,\s and]+)$`` at u: (group start, end)
        w, r = ws_end(u), _NUMBER_LIST.match(text, u).end()
        if w < r:
            if r == n:
                return w, n
            e = text.rfind("\n", w + 1, r)
            if e >= 0:
                return w, e
        if w > u:
            if r == n:
                return w - 1, n
            z = text.rfind("\n", u + 1, w)
            if z >= 0:
                return z - 1, z
        return None

    def rest(n0: int):  # ``([^:\n]*?)\s*:`` + numbers at n0: (name, numbers, end) or None
        c = text.find(":", n0)
        if c < 0:
            return None
        n1 = c
        while n1 > n0 and text[n1 - 1].isspace():
            n1 -= 1
        if text.find("\n", n0, n1) >= 0:
            return None
        nums = numbers(c + 1)
        return None if nums is None else (text[n0:n1], text[nums[0]:nums[1]], nums[1])

    def after_word(p: int):  # ``\s*(?:\d+\s*)?[:\-]?\s*`` then rest(), in the regex's order
        a = ws_end(p)
        starts = []
        d = _DIGITS.match(text, a)
        if d:
            w = ws_end(d.end())
            if w < n and text[w] in ":-":
                starts.append(ws_end(w + 1))
            starts.append(w)
        if a < n and text[a] in ":-":
            starts.append(ws_end(a + 1))
        starts.append(a)
        for n0 in starts:
            r = rest(n0)
            if r is not None:
                return r
        return None

    out, pos = [], 0
    while True:
        start = _line_start(text, pos)
        if start is None:
            return out
        run_end = _NON_WORD.match(text, start).end()
        g = _GROUP_WORD.match(text, run_end)
        r = after_word(g.end()) if g else None
        if r is not None:
            out.append((r[0], r[1]))
            pos = r[2]
            continue
        nl = text.find("\n", run_end)  # line starts inside this run of non-word characters fail the same way
        if nl < 0:
            return out
        pos = nl + 1


def parse_groups(text: str, n_items: int) -> list[tuple[str, list[int]]]:
    """``GROUP name: 1, 3, 5`` lines (1-based numbers) -> [(name, [0, 2, 4])]; out-of-range numbers
    and repeats of an already grouped item are ignored (callers count what stays unassigned).

    >>> parse_groups("GROUP algebra: 1, 2\\nGROUP geometry: 3, 9", 3)
    [('algebra', [0, 1]), ('geometry', [2])]
    """
    out, seen = [], set()
    for label, numbers in _group_lines(text or ""):
        name = clean_label(label) or f"group {len(out) + 1}"
        idx = []
        for tok in re.findall(r"\d+", numbers):
            tok = tok.lstrip("0") or "0"
            if len(tok) > 18:  # out of range anyway, and int() raises over 4300 digits
                continue
            i = int(tok) - 1
            if 0 <= i < n_items and i not in seen:
                seen.add(i)
                idx.append(i)
        if idx:
            out.append((name, idx))
    return out
