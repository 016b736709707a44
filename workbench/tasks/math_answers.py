"""Math answer extraction and equivalence, on the field's reference checker ``math-verify``.

``extract_boxed`` finds the last ``\\boxed{...}`` (balanced braces); ``answers_equivalent`` asks
math-verify whether two answers are the same mathematical object (1/2 == 0.5, sets, intervals...),
falling back to normalised string equality when either side cannot be parsed.
"""
from __future__ import annotations

import re
from functools import lru_cache


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced.

    >>> extract_boxed(r"so \\boxed{\\frac{1}{2}} and finally \\boxed{3}")
    '3'
    >>> extract_boxed(r"x = \\boxed{\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> extract_boxed("no box") is None
    True
    """
    if not text:
        return None
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    # The closing brace of every "{" after the first box, in one pass (a stack of open braces): the
    # same brace the depth count from each start finds, without rescanning the text once per start
    # (quadratic in the number of unclosed boxes).
    close: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, starts[0] - 1):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            close[stack.pop()] = m.start()
    for start in reversed(starts):
        end = close.get(start - 1)
        if end is not None:
            return text[start:end].strip()
    return None


_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")


def normalise(ans: str) -> str:
    """Loose string normal form used when math-verify cannot parse.

    >>> normalise(" $ 12.0 $ ")
    '12'
    """
    s = ans.strip().strip("$").strip().rstrip(".").replace(" ", "").lower()
    cut = s.rfind("}") + 1  # no \text{...} starts after the last "}": leave that tail out of the regex,
    s = re.sub(r"\\text\{([^}]*)\}", r"\1", s[:cut]) + s[cut:]  # where each unclosed \text{ rescanned it
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


@lru_cache(maxsize=65536)
def _parse(ans: str):
    from math_verify import parse

    # wrap bare answers so the LaTeX extractor sees them; also try plain-expression extraction
    return parse(f"${ans}$") or parse(ans)


def answers_equivalent(pred: str | None, gold: str | None) -> bool:
    """True if ``pred`` and ``gold`` are the same answer (math-verify; string fallback).

    >>> answers_equivalent("1/2", "0.5"), answers_equivalent("\\\\frac{1}{2}", "0.5"), answers_equivalent("3", "4")
    (True, True, False)
    """
    if pred is None or gold is None:
        return False
    pred, gold = str(pred), str(gold)
    if normalise(pred) == normalise(gold):
        return True
    try:
        from math_verify import verify

        g, p = _parse(gold), _parse(pred)
        if g and p:
            return bool(verify(g, p))
    except Exception:  # math-verify raises on exotic input; fall back to the string test above
        return False
    return False
