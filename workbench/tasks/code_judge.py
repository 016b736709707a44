"""Judging of code candidates: output comparison, code extraction and normalisation, call-based drivers,
test-case validation (split out of :mod:`workbench.tasks.code_tasks`, which re-exports every public name).

- :func:`outputs_match`: LiveCodeBench's stdin grader (both texts stripped, split on ``"\\n"``, every line
  stripped; equal line counts and each line equal as text or as a list of ``Decimal`` numbers).
- :func:`extract_code`: the last fenced ```python block of a completion, else the last fenced block. A
  hand-written linear scan (``str.find``), not a regex: the previous pattern backtracked on long runs of
  spaces after a fence (``("```" + " " * 50) * 2000`` took over 20 s).
- :func:`normalise_code`: code text without comments, blank lines and trailing whitespace (equivalence
  ``"text"``); line endings ``\\r\\n`` and ``\\r`` read as newlines, as Python reads source.
- :func:`call_driver` / :func:`call_result_matches`: call-based (LeetCode) tests, see
  :mod:`workbench.tasks.code_tasks`.
"""
from __future__ import annotations

import io
import json
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

CODE_FORMAT_HINT = ("a single ```python code block holding your complete solution: a program that reads the input "
                    "from standard input and prints the answer to standard output, or, when starter code is given, "
                    "that code completed")

# Call-based (LeetCode) tests: names LeetCode solutions use without importing them. Reconstruction: our own
# list of the usual standard-library names, in the spirit of LiveCodeBench's import preamble.
CALL_PREAMBLE = ("from typing import *\nimport bisect, collections, functools, heapq, itertools, math, re, string\n"
                 "from bisect import *\nfrom collections import *\nfrom functools import *\nfrom heapq import *\n"
                 "from itertools import *\nfrom math import *\n")


def call_driver(code: str, fn_name: str) -> str:
    """A program that runs ``code`` (prints sent to stderr), calls ``Solution().<fn_name>`` (or a top-level
    ``fn_name``) with one JSON value per stdin line as arguments, and prints the result as JSON."""
    return (
        "import contextlib as _c, json as _j, sys as _s\n"
        f"_src = {CALL_PREAMBLE + chr(10) + code!r}\n"
        "_ns = {'__name__': 'solution'}\n"
        "with _c.redirect_stdout(_s.stderr):\n"
        "    exec(compile(_src, 'solution.py', 'exec'), _ns)\n"
        "    _args = [_j.loads(_l) for _l in _s.stdin.read().split('\\n') if _l.strip()]\n"
        f"    _f = getattr(_ns['Solution'](), {fn_name!r}) if 'Solution' in _ns else _ns[{fn_name!r}]\n"
        "    _r = _f(*_args)\n"
        "_s.stdout.write(_j.dumps(_r))\n")


def call_result_matches(got: str, expected: str) -> bool:
    """Call-based judging: the printed JSON result equals the expected JSON value (tuples as lists).

    >>> call_result_matches("[1, 2]", "[1,2]"), call_result_matches("3", "3.0"), call_result_matches("x", "1")
    (True, True, False)
    """
    try:
        return json.loads(got) == json.loads(expected)
    except (json.JSONDecodeError, ValueError):
        return False


def _stripped_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.strip().split("\n")]


def _as_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(tok) for tok in line.split()]
    except (InvalidOperation, ValueError):
        return None


def outputs_match(got: str, expected: str) -> bool:
    """LiveCodeBench's stdin comparison (see the module docstring).

    >>> outputs_match("3 4  \\n", "3 4"), outputs_match("1.0 2\\n", "1 2.00"), outputs_match("3\\n4", "3 4")
    (True, True, False)
    """
    a, b = _stripped_lines(got), _stripped_lines(expected)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        dx, dy = _as_decimals(x), _as_decimals(y)
        if dx is None or dy is None or dx != dy:
            return False
    return True


def normalise_output(text: str) -> str:
    """Output as compared: stripped lines joined (used to compare two programs' outputs)."""
    return "\n".join(_stripped_lines(text))


