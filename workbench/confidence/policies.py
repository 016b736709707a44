"""Elicitation and execution policies, confidence parsing and aggregation of sampled answers.

Reconstruction: the paper (arXiv 2503.10628) has no public code and its prompts are not public; these
prompts follow its descriptions (PAPERS.md) and Xiong et al. 2024, whose design it mirrors.

Elicitation policies (how one answer and its confidence are asked for):
- ``vanilla``: the question, then "give your confidence".
- ``self_intervention``: the agent first reflects on its previous answer/action and their outcome.
- ``cot`` (inductive): reason from the specific things seen, step by step, then answer.
- ``plan_solve`` (deductive): first a plan, then carry it out, then answer.
- ``top_k`` (abductive): K candidate answers, each with the probability that it is right; the top
  candidate is the answer and its probability the confidence.

Execution policies (several prompts/samples per stage, aggregated into one answer + confidence):
- ``action_sampling``: K samples of the same action prompt (different seeds).
- ``scenario_reinterpretation``: K perception prompts, each with a different focus cue.
- ``hypothetical``: K action prompts, each opening with a counterfactual ("suppose ...").
Aggregation (Xiong et al.): ``consistency`` = the majority answer, confidence = share of samples that
agree with it; ``avg_conf`` = for each distinct answer, the sum of the stated confidences of samples
giving it over the sum of all samples' stated confidences; the answer with the largest share wins.
Every sample counts in the denominator (reconstruction; Xiong et al. parse every sample): a sample whose
answer cannot be read is a vote for no answer, so 1 readable of 3 gives consistency 1/3, not 1. For
avg_conf an unreadable sample weighs its stated confidence when that is readable, else the mean of the
readable confidences of the K samples (so equal confidences give consistency's shares).

Structured outputs (``structures``, reconstruction): with ``Config.structured`` on, each completion is
constrained to the format the prompt asks for: optional bounded reasoning on one line (``reasoning_chars``;
the shape of :func:`workbench.llm.reason_then_answer`, as one ``Regex``), then ``Answer: <one of the options>`` and
``Confidence: <0-100>%`` (Top-K: ``G1: <option> P1: <0-100>%`` lines). The strict rule (:func:`read_strict`)
reads only that format at the end of the text: an answer among the options and an integer 0-100.
The lenient rule (:func:`read_lenient`) first removes what the completion copied from the prompt (menu and
template lines, ``<...>`` placeholders), then reads the older free-text fields. Headline metrics use
the strict rule.
"""
from __future__ import annotations

import re
from collections import Counter

from ..llm import Regex
from ..llm.structure import regex_escape

__all__ = ["ELICITATION", "EXECUTION", "EXECUTION_STAGE", "REASONING_POLICIES", "parse_confidence", "elicit_prompt",
           "execution_variants", "aggregate", "parse_top_k", "strip_echo", "stage_structure", "read_strict",
           "read_lenient", "CONF_REGEX"]

ELICITATION = ("vanilla", "self_intervention", "cot", "plan_solve", "top_k")
EXECUTION = ("none", "action_sampling", "scenario_reinterpretation", "hypothetical")
EXECUTION_STAGE = {"action_sampling": "action", "scenario_reinterpretation": "perception",
                   "hypothetical": "action"}
REASONING_POLICIES = ("self_intervention", "cot", "plan_solve")
"""policies whose prompt asks the model to reason before it answers (``Config.reasoning_chars``)"""

_FORMAT = "End with two lines:\nAnswer: <your answer>\nConfidence: <0-100>%"

