"""Agents for the Auto-Bench loop: the LLM agent and three algorithmic baselines.

Every agent acts on a batch of episode states at once (the LLM agent sends all prompts of a round in one
``generate`` call) and returns one :class:`Action` per state: a hypothesis adjacency matrix, the next
intervention and a justification. An action with ``error`` set is malformed: the loop logs it and it
costs the round.

Baselines share one evidence model, :class:`Knowledge`: a matrix ``K`` of colour-change entries, each
1 / 0 / unknown (-1), filled from the history and closed under the setting's logical constraints; the
hypothesis is the known 1-entries (unknown -> 0, i.e. "no effect until seen"), transitively reduced for
chemistry. They differ only in the intervention they choose:
- ``random``: a uniformly random node not yet intervened on (any node once all have been);
- ``one_per_node``: nodes in index order, one per round; after n interventions its hypothesis has the
  true reachability, so it always succeeds by round n + 1 when the budget allows;
- ``greedy_info``: the node whose outcome row has the most undetermined entries, i.e. the largest
  expected information gain when undetermined entries are independent Bernoulli(p) with p the observed
  edge rate (the outcome entropy is then (#undetermined) * H(p)); ties broken at random (seeded).

One content-free baseline ignores the evidence: ``random_guess`` states a uniformly random 0/1 matrix (any
of the ``2**(n*n)`` answers the JSON schema allows, normalised like the LLM's) and intervenes on a uniformly
random node each round. It is the fair floor for the LLM: same rounds, same answer space, no reasoning.

The LLM agent (reconstruction of the answer format; the paper's prompt is not public) asks for one JSON
object ``{"hypothesis": [[0/1, ...], ...], "intervention": "<name>", "justification": "..."}``. With
``structured=True`` decoding is constrained to :func:`action_schema` (the matrix n x n of 0/1, the
intervention one of the node names, the justification at most ``justification_max_chars`` characters);
an answer valid under that schema is read *strictly*. Anything else goes to a lenient fallback
(:func:`parse_llm_action`), whose reads are labelled ``lenient`` and, under the default strict scoring, do
not count.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..llm import JsonSchema, SamplingParams
from ..seeding import derive_seed, make_rng


@dataclass
class EpisodeState:
    """What an agent sees: the task and the history of earlier rounds (never the hidden graph)."""

    episode: int
    setting: str
    names: list[str]
    round: int
    max_rounds: int
    history: list[dict]
    """earlier rounds: {"round", "intervention" (index or None), "observed" (indices or None), "malformed"}"""
    seed: int
    hops: int = 1

    @property
    def n(self) -> int:
        return len(self.names)


@dataclass
class Action:
    hypothesis: np.ndarray | None
    intervention: int | None
    justification: str = ""
    raw: str | None = None
    error: str | None = None
    """set when no hypothesis or no intervention could be read (an unparsed round)"""
    parse: dict = field(default_factory=dict)
    mode: str = "strict"
    """how the answer was read: "strict" (a JSON object valid under :func:`action_schema`), "lenient" (only
    a fallback read it: loose JSON, matrix rows, edge lines, "Intervention: ..."), "unparsed" (``error`` set).
    Programmatic agents' actions are strict."""
    truncated: bool = False
    """the completion hit ``max_tokens`` (``finish_reason == "length"``)"""


class Agent(Protocol):
    name: str

    def act(self, states: list[EpisodeState]) -> list[Action]: ...


