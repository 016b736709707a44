"""Prompt text for BFS and pairwise discovery (our wording, following the paper's query structure), the
order variables are listed in, and the structures (constrained decoding) the answers are held to.

Variable order (reconstruction, config ``variable_order``): the description files list variables in a
topological order, which a model can exploit without reading them (linking each variable to the next
two listed scores F1 0.571 on Asia). ``shuffled`` (default) lists them in a seeded random order;
``reference`` in the reference code's order (Asia, Child); ``file`` in the description file's order.
The short style's format example uses placeholder names, so it never states an edge of the graph."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from ..llm.structure import Choice, Regex, Structure, reason_then_answer, regex_escape
from ..seeding import make_rng

DATA_DIR = Path(__file__).with_name("data")

FORMAT_REFERENCE = ('Think step by step. Then, provide your final answer (variable names only) within the '
                    'tags <Answer>...</Answer>, separated by ", ".')
FORMAT_SHORT = ('Reply with the variable names only, inside the tags <Answer>...</Answer>, separated by ", " '
                '(for example <Answer>{ex}</Answer>), or <Answer>none</Answer> if there are none.')
EXAMPLE_NAMES = ("name_1", "name_2")
# placeholders of the short style's format example: never a variable, so never an edge of the graph
ORDERS = ("shuffled", "reference", "file")
PAIR_FORMAT_REFERENCE = ("Let's work this out step by step to be sure we have the right answer. Then give your "
                         "final answer within the tags <Answer>A/B/C</Answer>.")
PAIR_FORMAT_SHORT = "Reply with one letter inside the tags, for example <Answer>C</Answer>."


@dataclass
class Problem:
    """A discovery problem: the variables with their descriptions and the expert persona."""

    network: str
    expert: str
    domain: str
    variables: dict[str, str]
    reference_order: tuple[str, ...] | None = None
    """the reference code's variable order, where the description file records it"""

    @property
    def names(self) -> list[str]:
        return list(self.variables)

    def ordered(self, order: str, seed: int = 0) -> "Problem":
        """The same problem with its variables listed in ``order`` (see the module docstring)."""
        if order == "file":
            names = self.names
        elif order == "reference":
            if self.reference_order is None:
                raise ValueError(f"no reference variable order recorded for {self.network!r} (the reference code "
                                 "describes asia and child only): use variable_order='shuffled' or 'file'")
            names = list(self.reference_order)
        elif order == "shuffled":
            names = [self.names[i] for i in make_rng(seed, "variable_order", self.network).permutation(len(self.names))]
        else:
            raise ValueError(f"variable_order must be one of {ORDERS}, got {order!r}")
        return replace(self, variables={v: self.variables[v] for v in names})


def load_problem(network: str, nodes: list[str] | None = None) -> Problem:
    """Read ``data/<network>.json``; without one, fall back to bare names (only for the perfect-expert
    query-count curve, where no language model reads the prompt)."""
    path = DATA_DIR / f"{network}.json"
    if path.exists():
        d = json.loads(path.read_text())
        if nodes is not None and set(nodes) != set(d["variables"]):
            raise ValueError(f"{path.name} describes {sorted(d['variables'])}, network has {sorted(nodes)}")
        ref = d.get("reference_order")
        if ref is not None and set(ref) != set(d["variables"]):
            raise ValueError(f"{path.name}: reference_order names {sorted(ref)}, variables are {sorted(d['variables'])}")
        return Problem(network, d["expert"], d["domain"], d["variables"], tuple(ref) if ref else None)
    if nodes is None:
        raise ValueError(f"no description file for {network!r}; have: "
                         + ", ".join(sorted(p.stem for p in DATA_DIR.glob('*.json'))))
    return Problem(network, "You are a domain expert.", network, {v: v for v in nodes})


def described_problems() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.json"))


def intro(p: Problem) -> str:
    lines = [f"You are helping experts who study {p.domain}. Our goal is to build a causal graph over "
             "the following variables.", ""]
    lines += [f"{v}: {d}" for v, d in p.variables.items()]
    return "\n".join(lines) + "\n"


