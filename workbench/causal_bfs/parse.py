"""Reading model answers: a strict rule (the authors' format) and a lenient fallback, kept apart.

Strict rule (what the reference code reads, made safe): the first ``<Answer>...</Answer>`` tag, exact
case and closed; its content split on commas; items that are exactly a variable name are the answer,
other items are dropped and reported in ``unknown`` (the reference drops them too). An empty tag or
``none`` is an explicit "no variables". Stricter than the reference in two places, on purpose: an
unclosed tag (a truncated answer, which the reference's ``split`` would accept) is not strict, and a
tag whose items name no variable at all (an echoed template such as ``<Answer>...</Answer>``) is
*unparsed*, never an empty answer.

Lenient fallback (reconstruction for small models; only where the strict rule fails): a tag in any
case, closed or not; then the last non-empty line; then variable names found in sentences of the text.
Names are matched ignoring case, spaces, ``_`` and ``-`` between their parts, longest name first, so
"CO2 Report" reads as ``CO2Report`` and never as ``CO2``. A line or sentence holding a negation ("not",
"no", "none of", "n't", ...) is not read for names ("not caused by xray are lung and bronc" names no
effect of xray), and a lone "none" reads as an explicit empty answer.

``method`` says which rule produced the answer: ``strict``, ``lenient:tag``, ``lenient:last_line``,
``lenient:text`` or ``none`` (unreadable: its own category; callers never turn it into "no edges").
Pairwise answers (``parse_choice``) follow the same split: strict ``<Answer>A</Answer>`` (A/B/C, closed
tag); lenient forms that cannot be an English article ("(A)", "A.", "A)" at a line start, "answer is A",
"option B", a line holding one letter); several different letters is ambiguous, so unparsed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

STRICT = "strict"
UNPARSED = "none"
LENIENT_METHODS = ("lenient:tag", "lenient:last_line", "lenient:text")
METHODS = (STRICT, *LENIENT_METHODS, UNPARSED)

_STRICT_TAG = re.compile(r"<Answer>(.*?)</Answer>", re.S)
_ANY_TAG = re.compile(r"<\s*+answer\s*+>([^<]*+)", re.I)  # content up to the next tag (closed or not)
_NONE_WORDS = {"", "none", "no variables", "nothing", "n/a", "no variable", "empty", "-"}
_NEGATION = re.compile(r"\b(?:not|no|none|never|neither|nor|cannot|without|except|unaffected)\b|n't\b", re.I)
_WORD = re.compile(r"[A-Za-z0-9]+")
_JOINERS = re.compile(r"[ _\-]?")  # what may separate the parts of a multi-word name in free text
_MAX_PARTS = 4


@dataclass
class ParsedAnswer:
    names: list[str]
    """matched variable names, in order of first mention, without duplicates"""
    unknown: list[str] = field(default_factory=list)
    """answer items that name no variable (reported, never dropped silently)"""
    method: str = UNPARSED
    """'strict' | 'lenient:tag' | 'lenient:last_line' | 'lenient:text' | 'none' (unreadable)"""
    note: str = ""
    """why an answer is unreadable (negation, template echo, no variable named...)"""

    @property
    def parsed(self) -> bool:
        return self.method != UNPARSED


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _clean(tok: str) -> str:
    return tok.strip().strip("\"'`*.[](){}:").strip()


def scan_names(text: str, names: Sequence[str]) -> list[str]:
    """Variable names mentioned in free text, in order, longest match first (see module docstring).

    Hand-written (a few lines) because the rule is specific: word runs joined by a space, ``_`` or
    ``-`` may spell one name ("CO2 Report" = CO2Report), and a name never matches inside a word.

    >>> scan_names("CO2 Report and co2, then lung cancer", ["CO2", "CO2Report", "lung"])
    ['CO2Report', 'CO2', 'lung']
    """
    keys = {}
    for n in names:
        keys.setdefault(_key(n), n)
    words = list(_WORD.finditer(text))
    found, i = [], 0
    while i < len(words):
        hit = None
        for k in range(min(_MAX_PARTS, len(words) - i), 0, -1):
            run = words[i:i + k]
            if any(not _JOINERS.fullmatch(text[a.end():b.start()]) for a, b in zip(run, run[1:])):
                continue
            name = keys.get("".join(w.group().lower() for w in run))
            if name is not None:
                hit = (name, k)
                break
        if hit:
            if hit[0] not in found:
                found.append(hit[0])
            i += hit[1]
        else:
            i += 1
    return found


def _strict(text: str, names: Sequence[str]) -> ParsedAnswer | None:
    m = _STRICT_TAG.search(text)
    if not m:
        return None
    content = m.group(1).strip()
    if content.lower() in ("", "none"):
        return ParsedAnswer([], [], STRICT)
    exact = set(names)
    found, unknown = [], []
    for item in content.split(","):
        it = item.strip()
        if it in exact:
            if it not in found:
                found.append(it)
        elif it:
            unknown.append(it)
    if not found:
        return ParsedAnswer([], unknown, UNPARSED, "the <Answer> tag names no variable (template echo or prose)")
    return ParsedAnswer(found, unknown, STRICT)


def _lenient_items(chunk: str, names: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """Names in a comma/semicolon/'and' separated chunk; third value: the chunk is an explicit none."""
    raw = chunk.strip()
    if raw and not re.search(r"[A-Za-z0-9]", raw):  # "...", "-, -": a template echo, not an answer
        return [], [raw], False
    if _clean(chunk).lower() in _NONE_WORDS:
        return [], [], True
    found, unknown = [], []
    for tok in re.split(r",|;|\n|\band\b|\||/", chunk):
        t = _clean(tok)
        if not t:
            continue
        if _NEGATION.search(t):
            unknown.append(t)
            continue
        hit = scan_names(t, names)
        if hit:
            found += [h for h in hit if h not in found]
        else:
            unknown.append(t)
    return found, unknown, False


def parse_answer(text: str, names: Sequence[str], rule: str = "lenient") -> ParsedAnswer:
    """Variables named in a model answer, under ``rule`` = ``"strict"`` or ``"lenient"`` (strict first,
    then the fallbacks).

    >>> parse_answer("I think <Answer>tub, lung, dragon</Answer>", ["tub", "lung"])
    ParsedAnswer(names=['tub', 'lung'], unknown=['dragon'], method='strict', note='')
    >>> parse_answer("Reasoning...\\nxray, dysp", ["xray", "dysp"]).method
    'lenient:last_line'
    >>> parse_answer("<Answer>...</Answer>", ["a"]).method
    'none'
    """
    if rule not in ("strict", "lenient"):
        raise ValueError(f"rule must be 'strict' or 'lenient', got {rule!r}")
    text = text or ""
    st = _strict(text, names)
    if st is not None and st.parsed:
        return st
    if rule == "strict":
        return st or ParsedAnswer([], [], UNPARSED, "no closed <Answer>...</Answer> tag")
    m = _ANY_TAG.search(text)
    if m:
        found, unknown, empty = _lenient_items(m.group(1), names)
        if found or empty:
            return ParsedAnswer(found, unknown, "lenient:tag")
        return ParsedAnswer([], unknown, UNPARSED, "the answer tag names no variable")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        last = lines[-1]
        if _clean(last).lower() in _NONE_WORDS:
            return ParsedAnswer([], [], "lenient:last_line")
        if not _NEGATION.search(last):
            found, unknown, _ = _lenient_items(last, names)
            if found:
                return ParsedAnswer(found, unknown, "lenient:last_line")
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n", text) if s.strip() and not _NEGATION.search(s)]
    found = [n for s in sentences for n in scan_names(s, names)]
    found = list(dict.fromkeys(found))
    if found:
        return ParsedAnswer(found, [], "lenient:text")
    note = "negation" if _NEGATION.search(text) else "no variable named"
    return ParsedAnswer([], [lines[-1].strip()[:80]] if lines else [], UNPARSED, note)


_CHOICE_STRICT = re.compile(r"<Answer>\s*([ABC])\s*</Answer>")
# possessive quantifiers (Python >= 3.11): no backtracking over long whitespace runs, which a small
# model's tokenizer produces in a few tokens (adjacent \s* would be cubic)
_CHOICE_TAG = re.compile(r"<\s*+answer\s*+>\s*+\(?([ABC])\)?\s*+(?:[.<]|$)", re.I)
_CHOICE_FORMS = (
    re.compile(r"\b(?i:answer|option|choice)(?:\s++(?i:is|would be))?\s*+:?\s*+\(?([ABC])\b(?![/\w])"),
    re.compile(r"\(([ABC])\)"),
    re.compile(r"^[ \t]*+\**+\(?([ABC])[.):](?![\w/])", re.M),
    re.compile(r"^[ \t]*+\**+([ABC])\**+[ \t]*+$", re.M),
)


def _letters(chunk: str, forms=_CHOICE_FORMS) -> set[str]:
    out = set()
    for pat in forms:
        out |= {m.group(1).upper() for m in pat.finditer(chunk)}
    return out


def parse_choice(text: str, rule: str = "lenient") -> tuple[str | None, str]:
    """The option letter A/B/C of a pairwise answer and the rule that found it.

    >>> parse_choice("Hmm. <Answer>B</Answer>")
    ('B', 'strict')
    >>> parse_choice("The answer is\\n(C) no relation")
    ('C', 'lenient:last_line')
    >>> parse_choice("A smoker is more likely to have lung cancer.")
    (None, 'none')
    """
    if rule not in ("strict", "lenient"):
        raise ValueError(f"rule must be 'strict' or 'lenient', got {rule!r}")
    text = text or ""
    m = _CHOICE_STRICT.search(text)
    if m:
        return m.group(1), STRICT
    if rule == "strict":
        return None, UNPARSED
    m = _CHOICE_TAG.search(text)
    if m:
        return m.group(1).upper(), "lenient:tag"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    said = _letters(last, _CHOICE_FORMS[:1])  # "the answer is B" on the last line settles it
    if len(said) == 1:
        return said.pop(), "lenient:last_line"
    every = _letters(text)  # otherwise one letter only: several (e.g. the options copied) is ambiguous
    if len(every) == 1:
        return next(iter(every)), ("lenient:last_line" if _letters(last) else "lenient:text")
    return None, UNPARSED
