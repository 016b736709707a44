"""The interaction loop and its scores.

Each round every unfinished episode's agent returns (hypothesis, intervention, justification) and how
it was read (``Action.mode``: strict, lenient, unparsed). Under the default strict scoring
(``accept="strict"``) only a strictly read answer is used; a lenient-only or unparsed answer is a
malformed round: logged, it costs the round and earns nothing (no intervention, no similarity credit).
A used answer's hypothesis is scored; if its colour-change matrix equals the truth the episode succeeds
in this round, else the oracle performs the intervention and reports which nodes changed. The loop ends
at success or after ``max_rounds`` rounds. An episode's final similarity is that of its last used
hypothesis, and 0 when no round was used (an episode of malformed rounds earns nothing; it is not
credited with the empty graph's similarity).

The lenient view of the same transcript (``lenient_*`` fields; labelled, never the headline): answers
read only by the fallback are credited too (success if any strictly or leniently read hypothesis was
right, final similarity of the last one read either way). Their interventions were not performed under
strict scoring, so this is a bound on what the fallback adds, not a replay. ``accept="lenient"`` runs
the loop on lenient reads instead (the environment then acts on them).

Justification validity (reconstruction; the paper's judge is not public): a round's justification is
valid when it is not a template echo (:func:`is_template_echo`: no words, only words copied in order
from the prompt's instructions, such as "..." or "one short sentence", or an opening copied from them), every past intervention it cites
("intervened on X", "intervening on X changed/showed ...", "intervention on X changed/showed ...") was
performed in an earlier round, and the hypothesis it argues for agrees with every observation so far
(its predicted change row for each performed intervention equals the observed one). Scored over the
used rounds.
"""
from __future__ import annotations

import bisect
import re

import numpy as np

from .agents import Action, EpisodeState, template_text
from .oracles import Oracle


def cited_interventions(text: str, names: list[str]) -> list[int]:
    """Indices of the nodes a justification says were intervened on.

    Only past-tense citations count ("intervened on X", "intervening on X changed ..."); a plan such
    as "next I will intervene on X" is not evidence.

    >>> cited_interventions("intervened on M2 in round 1; intervention on M3 showed M1; intervene on M1",
    ...                     ["M1", "M2", "M3"])
    [1, 2]
    """
    pat = "|".join(re.escape(x) for x in sorted(names, key=len, reverse=True))
    obj = rf"(?:on\s+)?(?:molecule\s+|person\s+)?({pat})\b"
    text = text or ""
    hits = re.findall(rf"intervened\s+{obj}", text, re.I)
    hits += _cited_with_outcome(re.compile(rf"(?:intervening|intervention)\s+{obj}", re.I), text)
    low = [x.lower() for x in names]
    return sorted({low.index(h.lower()) for h in hits})


_OUTCOME = re.compile(r"\b(?:changed|showed|revealed|caused|made|turned)", re.I)
_CLAUSE_END = re.compile(r"[.;\n]")


def _cited_with_outcome(head: re.Pattern, text: str) -> list[str]:
    """Names of ``head`` matches followed, within the same clause (no ``.``, ``;`` or newline between),
    by an outcome verb: ``re.findall(head.pattern + r"[^.;\\n]*?\\b(?:changed|...)", text, re.I)``, with the
    verb and clause-end positions found once (bisect) instead of rescanning the rest of the line from
    every mention (quadratic in the mentions of one long line). One difference, for names no setting
    uses: when a mention has no outcome verb, the regex also retried reading "on"/"molecule"/"person"
    as the start of a name (or a name holding an outcome verb); this scan does not."""
    verbs = [(m.start(), m.end()) for m in _OUTCOME.finditer(text)]
    starts = [v[0] for v in verbs]
    stops = [m.start() for m in _CLAUSE_END.finditer(text)]
    out, pos = [], 0
    while True:
        h = head.search(text, pos)
        if h is None:
            return out
        i, j = bisect.bisect_left(starts, h.end()), bisect.bisect_left(stops, h.end())
        if i < len(verbs) and (j == len(stops) or stops[j] >= verbs[i][0]):
            out.append(h.group(1))
            pos = verbs[i][1]
        else:
            pos = h.start() + 1


_WORD = re.compile(r"[a-z0-9]+")


ECHO_OPENING_WORDS = 3
"""a justification whose first this-many words are copied in order from the instructions is an echo"""