# ------------------------------------------------------------------------------- evidence model
class Knowledge:
    """Colour-change entries known from the history: ``K`` is ``(n, n)`` with 1, 0 or -1 (unknown)."""

    def __init__(self, state: EpisodeState):
        n = state.n
        self.setting = state.setting
        k = -np.ones((n, n), dtype=int)
        np.fill_diagonal(k, 0)
        self.done: list[int] = []
        for h in state.history:
            if h.get("intervention") is None or h.get("observed") is None:
                continue
            i = h["intervention"]
            row = np.zeros(n, dtype=int)
            row[list(h["observed"])] = 1
            row[i] = 0
            k[i] = row
            if i not in self.done:
                self.done.append(i)
            if self.setting == "social":
                k[:, i] = row  # the change relation is symmetric for an undirected graph
        self.K = self._close(k) if self.setting == "chemistry" else k

    @staticmethod
    def _close(k: np.ndarray) -> np.ndarray:
        """Chemistry constraints (C is a strict partial order): transitivity of 1s; if a->b then b->a
        is 0 and every c with a-/->c has b-/->c (descendants of b are descendants of a)."""
        k = k.copy()
        n = k.shape[0]
        for _ in range(n + 1):
            old = k.copy()
            ones = (k == 1).astype(int)
            k[((ones @ ones) > 0) & (k == -1)] = 1
            for a in range(n):
                for b in np.nonzero(k[a] == 1)[0]:
                    if k[b, a] == -1:
                        k[b, a] = 0
                    zero_a = (k[a] == 0) & (np.arange(n) != b)
                    k[b, zero_a & (k[b] == -1)] = 0
            if np.array_equal(k, old):
                break
        return k

    def hypothesis(self) -> np.ndarray:
        c = (self.K == 1).astype(int)
        if self.setting == "chemistry":  # minimal DAG with this reachability: its transitive reduction
            red = c.copy()
            for i, j in zip(*np.nonzero(c)):
                if np.any(c[i] & c[:, j]):  # some k with i->k->j
                    red[i, j] = 0
            return red
        return c

    def undetermined(self) -> np.ndarray:
        """``(n,)`` number of unknown entries in each node's outcome row."""
        return (self.K == -1).sum(axis=1)

    def evidence_text(self, names: list[str], history: list[dict]) -> str:
        parts = []
        for h in history:
            if h.get("observed") is not None:
                ch = ", ".join(names[j] for j in h["observed"]) or "nothing"
                parts.append(f"intervened on {names[h['intervention']]} in round {h['round']}: {ch} changed")
        return "; ".join(parts) if parts else "no interventions yet; assuming no effects"


class _Baseline:
    name = "baseline"

    def act(self, states: list[EpisodeState]) -> list[Action]:
        out = []
        for s in states:
            if s.setting == "social" and s.hops != 1:
                # with hops > 1 the observations give a distance-threshold relation, not the friendship
                # graph; turning it back into a graph is not implemented for the baselines
                raise ValueError("the algorithmic baselines support the social setting with hops=1 only")
            kn = Knowledge(s)
            i = int(self.choose(s, kn))
            just = f"Evidence so far: {kn.evidence_text(s.names, s.history)}. Next probe: {s.names[i]}."
            out.append(Action(kn.hypothesis(), i, just))
        return out

    def choose(self, s: EpisodeState, kn: Knowledge) -> int:
        raise NotImplementedError


class RandomAgent(_Baseline):
    name = "random"

    def choose(self, s, kn):
        rng = make_rng(s.seed, "random-agent", s.episode, s.round)
        todo = [i for i in range(s.n) if i not in kn.done]
        return int(rng.choice(todo if todo else range(s.n)))


class OnePerNodeAgent(_Baseline):
    name = "one_per_node"

    def choose(self, s, kn):
        todo = [i for i in range(s.n) if i not in kn.done]
        return todo[0] if todo else 0


class GreedyInfoAgent(_Baseline):
    name = "greedy_info"

    def choose(self, s, kn):
        u = kn.undetermined()
        best = np.flatnonzero(u == u.max())
        rng = make_rng(s.seed, "greedy-agent", s.episode, s.round)
        return int(rng.choice(best))


BASELINES = {"random": RandomAgent, "one_per_node": OnePerNodeAgent, "greedy_info": GreedyInfoAgent}



class RandomGuessAgent:
    """Content-free floor: a uniformly random 0/1 hypothesis matrix and a uniformly random intervention."""

    name = "random_guess"

    def act(self, states: list[EpisodeState]) -> list[Action]:
        out = []
        for s in states:
            rng = make_rng(s.seed, "random-guess", s.episode, s.round)
            hyp = rng.integers(0, 2, size=(s.n, s.n))
            out.append(Action(hyp, int(rng.integers(s.n)), ""))
        return out