_INSTRUCTION = {
    "vanilla": "Answer the question. How confident are you in your answer?\n" + _FORMAT,
    "self_intervention": ("Before answering, reflect on your previous answer and action and whether they "
                          "worked; correct yourself if needed. Then answer and say how confident you are.\n"
                          + _FORMAT),
    "cot": ("Think step by step: list the specific things you see that matter, then infer the answer. "
            "Then say how confident you are.\n" + _FORMAT),
    "plan_solve": ("First devise a short plan to answer the question. Then carry out the plan step by step "
                   "and answer. Then say how confident you are.\n" + _FORMAT),
    "top_k": ("Give your {k} best guesses and the probability that each one is correct (0-100%), "
              "most likely first, one per line:\nG1: <guess> P1: <probability>%\nG2: <guess> P2: "
              "<probability>%"),
}

FOCUS_CUES = ("Focus on the tiles closest to you.", "Scan the grid row by row from the top.",
              "Focus on the left and right edges of the view.", "Scan the grid column by column.",
              "Focus on the rare things in the view.")
HYPOTHETICALS = ("Suppose your first idea is wrong: what else could work?",
                 "Suppose a zombie appears next to you after this action.",
                 "Suppose the target is farther away than it looks.",
                 "Suppose you had to explain this choice to another player.",
                 "Suppose this action fails: what would you do instead?")


def elicit_prompt(policy: str, scene: str, question: str, *, reflection: str = "", k: int = 2) -> str:
    """The full prompt of an elicitation policy.

    >>> p = elicit_prompt("top_k", "S", "Q?", k=3)
    >>> "3 best guesses" in p and "G1:" in p
    True
    """
    if policy not in ELICITATION:
        raise ValueError(f"unknown elicitation policy {policy!r}; known: {ELICITATION}")
    parts = [scene, ""]
    if policy == "self_intervention":
        parts += ["Your previous step: " + (reflection or "none yet (this is the first step)."), ""]
    parts += ["Question: " + question, _INSTRUCTION[policy].format(k=k)]
    return "\n".join(parts)


def execution_variants(policy: str, prompt: str, k: int) -> list[str]:
    """The K prompts an execution policy sends for one stage (``none`` -> the prompt once).

    >>> len(execution_variants("action_sampling", "P", 3)), execution_variants("none", "P", 3)
    (3, ['P'])
    """
    if policy == "none":
        return [prompt]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if policy == "action_sampling":
        return [prompt] * k
    if policy == "scenario_reinterpretation":
        return [FOCUS_CUES[i % len(FOCUS_CUES)] + "\n" + prompt for i in range(k)]
    if policy == "hypothetical":
        return [HYPOTHETICALS[i % len(HYPOTHETICALS)] + "\n" + prompt for i in range(k)]
    raise ValueError(f"unknown execution policy {policy!r}; known: {EXECUTION}")


# ------------------------------------------------------------------------------- confidence parsing
_WORDS = [  # longest phrases first; values are our reading of verbal confidence (reconstruction)
    ("not confident at all", 0.05), ("not at all confident", 0.05), ("completely sure", 0.98),
    ("absolutely sure", 0.98), ("extremely confident", 0.95), ("very confident", 0.9),
    ("highly confident", 0.9), ("very sure", 0.9), ("fairly confident", 0.7), ("quite confident", 0.75),
    ("somewhat confident", 0.6), ("moderately confident", 0.6), ("not very confident", 0.3),
    ("not confident", 0.2), ("not sure", 0.3), ("unsure", 0.3), ("uncertain", 0.3),
    ("low confidence", 0.2), ("medium confidence", 0.5), ("high confidence", 0.85),
    ("confident", 0.8), ("certain", 0.95), ("sure", 0.8), ("low", 0.2), ("medium", 0.5), ("high", 0.85),
]
_NUM = r"(\d+(?:\.\d+)?)"


# (?<!\d): a match never starts inside a run of digits. The leftmost match of these patterns starts
# where its run of digits starts anyway (nothing after the number looks back), so the result is the
# same, but without it every digit of a long run was tried as a start (quadratic time).
_PERCENT = re.compile(r"(?<!\d)" + _NUM + r"\s*%")
_FRACTION = re.compile(r"(?<!\d)" + _NUM + r"\s*(?:/|out of)\s*" + _NUM)


