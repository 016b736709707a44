"""Prompt templates of RSA, kept as data files in ``prompts/`` and overridable per run.

Templates are ``str.format`` strings. Fields: ``generate``: question, format_hint; ``aggregate``:
problem_kind, question, candidates, format_hint; ``candidate``: index, text; ``refine`` and ``verify``:
problem_kind, question, text, format_hint. The aggregation prompt follows the structure the paper
describes (header with the answer format, ``Problem:``, ``Candidate solutions (may contain mistakes):``,
``---- Solution i ----`` blocks holding the full previous responses, then the instruction to write one
improved solution); its exact wording here is ours.
"""
from __future__ import annotations

import string
from importlib import resources
from typing import Mapping, Sequence

NAMES = ("generate", "aggregate", "candidate", "refine", "verify")
FIELDS = {
    "generate": {"question", "format_hint"},
    "aggregate": {"problem_kind", "question", "candidates", "format_hint"},
    "candidate": {"index", "text"},
    "refine": {"problem_kind", "question", "text", "format_hint"},
    "verify": {"problem_kind", "question", "text", "format_hint"},
}


def _fields(tmpl: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(tmpl) if f}


def load_templates(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The packaged templates, with ``overrides`` (name -> text) applied and checked."""
    out = {n: resources.files("workbench.rsa").joinpath(f"prompts/{n}.txt").read_text() for n in NAMES}
    for name, text in (overrides or {}).items():
        if name not in NAMES:
            raise ValueError(f"unknown template {name!r}; templates are {NAMES}")
        try:
            used = _fields(text)
        except ValueError as e:
            raise ValueError(f"template {name!r} is not a valid format string ({e}); write literal braces as {{{{ }}}}") from None
        extra = used - FIELDS[name]
        if extra:
            raise ValueError(f"template {name!r} uses unknown field(s) {sorted(extra)}; allowed: {sorted(FIELDS[name])}")
        out[name] = text
    return out


def generate_prompt(t: Mapping[str, str], question: str, format_hint: str) -> str:
    return t["generate"].format(question=question.strip(), format_hint=format_hint).strip()


def aggregate_prompt(t: Mapping[str, str], question: str, candidates: Sequence[str], format_hint: str,
                     problem_kind: str = "problem") -> str:
    """The aggregation prompt for K >= 2 candidates, or the refinement prompt for K = 1."""
    if len(candidates) == 0:
        raise ValueError("aggregate_prompt needs at least one candidate")
    if len(candidates) == 1:
        return t["refine"].format(problem_kind=problem_kind, question=question.strip(),
                                  text=(candidates[0] or "").strip(), format_hint=format_hint).strip()
    blocks = "".join(t["candidate"].format(index=i, text=(c or "").strip()) for i, c in enumerate(candidates, 1))
    return t["aggregate"].format(problem_kind=problem_kind, question=question.strip(), candidates=blocks,
                                 format_hint=format_hint).strip()


def verify_prompt(t: Mapping[str, str], question: str, text: str, format_hint: str,
                  problem_kind: str = "problem") -> str:
    return t["verify"].format(problem_kind=problem_kind, question=question.strip(), text=(text or "").strip(),
                              format_hint=format_hint).strip()