BASELINES = {"random": RandomAgent, "one_per_node": OnePerNodeAgent, "greedy_info": GreedyInfoAgent,
             "random_guess": RandomGuessAgent}
EVIDENCE_BASELINES = ("random", "one_per_node", "greedy_info")
"""the baselines that build their hypothesis from the evidence (and write a justification)"""


# ----------------------------------------------------------------------------------- LLM agent
SETTING_TEXT = {
    "chemistry": ("You are a chemist studying how {n} molecules ({names}) influence each other. A hidden "
                  "directed causal graph links them. When you intervene on one molecule, every molecule "
                  "downstream of it (directly or through others) changes colour."),
    "social": ("You are a sociologist studying friendships between {n} people ({names}). A hidden undirected "
               "graph says who is friends with whom. When you tell one person a piece of news, exactly "
               "their direct friends change their opinion."),
}


def action_schema(names: list[str], justification_max_chars: int = 100) -> dict:
    """The JSON schema of one round's answer: ``hypothesis`` an ``n x n`` matrix of 0/1, ``intervention``
    one of ``names``, ``justification`` a string of at most ``justification_max_chars`` characters (the
    bound keeps the answer inside the token budget). Keys in this (alphabetical) order.

    >>> s = action_schema(["M1", "M2"], 40)
    >>> s["properties"]["intervention"]["enum"], s["properties"]["hypothesis"]["minItems"]
    (['M1', 'M2'], 2)
    """
    n = len(names)
    if n < 2:
        raise ValueError(f"need at least 2 node names, got {names!r}")
    if justification_max_chars < 1:
        raise ValueError(f"justification_max_chars must be >= 1, got {justification_max_chars}")
    row = {"type": "array", "items": {"type": "integer", "enum": [0, 1]}, "minItems": n, "maxItems": n}
    return {"type": "object",
            "properties": {"hypothesis": {"type": "array", "items": row, "minItems": n, "maxItems": n},
                           "intervention": {"type": "string", "enum": list(names)},
                           "justification": {"type": "string", "maxLength": int(justification_max_chars)}},
            "required": ["hypothesis", "intervention", "justification"], "additionalProperties": False}


def _instructions(s: EpisodeState) -> list[str]:
    names = ", ".join(s.names)
    rel = "directly affects" if s.setting == "chemistry" else "is friends with"
    item = "molecule" if s.setting == "chemistry" else "person"
    return [SETTING_TEXT[s.setting].format(n=s.n, names=names),
            f"Your goal is to find the graph with as few interventions as possible. Round {s.round} of {s.max_rounds}.",
            f'Answer with one JSON object with three keys. "hypothesis": your adjacency matrix, a list of {s.n} '
            f"rows of {s.n} numbers 0 or 1 in the order {names} (row i, column j is 1 if the i-th {item} {rel} "
            f'the j-th, else 0). "intervention": the next {item} to intervene on, one of {names}. '
            '"justification": one short sentence explaining your hypothesis from the history.']


def template_text(s: EpisodeState) -> str:
    """The prompt without its history lines: what a justification must not merely copy."""
    return "\n".join(_instructions(s))


def llm_prompt(s: EpisodeState) -> str:
    names = s.names
    head, goal, ask = _instructions(s)
    lines = [head, goal, "History:"]
    if not s.history:
        lines.append("(no interventions yet)")
    for h in s.history:
        if h.get("observed") is None:
            lines.append(f"Round {h['round']}: your answer could not be used.")
        else:
            ch = ", ".join(names[j] for j in h["observed"]) or "nothing"
            lines.append(f"Round {h['round']}: intervened on {names[h['intervention']]}; changed: {ch}.")
    lines.append(ask)
    return "\n".join(lines)


def _strict(text: str, names: list[str], structure: JsonSchema):
    """(hypothesis, intervention, justification) of an answer valid under the schema, else None."""
    if not structure.matches(text):
        return None
    d = json.loads(text)
    return np.array(d["hypothesis"], dtype=int), names.index(d["intervention"]), d["justification"]