def _number_conf(s: str) -> float | None:
    m = _PERCENT.search(s)
    if m:
        v = float(m.group(1)) / 100
        return v if 0 <= v <= 1 else None
    m = _FRACTION.search(s)
    if m:
        a, b = float(m.group(1)), float(m.group(2))
        return a / b if b > 0 and 0 <= a <= b else None
    m = re.search(r"(?<![\w.])" + _NUM, s)  # a number glued to a word (G1, P2) is a label
    if m:
        v = float(m.group(1))
        if 0 <= v <= 1:
            return v
        if 1 < v <= 100:
            return v / 100
    return None


_PLACEHOLDER = re.compile(r"<[^<>\n]{0,40}>")
_RANGE = re.compile(r"(?<![\d.])\d+(?:\.\d+)?\s*(?:-|to|–)\s*\d+(?:\.\d+)?\s*%?")


def parse_confidence(text: str) -> float | None:
    """A stated confidence in [0, 1]: percent, fraction, 0-1 or 0-100 number, or words. None if absent.

    The 'Confidence:' field is read first, then the last line mentioning confidence, then words.

    A copied template (``<0-100>``, any ``<...>`` placeholder) or range (``0-100%``) is no confidence.

    >>> [parse_confidence(t) for t in ["Confidence: 85%", "confidence 0.7", "confidence about 3/4", "Confidence: 90",
    ...  "I am very confident", "no idea", "Confidence: <0-100>%", "Confidence: 0-100%"]]
    [0.85, 0.7, 0.75, 0.9, 0.9, None, None, None]
    """
    if not text:
        return None
    low = _PLACEHOLDER.sub(" ", text.lower())  # a copied template ("Confidence: <0-100>%") states nothing
    low = _RANGE.sub(" ", low)  # nor does a copied range ("0-100%", "0 to 100")
    fields = re.findall(r"confiden\w*\s*(?:level|score)?\s*[:=is]*\s*([^\n]*)", low)
    for f in reversed(fields):
        v = _number_conf(f)
        if v is not None:
            return v
        for w, val in _WORDS:
            if re.search(rf"\b{w}\b", f):
                return val
    for line in reversed(low.splitlines()):
        if "confiden" in line or "sure" in line or "%" in line:
            v = _number_conf(line)
            if v is not None:
                return v
    for w, val in _WORDS[:-3]:  # bare low/medium/high only count inside a confidence field
        if re.search(rf"\b{w}\b", low):
            return val
    return None


def parse_top_k(text: str) -> list[tuple[str, float | None]]:
    """Top-K guesses as (guess text, probability or None), in the order given.

    >>> parse_top_k("G1: yes P1: 70%\\nG2: no P2: 30%")
    [('yes', 0.7), ('no', 0.3)]
    """
    out = []
    for g1, g2 in _top_k_groups(text or ""):
        guess = g1.strip().rstrip(",;")
        prob = _number_conf(g2) if g2 else None
        if guess:
            out.append((guess, prob))
    return out


_GUESS_HEAD = re.compile(r"g\d\s*[:.)]", re.I)
_PROB_HEAD = re.compile(r"p\d\s*[:=]", re.I)
_WS = re.compile(r"\s*")


