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
Samples whose answer (or, for avg_conf, confidence) cannot be parsed are left out and counted.
"""
from __future__ import annotations

import re
from collections import Counter

__all__ = ["ELICITATION", "EXECUTION", "EXECUTION_STAGE", "parse_confidence", "elicit_prompt",
           "execution_variants", "aggregate", "parse_top_k"]

ELICITATION = ("vanilla", "self_intervention", "cot", "plan_solve", "top_k")
EXECUTION = ("none", "action_sampling", "scenario_reinterpretation", "hypothetical")
EXECUTION_STAGE = {"action_sampling": "action", "scenario_reinterpretation": "perception",
                   "hypothetical": "action"}

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
    m = re.search(r"(?<![\d.])" + _NUM, s)
    if m:
        v = float(m.group(1))
        if 0 <= v <= 1:
            return v
        if 1 < v <= 100:
            return v / 100
    return None


def parse_confidence(text: str) -> float | None:
    """A stated confidence in [0, 1]: percent, fraction, 0-1 or 0-100 number, or words. None if absent.

    The 'Confidence:' field is read first, then the last line mentioning confidence, then words.

    >>> [parse_confidence(t) for t in ["Confidence: 85%", "confidence 0.7", "confidence about 3/4", "Confidence: 90",
    ...  "I am very confident", "no idea"]]
    [0.85, 0.7, 0.75, 0.9, 0.9, None]
    """
    if not text:
        return None
    low = text.lower()
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
    """Aggregate K sampled (answer, confidence) pairs into one (Xiong et al.).

    >>> aggregate(["a", "a", "b", None], [0.9, 0.5, 0.8, 0.4], "consistency")["conf"]
    0.6666666666666666
    >>> r = aggregate(["a", "a", "b"], [0.9, 0.5, 0.6], "avg_conf"); r["answer"], round(r["conf"], 3)
    ('a', 0.7)
    """
    if method not in ("consistency", "avg_conf"):
        raise ValueError(f"aggregation must be 'consistency' or 'avg_conf', got {method!r}")
    valid = [(a, c) for a, c in zip(answers, confs) if a is not None and (method == "consistency" or c is not None)]
    dropped = len(answers) - len(valid)
    if not valid:
        return {"answer": None, "conf": None, "n_used": 0, "n_dropped": dropped}
    counts = Counter(a for a, _ in valid)
    if method == "consistency":
        ans, k = max(counts.items(), key=lambda kv: (kv[1], -[a for a, _ in valid].index(kv[0])))
        return {"answer": ans, "conf": k / len(valid), "n_used": len(valid), "n_dropped": dropped}
    total = sum(c for _, c in valid)
    if total <= 0:  # all stated zero confidence: fall back to vote shares
        share = {a: k / len(valid) for a, k in counts.items()}
    else:
        share = {}
        for a, c in valid:
            share[a] = share.get(a, 0.0) + c / total
    ans = max(share, key=lambda a: (share[a], -[x for x, _ in valid].index(a)))
    return {"answer": ans, "conf": share[ans], "n_used": len(valid), "n_dropped": dropped}
