"""Lenient parsing of model answers.

Order: the ``<Answer>...</Answer>`` tag (an unclosed tag runs to the end of the text), then the last
non-empty line, then any variable names found anywhere in the text. What could not be matched to a
variable is returned in ``unknown`` (reported by the caller, never dropped silently); the ``method``
field says which rule produced the answer so the caller can count them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

_TAG = re.compile(r"<\s*answer\s*>(.*?)(?:<\s*/\s*answer\s*>|$)", re.I | re.S)
_SPLIT = re.compile(r",|;|\n|\band\b|\|")
_NONE_WORDS = {"", "none", "no", "nothing", "no variables", "n/a", "na", "empty", "-", "no variable"}


@dataclass
class ParsedAnswer:
    names: list[str]
    """matched variable names, in order of first mention, without duplicates"""
    unknown: list[str] = field(default_factory=list)
    """answer items that name no variable"""
    method: str = "none"
    """'tag' | 'last_line' | 'text' | 'none' (nothing usable)"""


def _clean(tok: str) -> str:
    return tok.strip().strip("\"'`*.[](){}:").strip()


def _match_items(chunk: str, names: Sequence[str]) -> tuple[list[str], list[str]]:
    lower = {n.lower(): n for n in names}
    found, unknown = [], []
    for tok in _SPLIT.split(chunk):
        t = _clean(tok)
        if t.lower() in _NONE_WORDS:
            continue
        if t.lower() in lower:
            hit = [lower[t.lower()]]
        else:  # an item that contains variable names, e.g. "lung (lung cancer)"
            hit = _names_in(t, names)
        if hit:
            found += [h for h in hit if h not in found]
        else:
            unknown.append(t)
    return found, unknown


def _names_in(text: str, names: Sequence[str]) -> list[str]:
    hits = []
    for n in names:
        m = re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", text, re.I)
        if m:
            hits.append((m.start(), n))
    return [n for _, n in sorted(hits)]


def parse_answer(text: str, names: Sequence[str]) -> ParsedAnswer:
    """Variables named in a model answer.

    >>> parse_answer("I think <Answer>tub, Lung , dragon</Answer>", ["tub", "lung"])
    ParsedAnswer(names=['tub', 'lung'], unknown=['dragon'], method='tag')
    >>> parse_answer("Reasoning...\\nxray, dysp", ["xray", "dysp"]).method
    'last_line'
    >>> parse_answer("<Answer>none</Answer>", ["a"])
    ParsedAnswer(names=[], unknown=[], method='tag')
    """
    text = text or ""
    m = _TAG.search(text)
    if m:
        found, unknown = _match_items(m.group(1), names)
        return ParsedAnswer(found, unknown, "tag")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        found, unknown = _match_items(lines[-1], names)
        if found:
            return ParsedAnswer(found, unknown, "last_line")
    found = _names_in(text, names)
    if found:
        return ParsedAnswer(found, [], "text")
    return ParsedAnswer([], [lines[-1].strip()[:80]] if lines else [], "none")


_CHOICE_TAG = re.compile(r"<\s*answer\s*>\s*\(?([ABC])\b", re.I)
_CHOICE_WORD = re.compile(r"(?:^|[\s(\[*\"'])([ABC])(?:[.):\]*\"']|\s|$)")


def parse_choice(text: str) -> tuple[str | None, str]:
    """The option letter A/B/C of a pairwise answer and the rule that found it.

    >>> parse_choice("Hmm. <Answer>B</Answer>")
    ('B', 'tag')
    >>> parse_choice("The answer is\\n(C) no relation")
    ('C', 'last_line')
    >>> parse_choice("I cannot tell")
    (None, 'none')
    """
    text = text or ""
    m = _CHOICE_TAG.search(text)
    if m:
        return m.group(1).upper(), "tag"
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        m = _CHOICE_WORD.search(lines[-1])
        if m:
            return m.group(1), "last_line"
    m = _CHOICE_WORD.search(text)
    if m:
        return m.group(1), "text"
    return None, "none"
