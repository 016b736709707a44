"""Prompt text for BFS and pairwise discovery (our wording, following the paper's query structure)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DATA_DIR = Path(__file__).with_name("data")

FORMAT_REFERENCE = ('Think step by step. Then, provide your final answer (variable names only) within the '
                    'tags <Answer>...</Answer>, separated by ", ".')
FORMAT_SHORT = ('Reply with the variable names only, inside the tags <Answer>...</Answer>, separated by ", " '
                '(for example <Answer>{ex}</Answer>), or <Answer></Answer> if there are none.')
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

    @property
    def names(self) -> list[str]:
        return list(self.variables)


def load_problem(network: str, nodes: list[str] | None = None) -> Problem:
    """Read ``data/<network>.json``; without one, fall back to bare names (only for the perfect-expert
    query-count curve, where no language model reads the prompt)."""
    path = DATA_DIR / f"{network}.json"
    if path.exists():
        d = json.loads(path.read_text())
        if nodes is not None and set(nodes) != set(d["variables"]):
            raise ValueError(f"{path.name} describes {sorted(d['variables'])}, network has {sorted(nodes)}")
        return Problem(network, d["expert"], d["domain"], d["variables"])
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
        return FORMAT_SHORT.format(ex=", ".join(p.names[:2]))
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