_ROW = re.compile(r"^[\s\[\(|]*([01](?:[\s,;|]+[01])*)[\s\]\)|,]*$")
_BRACKET_ROW = re.compile(r"\[\s*([01](?:\s*,\s*[01])*)\s*\]")


def _matrix_rows(text: str, n: int) -> list[list[int]] | None:
    """n consecutive rows of n 0/1 numbers: one per line, or bracketed ``[0, 1, 0]`` rows on one line."""
    rows: list[list[int]] = []
    for ln in text.splitlines():
        m = _ROW.match(ln)
        vals = [int(v) for v in re.split(r"[\s,;|]+", m.group(1))] if m else None
        if vals is not None and len(vals) == n:
            rows.append(vals)
            if len(rows) == n:
                return rows
        elif rows:
            rows = []  # rows must be consecutive
    rows = []
    last_end = None
    for m in _BRACKET_ROW.finditer(text):
        vals = [int(v) for v in m.group(1).split(",")]
        gap = text[last_end:m.start()] if last_end is not None else ""
        if len(vals) != n or (rows and not re.fullmatch(r"[\s,]*", gap)):
            rows = []
        if len(vals) == n:
            rows.append(vals)
            if len(rows) == n:
                return rows
        last_end = m.end()
    return None


def _name_pattern(names: list[str]) -> str:
    return "|".join(re.escape(x) for x in sorted(names, key=len, reverse=True))


def parse_intervention(text: str, names: list[str]) -> int | None:
    """The node an answer says to intervene on, leniently: ``Intervention: M2``, ``"intervention":
    "M2"``, ``Intervention: molecule M2``, ``Intervention: [M2]``, ``intervene on person Bob``, or a line
    holding only a (bracketed) name such as ``[M2]``; names are matched case-insensitively and whole
    (``M1`` is not read out of ``M12``).

    >>> [parse_intervention(t, ["M1", "M2", "M3"]) for t in ("Intervention: molecule M2", "[M2]",
    ...  '"intervention": "m3"', "I will intervene on molecule M1.", "Intervention: M4")]
    [1, 1, 2, 0, None]
    """
    text = text or ""
    pat = _name_pattern(names)
    low = [x.lower() for x in names]
    name = rf"(?<![A-Za-z0-9])({pat})(?![A-Za-z0-9])"
    sep = r"[\s\"'*\[(<`]"
    # filler words ("molecule", "on", ...) each followed by separators: one separator run between two
    # tokens, never two adjacent whitespace quantifiers (which backtrack on long runs of spaces)
    filler = rf"{sep}*(?:(?:on|the|molecule|person|node){sep}+)*"
    forms = [rf"intervention[\"'*]{{0,3}}\s*[:=]{filler}{name}", rf"interven\w*{sep}+(?:(?:on|the|molecule|person|node){sep}+)*{name}"]
    for f in forms:
        m = re.search(f, text, re.I)
        if m:
            return low.index(m.group(1).lower())
    # a name alone on a line, bare or bracketed / quoted, e.g. the line "[M2]"
    for ln in text.splitlines():
        m = re.fullmatch(rf"[ \t\"'*\[(<`]*{name}[ \t\"'*\])>`.]*", ln, re.I)
        if m:
            return low.index(m.group(1).lower())
    return None