def bfs_format(style: str, p: Problem) -> str:
    if style == "reference":
        return FORMAT_REFERENCE
    if style == "short":
        return FORMAT_SHORT.format(ex=", ".join(EXAMPLE_NAMES))
    raise ValueError(f"prompt_style must be 'reference' or 'short', got {style!r}")


def init_message(p: Problem, style: str) -> str:
    return (intro(p) + "\nStart by identifying the variable(s) that are not affected by any other variable.\n"
            + bfs_format(style, p))


def expansion_message(p: Problem, node: str, roots: list[str], known: dict[str, list[str]],
                      style: str, corr: pd.DataFrame | None = None, with_intro: bool = True) -> str:
    s = intro(p) + "\n" if with_intro else ""
    s += "Given that " + ", ".join(roots) + " is(are) not affected by any other variable"
    rel = [(h, t) for h, t in known.items() if t]
    if rel:
        s += " and the following causal relationships:\n" + "".join(f"{h} causes {', '.join(t)}\n" for h, t in rel)
    else:
        s += ".\n"
    s += f"Select the variables that are caused by {node}.\n"
    if corr is not None:
        s += f"Additionally, the Pearson correlation coefficients between {node} and the other variables are:\n"
        s += "".join(f"{v}: {corr.loc[node, v]:.2f}\n" for v in p.names if v != node)
    return s + bfs_format(style, p)


def pair_message(p: Problem, a: str, b: str, style: str, corr: float | None = None) -> str:
    s = intro(p) + f'\nWe are interested in the causal relationship between "{a}" and "{b}".\n'
    if corr is not None:
        s += f'To help you, the Pearson correlation coefficient between "{a}" and "{b}" is {corr:.2f}.\n'
    s += ("Which cause-and-effect relationship is more likely?\n"
          f'A. "{a}" causes "{b}".\nB. "{b}" causes "{a}".\n'
          f'C. There is no causal relationship between "{a}" and "{b}".\n')
    return s + (PAIR_FORMAT_REFERENCE if style == "reference" else PAIR_FORMAT_SHORT)


def system(p: Problem) -> dict:
    return {"role": "system", "content": p.expert}


ANSWER_OPEN, ANSWER_CLOSE = "<Answer>", "</Answer>"


def names_pattern(names, allow_none: bool = True) -> str:
    """Regex of a BFS answer: ``none`` (if allowed) or a ", "-separated list of the variable names (at
    most n items)."""
    item = "(?:" + "|".join(regex_escape(n) for n in sorted(names, key=len, reverse=True)) + ")"
    items = f"{item}(?:, {item}){{0,{max(len(names) - 1, 0)}}}"
    return f"none|{items}" if allow_none else items


def bfs_structure(p: Problem, style: str, reasoning_chars: int, allow_none: bool = True) -> Structure:
    """What a BFS answer must look like under constrained decoding: the reference style reasons first
    (at most ``reasoning_chars`` characters, no ``<``), then ``<Answer>names</Answer>``; the short style
    answers at once. ``allow_none=False`` for the initialisation query (reconstruction: every DAG has a
    root, and a small model otherwise answers ``none`` at once, which ends the search after one query)."""
    pat = names_pattern(p.names, allow_none)
    if style == "reference":
        return reason_then_answer(Regex(pat), reasoning_chars, ANSWER_OPEN, ANSWER_CLOSE)
    return Regex(regex_escape(ANSWER_OPEN) + "(?:" + pat + ")" + regex_escape(ANSWER_CLOSE))


def pair_structure(style: str, reasoning_chars: int) -> Structure:
    """A pairwise answer: (reasoning, for the reference style) then ``<Answer>A|B|C</Answer>``."""
    if style == "reference":
        return reason_then_answer(Choice(("A", "B", "C")), reasoning_chars, ANSWER_OPEN, ANSWER_CLOSE)
    return Choice(tuple(f"{ANSWER_OPEN}{c}{ANSWER_CLOSE}" for c in "ABC"))