def is_template_echo(text: str, template: str = "") -> bool:
    """Whether a justification says nothing of its own: it has fewer than two words (``"..."``, ``""``,
    ``"M3"``), its words all appear in order and contiguously in ``template`` (the prompt without its
    history: copied placeholder or instruction text), or it opens with :data:`ECHO_OPENING_WORDS` words
    copied that way ("One short sentence explaining the point.", "The next molecule to intervene on is
    M1"). Reconstruction: the paper's judge is not public.

    >>> t = 'justification: one short sentence explaining your hypothesis from the history.'
    >>> [is_template_echo(x, t) for x in ("...", "One short sentence", "one short sentence about M1",
    ...                                   "M1 changed M2, so M1 -> M2.")]
    [True, True, True, False]
    """
    words = _WORD.findall((text or "").lower())
    if len(words) < 2:
        return True
    tw = " " + " ".join(_WORD.findall((template or "").lower())) + " "
    return f" {' '.join(words)} " in tw or (len(words) >= ECHO_OPENING_WORDS
                                            and f" {' '.join(words[:ECHO_OPENING_WORDS])} " in tw)


def consistent_with_history(oracle: Oracle, hyp: np.ndarray, history: list[dict]) -> bool:
    c = oracle.change_matrix(hyp)
    for h in history:
        if h.get("observed") is None:
            continue
        row = np.zeros(oracle.n, dtype=int)
        row[list(h["observed"])] = 1
        if not np.array_equal(c[h["intervention"]], row):
            return False
    return True


def justification_check(oracle: Oracle, action: Action, history: list[dict], template: str = "") -> dict:
    """``template``: the prompt's instructions without the history (see :func:`is_template_echo`)."""
    done = {h["intervention"] for h in history if h.get("observed") is not None}
    just = action.justification or ""
    cites = cited_interventions(just, oracle.names)
    cites_ok = all(i in done for i in cites)
    consistent = consistent_with_history(oracle, action.hypothesis, history)
    echo = is_template_echo(just, template)
    return {"cites": cites, "cites_ok": cites_ok, "consistent": consistent, "echo": echo,
            "valid": (not echo) and cites_ok and consistent}


PARSE_MODES = ("strict", "lenient", "unparsed")