def _lenient_json(text: str, names: list[str]):
    """Loose JSON: the first JSON object that starts at a ``{`` (trailing text ignored), else None."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            d, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(d, dict):
            return d
    return None


def parse_llm_action(text: str, names: list[str], setting: str, structure: JsonSchema | None = None,
                     finish_reason: str = "stop") -> Action:
    """Read one answer. Strict: the completion is complete (``finish_reason != "length"``) and a JSON
    object valid under ``structure`` (default :func:`action_schema` of ``names``). Otherwise the lenient
    fallback: loose JSON fields, an n x n 0/1 matrix (one row per line or bracketed rows), ``A -> B`` /
    ``A - B`` edge lines, the intervention forms of :func:`parse_intervention`, ``Justification: ...``.
    ``mode`` says which read it; without a hypothesis or an intervention it is ``unparsed`` (``error`` set)."""
    n = len(names)
    text = text or ""
    structure = structure if structure is not None else JsonSchema(action_schema(names))
    truncated = finish_reason == "length"
    if not truncated:
        got = _strict(text, names, structure)
        if got is not None:
            hyp, inter, just = got
            return Action(hyp, inter, just, raw=text, parse={"hypothesis": "json", "intervention": "json"},
                          mode="strict", truncated=False)
    how: dict = {}
    hyp, inter, just = None, None, None
    d = _lenient_json(text, names)
    if d is not None:
        try:
            h = np.array(d.get("hypothesis"), dtype=int)
            if h.shape == (n, n) and np.isin(h, (0, 1)).all():
                hyp, how["hypothesis"] = h, "loose json"
        except (TypeError, ValueError):
            pass
        if isinstance(d.get("intervention"), str):
            inter = parse_intervention(f"intervention: {d['intervention']}", names)
        if isinstance(d.get("justification"), str):
            just = d["justification"]
    if hyp is None:
        rows = _matrix_rows(text, n)
        if rows is not None:
            hyp, how["hypothesis"] = np.array(rows, dtype=int), "matrix"
    if hyp is None:
        pat = _name_pattern(names)
        arrow = r"->|→|causes|affects" if setting == "chemistry" else r"->|--|-|—|is friends with|and"
        edges = re.findall(rf"\b({pat})\b\s*(?:{arrow})\s*\b({pat})\b", text)
        if edges:
            hyp = np.zeros((n, n), dtype=int)
            for a, b in edges:
                hyp[names.index(a), names.index(b)] = 1
            how["hypothesis"] = "edges"
    if inter is None:
        inter = parse_intervention(text, names)
    how["intervention"] = "found" if inter is not None else "missing"
    if just is None:
        j = re.search(r"justification\W{0,3}\s*[:=]\s*(.+)", text, re.I | re.S)
        just = j.group(1).strip()[:500] if j else ""
    err = []
    if hyp is None:
        err.append("no hypothesis matrix")
    if inter is None:
        err.append("no valid intervention")
    return Action(hyp, inter, just, raw=text, error="; ".join(err) or None, parse=how,
                  mode="unparsed" if err else "lenient", truncated=truncated)


class LLMAgent:
    """Prompts a language model once per episode and round (all active episodes in one batched call).

    ``structured``: constrain decoding to :func:`action_schema` (needs a backend with structured outputs:
    the embedded model, transformers, vLLM, a vLLM / json_schema-capable server); off, the model writes
    free text and only answers that happen to be schema-valid JSON are read strictly."""

    name = "llm"

    def __init__(self, llm, params: SamplingParams, structured: bool = True, justification_max_chars: int = 100):
        self.llm, self.params, self.structured = llm, params, structured
        self.justification_max_chars = justification_max_chars
        self.queries = self.prompt_tokens = self.completion_tokens = 0

    def schema(self, names: list[str]) -> JsonSchema:
        return JsonSchema(action_schema(names, self.justification_max_chars))

    def act(self, states: list[EpisodeState]) -> list[Action]:
        out: list[Action | None] = [None] * len(states)
        groups: dict[tuple, list[int]] = {}  # one generate call per node-name list (one schema each)
        for k, s in enumerate(states):
            groups.setdefault(tuple(s.names), []).append(k)
        for names, idx in groups.items():
            schema = self.schema(list(names))
            params = self.params.replace(structure=schema) if self.structured else self.params
            prompts = [llm_prompt(states[k]) for k in idx]
            seeds = [derive_seed(states[k].seed, "llm-agent", states[k].setting, states[k].episode, states[k].round)
                     for k in idx]
            comps = sorted(self.llm.generate(prompts, params, seeds=seeds), key=lambda c: c.index)
            self.queries += len(prompts)
            self.prompt_tokens += sum(c.prompt_tokens for c in comps)
            self.completion_tokens += sum(c.completion_tokens for c in comps)
            for k, c in zip(idx, comps):
                s = states[k]
                out[k] = parse_llm_action(c.text, s.names, s.setting, schema, c.finish_reason)
        return out  # type: ignore[return-value]