_LANG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every fenced block as ``(language, body)``: a fence ```` ``` ````, an info line (its first word after
    spaces or tabs is the language), a newline, then the body up to the next fence. The same blocks as
    ``re.findall(r"```[ \\t]*([A-Za-z0-9_+-]*)[^\\n]*\\n(.*?)```", text, re.DOTALL)``, in linear time.

    >>> fenced_blocks("```py x\\na\\n```\\n```\\nb```")
    [('py', 'a\\n'), ('', 'b')]
    """
    out, pos = [], 0
    while True:
        i = text.find("```", pos)
        if i < 0:
            return out
        nl = text.find("\n", i + 3)
        if nl < 0:
            return out
        close = text.find("```", nl + 1)
        if close < 0:  # no later fence: no block can open here or after
            return out
        info = text[i + 3:nl].lstrip(" \t")
        n = 0
        while n < len(info) and info[n] in _LANG_CHARS:
            n += 1
        out.append((info[:n], text[nl + 1:close]))
        pos = close + 3


def extract_code(text: str | None) -> tuple[str | None, str | None]:
    """The last fenced ```python block, else the last fenced block, with the method used.

    >>> extract_code("a\\n```python\\nprint(1)\\n```\\nb\\n```python\\nprint(2)\\n```\\n")
    ('print(2)', 'python_block')
    >>> extract_code("```\\nx = 1\\n```"), extract_code("no code")
    (('x = 1', 'code_block'), (None, None))
    """
    if not text:
        return None, None
    blocks = fenced_blocks(text)
    py = [b for lang, b in blocks if lang.lower() in ("python", "python3", "py")]
    if py and py[-1].strip():
        return py[-1].strip("\n"), "python_block"
    if blocks and blocks[-1][1].strip():
        return blocks[-1][1].strip("\n"), "code_block"
    return None, None


def normalise_code(code: str) -> str:
    """Code text without comments, blank lines and trailing whitespace (uses ``tokenize``; falls back to a
    line filter when the code does not tokenize).

    >>> normalise_code("x = 1  # one\\n\\n\\nprint(x)   \\n") == normalise_code("x = 1\\nprint(x)")
    True
    """
    import tokenize

    # Python reads "\\r\\n" and a lone "\\r" as line ends; tokenize does not (a leading "\\r" made
    # untokenize raise ValueError)
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type != tokenize.COMMENT]
        code = tokenize.untokenize(toks)
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        pass
    return "\n".join(ln.rstrip() for ln in code.splitlines() if ln.strip())


def check_tests(tests: Any, where: str = "", fn_name: str | None = None) -> list[dict]:
    """Validate ``{"input": str, "output": str[, "testtype": "stdin" | "functional"]}`` test cases (functional
    ones need ``fn_name``); raises ``ValueError`` naming the fault. Returns them normalised."""
    if not isinstance(tests, list) or not tests:
        raise ValueError(f"{where}: 'tests' must be a non-empty list of {{'input', 'output'}} objects")
    out = []
    for j, t in enumerate(tests):
        if not isinstance(t, Mapping) or not isinstance(t.get("input"), str) or not isinstance(t.get("output"), str):
            raise ValueError(f"{where}: test #{j} must be an object with string 'input' and 'output', got {repr(t)[:120]}")
        kind = t.get("testtype", "stdin")
        if kind not in ("stdin", "functional"):
            raise ValueError(f"{where}: test #{j} has unknown testtype {kind!r} (stdin or functional)")
        if kind == "functional" and not (isinstance(fn_name, str) and fn_name.isidentifier()):
            raise ValueError(f"{where}: test #{j} is functional (call-based) but the problem names no function "
                             "('fn_name')")
        out.append({"input": t["input"], "output": t["output"], "testtype": kind})
    return out


__all__ = ["CODE_FORMAT_HINT", "CALL_PREAMBLE", "call_driver", "call_result_matches", "outputs_match",
           "normalise_output", "fenced_blocks", "extract_code", "normalise_code", "check_tests"]