def run_episodes(agent, oracles: list[Oracle], max_rounds: int, seed: int, accept: str = "strict") -> list[dict]:
    """Run one episode per oracle in lockstep (one ``agent.act`` call per round for all active ones).

    ``accept``: "strict" (default; only strictly read answers are used) or "lenient" (fallback reads
    used too). Returns one record per episode: success, rounds (to success, or ``max_rounds``), final
    similarity (of the last used hypothesis; 0 if none), malformed rounds, per-mode round counts
    (``parse_counts``), truncated rounds, justification validity, the lenient view (``lenient_success``,
    ``lenient_final_similarity``) and the per-round ``history`` (hypotheses included, for the viewer)."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    if accept not in ("strict", "lenient"):
        raise ValueError(f"accept must be 'strict' or 'lenient', got {accept!r}")
    used_modes = ("strict",) if accept == "strict" else ("strict", "lenient")
    eps = [{"episode": k, "setting": o.setting, "n": o.n, "names": o.names, "true_adj": o.adj.tolist(),
            "success": False, "rounds": max_rounds, "history": [], "malformed": 0, "just": [],
            "parse_counts": dict.fromkeys(PARSE_MODES, 0), "truncated": 0, "correct_rounds": 0,
            "lenient_success": False, "lenient_last": None, "last_sim": 0.0} for k, o in enumerate(oracles)]
    for t in range(1, max_rounds + 1):
        active = [e for e in eps if not e["success"]]
        if not active:
            break
        states = [EpisodeState(e["episode"], e["setting"], list(e["names"]), t, max_rounds,
                               [{k: h[k] for k in ("round", "intervention", "observed", "malformed")}
                                for h in e["history"]], seed, oracles[e["episode"]].hops) for e in active]
        actions = agent.act(states)
        if len(actions) != len(states):
            raise RuntimeError(f"agent returned {len(actions)} actions for {len(states)} states")
        for e, s, a in zip(active, states, actions):
            o = oracles[e["episode"]]
            rec = {"round": t, "intervention": None, "observed": None, "malformed": False,
                   "hypothesis": None, "justification": a.justification, "raw": a.raw}
            mode = a.mode
            if mode != "unparsed" and a.hypothesis is not None and np.shape(a.hypothesis) != (o.n, o.n):
                a.error, mode = f"hypothesis has shape {np.shape(a.hypothesis)}, expected ({o.n}, {o.n})", "unparsed"
            if mode != "unparsed" and (a.intervention is None or not 0 <= a.intervention < o.n):
                a.error, mode = f"intervention {a.intervention!r} is not a node index", "unparsed"
            if a.error is not None or a.hypothesis is None:
                mode = "unparsed"
            rec["parse"], rec["truncated"] = mode, bool(a.truncated)
            e["parse_counts"][mode] += 1
            e["truncated"] += bool(a.truncated)
            if mode != "unparsed":  # the lenient view: every readable hypothesis
                hyp_l = o.normalise(a.hypothesis)
                e["lenient_last"] = hyp_l
                e["lenient_success"] |= o.is_correct(hyp_l)
            if mode not in used_modes:
                err = a.error or "answer read only by a lenient fallback (strict scoring: not used)"
                if mode == "lenient":
                    rec["lenient_hypothesis"] = o.normalise(a.hypothesis).tolist()
                rec.update(malformed=True, error=err)
                e["malformed"] += 1
                e["history"].append(rec)
                continue
            hyp = o.normalise(a.hypothesis)
            rec["hypothesis"] = hyp.tolist()
            rec["similarity"] = e["last_sim"] = o.similarity(hyp)
            jc = justification_check(o, a, s.history, template_text(s))
            rec["justification_check"] = jc
            e["just"].append(jc["valid"])
            e["last_hyp"] = hyp
            if o.is_correct(hyp):
                rec["correct"] = True
                e["correct_rounds"] += 1
                e["success"], e["rounds"] = True, t
                e["history"].append(rec)
                continue
            rec["correct"] = False
            rec["intervention"] = int(a.intervention)
            rec["observed"] = o.intervene(int(a.intervention))
            e["history"].append(rec)
    out = []
    for e, o in zip(eps, oracles):
        hyp = e.pop("last_hyp", None)
        just = e.pop("just")
        hyp_l = e.pop("lenient_last")
        e["final_similarity"] = e.pop("last_sim")  # 0 when no round was used: a malformed episode earns nothing
        e["final_hypothesis"] = None if hyp is None else hyp.tolist()
        e["exact_match"] = hyp is not None and bool(np.array_equal(hyp, o.adj))
        e["lenient_final_similarity"] = 0.0 if hyp_l is None else o.similarity(hyp_l)
        e["justification_validity"] = float(np.mean(just)) if just else float("nan")
        e["rounds_played"] = len(e["history"])
        e["interventions"] = sum(h["intervention"] is not None for h in e["history"])
        out.append(e)
    return out


def _se(xs) -> float:
    """Standard error of the mean (sample sd / sqrt(k)); NaN below two values."""
    xs = np.asarray(xs, dtype=float)
    return float(xs.std(ddof=1) / np.sqrt(len(xs))) if len(xs) > 1 else float("nan")


def scores(episodes: list[dict]) -> dict:
    """Success rate (and its standard error over episodes), mean rounds to success (successful episodes
    only; NaN if none), mean final similarity (and SE), justification validity (mean over episodes that
    had a used round), the shares of played rounds read strictly / only leniently / not at all
    (``malformed_rate`` = rounds not used), the share truncated, the single-round accuracy (correct
    hypotheses per played round) and the lenient view, labelled ``lenient_*``."""
    if not episodes:
        return {}
    succ = [e for e in episodes if e["success"]]
    jv = [e["justification_validity"] for e in episodes if not np.isnan(e["justification_validity"])]
    played = sum(e["rounds_played"] for e in episodes)
    pc = {m: sum(e["parse_counts"][m] for e in episodes) for m in PARSE_MODES}
    frac = (lambda x: x / played) if played else (lambda x: 0.0)
    return {"success_rate": len(succ) / len(episodes),
            "success_se": _se([e["success"] for e in episodes]),
            "rounds_to_success": float(np.mean([e["rounds"] for e in succ])) if succ else float("nan"),
            "similarity": float(np.mean([e["final_similarity"] for e in episodes])),
            "similarity_se": _se([e["final_similarity"] for e in episodes]),
            "justification_validity": float(np.mean(jv)) if jv else float("nan"),
            "malformed_rate": frac(sum(e["malformed"] for e in episodes)),
            "strict_rate": frac(pc["strict"]), "lenient_only_rate": frac(pc["lenient"]),
            "unparsed_rate": frac(pc["unparsed"]), "truncated_rate": frac(sum(e["truncated"] for e in episodes)),
            "round_accuracy": frac(sum(e["correct_rounds"] for e in episodes)),
            "lenient_success_rate": float(np.mean([e["lenient_success"] or e["success"] for e in episodes])),
            "lenient_similarity": float(np.mean([e["lenient_final_similarity"] for e in episodes])),
            "episodes": len(episodes), "rounds_played": played}