def _top_k_groups(text: str) -> list[tuple[str, str | None]]:
    """The groups of ``re.finditer(r"g\\d\\s*[:.)]\\s*(.*?)\\s*(?:p\\d\\s*[:=]\\s*([^\\n]*?))?\\s*(?=\\n|g\\d\\s*[:.)]|$)",
    text, re.I)``, found by scanning in linear time (the regex tried every split of the whitespace after
    each extension of its lazy groups: cubic in a run of spaces).

    Written by hand because Python's ``re`` (before 3.11) has no atomic groups. For a lazy group ending
    at x, the regex's next steps are: the whitespace run from x ends at a; a "P1:" there starts the
    probability; else the match ends at a if a guess head "G2:" or the end of the text is there; else
    at the last newline of that run. Inside a run of whitespace that answer does not change, so runs
    are skipped.
    """
    n = len(text)

    def first_end(x: int, allow_prob: bool):  # (x, prob head match or None, match end)
        while True:
            a = _WS.match(text, x).end()
            if allow_prob:
                pm = _PROB_HEAD.match(text, a)
                if pm:
                    return x, pm, -1
            if a == n or _GUESS_HEAD.match(text, a):
                return x, None, a
            y = text.rfind("\n", x, a)
            if y >= 0:
                return x, None, y
            x = a if a > x else x + 1

    out, pos = [], 0
    while True:
        h = _GUESS_HEAD.search(text, pos)
        if h is None:
            return out
        g = _WS.match(text, h.end()).end()
        x, pm, end = first_end(g, True)
        prob = None
        if pm is not None:
            z0 = _WS.match(text, pm.end()).end()
            z, _, end = first_end(z0, False)
            prob = text[z0:z]
        out.append((text[g:x], prob))
        pos = end


def aggregate(answers: list[str | None], confs: list[float | None], method: str = "consistency") -> dict:
    """Aggregate K sampled (answer, confidence) pairs into one (Xiong et al.); every sample counts in the
    denominator, an unreadable one (answer None) as a vote for no answer.

    >>> aggregate(["a", "a", "b", None], [0.9, 0.5, 0.8, 0.4], "consistency")["conf"]
    0.5
    >>> r = aggregate(["a", "a", "b"], [0.9, 0.5, 0.6], "avg_conf"); r["answer"], round(r["conf"], 3)
    ('a', 0.7)
    >>> aggregate(["a", None, None], [0.9, None, None])["conf"]  # 1 readable of 3
    0.3333333333333333
    """
    if method not in ("consistency", "avg_conf"):
        raise ValueError(f"aggregation must be 'consistency' or 'avg_conf', got {method!r}")
    if len(answers) != len(confs):
        raise ValueError(f"aggregate needs one confidence per answer, got {len(answers)} answers and "
                         f"{len(confs)} confidences (use None for an unreadable one)")
    k = len(answers)
    n_unread = sum(a is None for a in answers)
    readable = [a for a in answers if a is not None]
    if not readable:
        return {"answer": None, "conf": None, "n_samples": k, "n_unreadable": n_unread}

    def first(a):  # ties: the answer given first
        return answers.index(a)

    if method == "consistency":
        counts = Counter(readable)
        ans = max(counts, key=lambda a: (counts[a], -first(a)))
        return {"answer": ans, "conf": counts[ans] / k, "n_samples": k, "n_unreadable": n_unread}
    known = [c for c in confs if c is not None]
    fill = sum(known) / len(known) if known else 1.0  # an unreadable confidence weighs the samples' mean
    w = [c if c is not None else fill for c in confs]
    total = sum(w)
    share: dict[str, float] = {}
    for a, wi in zip(answers, w):
        if a is not None:
            share[a] = share.get(a, 0.0) + (wi / total if total > 0 else 1.0 / k)
    ans = max(share, key=lambda a: (share[a], -first(a)))
    return {"answer": ans, "conf": share[ans], "n_samples": k, "n_unreadable": n_unread}


# ------------------------------------------------------------------ structured format, strict and lenient reads
CONF_REGEX = "(?:100|[1-9]?[0-9])"
"""an integer 0-100 without leading zeros (the stated confidence, in percent)"""


def _options_regex(options) -> str:
    """An alternation of literal options (a tuple of strings) or a regex (a str) as given."""
    if isinstance(options, str):
        return options
    opts = sorted(options, key=len, reverse=True)  # longest first: no option is read as a prefix of another
    if not opts:
        raise ValueError("an answer needs at least one option")
    return "(?:" + "|".join(regex_escape(o) for o in opts) + ")"


def _answer_body(options, top_k: int | None) -> tuple[str, str]:
    """(first literal, rest) of the answer format as regexes: the first literal is the tag that ends the
    free reasoning (``\\nAnswer: `` / ``\\nG1: ``)."""
    o = _options_regex(options)
    if top_k:
        rest = f"{o} P1: {CONF_REGEX}%" + "".join(f"\\nG{i}: {o} P{i}: {CONF_REGEX}%" for i in range(2, top_k + 1))
        return "G1: ", rest
    return "Answer: ", f"{o}\\nConfidence: {CONF_REGEX}%"


def stage_structure(options, reasoning_chars: int = 0, top_k: int | None = None):
    """The structure one completion is constrained to: up to ``reasoning_chars`` characters of reasoning on
    one line (0: none), then ``Answer: <option>`` + ``Confidence: <0-100>%`` (or, with ``top_k``, the K lines
    ``Gi: <option> Pi: <0-100>%``). ``options``: the literal answers (tuple) or a regex (str).

    >>> s = stage_structure(("yes", "no"), 40)
    >>> s.matches("The water is near.\\nAnswer: yes\\nConfidence: 80%"), s.matches("Answer: maybe\\nConfidence: 80%")
    (True, False)
    >>> stage_structure(("up", "down"), 0, top_k=2).matches("G1: up P1: 70%\\nG2: down P2: 30%")
    True
    """
    if not isinstance(reasoning_chars, int) or reasoning_chars < 0:
        raise ValueError(f"reasoning_chars must be an int >= 0, got {reasoning_chars!r}")
    head, rest = _answer_body(options, top_k)
    if reasoning_chars == 0:
        return Regex(regex_escape(head) + rest)
    # reason_then_answer's shape with the reasoning optional (a model may answer at once), so written as
    # one Regex: ReasonThenAnswer always needs its opening tag, here "\nAnswer: ", after the reasoning
    return Regex(f"(?:[^\\n]{{0,{reasoning_chars}}}\\n)?" + regex_escape(head) + rest)


def read_strict(text: str, options, top_k: int | None = None) -> tuple[str | None, float | None]:
    """(answer, confidence in [0, 1]) by the strict rule: the text ends with the asked format exactly
    (``Answer: <option>`` then ``Confidence: <0-100>%``; Top-K: its K lines, read from ``G1``/``P1``),
    trailing whitespace allowed. Anything else is (None, None): unreadable, never an answer or 0.

    >>> read_strict("I see water.\\nAnswer: yes\\nConfidence: 85%", ("yes", "no"))
    ('yes', 0.85)
    >>> read_strict("Answer: <your answer>\\nConfidence: <0-100>%", ("yes", "no"))
    (None, None)
    """
    o = _options_regex(options)
    head, rest = _answer_body(options, top_k)
    first = f"({o}) P1: ({CONF_REGEX})%" if top_k else f"({o})\\nConfidence: ({CONF_REGEX})%"
    pat = re.escape(head) + first + (rest[rest.index("%") + 1:] if top_k else "") + r"[ \t\r\n]*\Z"
    m = re.search(r"(?:^|\n)" + pat, text or "")
    if not m:
        return None, None
    return m.group(1), int(m.group(2)) / 100


def strip_echo(text: str, prompt: str) -> str:
    """``text`` without what it copied from ``prompt``: lines equal (stripped) to a prompt line, such as menu
    items and the answer template, and ``<...>`` placeholders.

    >>> strip_echo("1. move toward tree\\n2. explore\\nAnswer: <your answer>\\nI pick explore", "Skills:\\n1. move toward tree\\n2. explore\\nAnswer: <your answer>")
    'I pick explore'
    """
    lines = {ln.strip().lower() for ln in (prompt or "").splitlines() if len(ln.strip()) >= 3}
    kept = [ln for ln in (text or "").splitlines() if ln.strip().lower() not in lines]
    return _PLACEHOLDER.sub(" ", "\n".join(kept)).strip()
