"""The interaction loop and its scores.

Each round every unfinished episode's agent returns (hypothesis, intervention, justification). A
malformed action (no readable hypothesis or intervention) is logged and costs the round. Otherwise the
hypothesis is scored; if its colour-change matrix equals the truth the episode succeeds in this round,
else the oracle performs the intervention and reports which nodes changed. The loop ends at success or
after ``max_rounds`` rounds.

Justification validity (reconstruction; the paper's judge is not public): a round's justification is
valid when it is non-empty, every past intervention it cites ("intervened on X", "intervening on X
changed/showed ...", "intervention on X changed/showed ...") was performed in an earlier round, and the hypothesis it argues for agrees with every observation so far
(its predicted change row for each performed intervention equals the observed one). Scored over the
well-formed rounds.
"""
from __future__ import annotations

import bisect
import re

import numpy as np

from .agents import Action, EpisodeState
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


def justification_check(oracle: Oracle, action: Action, history: list[dict]) -> dict:
    done = {h["intervention"] for h in history if h.get("observed") is not None}
    cites = cited_interventions(action.justification, oracle.names)
    cites_ok = all(i in done for i in cites)
    consistent = consistent_with_history(oracle, action.hypothesis, history)
    return {"cites": cites, "cites_ok": cites_ok, "consistent": consistent,
            "valid": bool(action.justification.strip()) and cites_ok and consistent}


def run_episodes(agent, oracles: list[Oracle], max_rounds: int, seed: int) -> list[dict]:
    """Run one episode per oracle in lockstep (one ``agent.act`` call per round for all active ones).

    Returns one record per episode: success, rounds (to success, or ``max_rounds``), final similarity
    (of the last well-formed hypothesis; the empty graph if there was none), malformed rounds,
    justification validity, and the per-round ``history`` (hypotheses included, for the viewer)."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be >= 1")
    eps = [{"episode": k, "setting": o.setting, "n": o.n, "names": o.names, "true_adj": o.adj.tolist(),
            "success": False, "rounds": max_rounds, "history": [], "malformed": 0, "just": [],
            "last_hyp": np.zeros((o.n, o.n), dtype=int)} for k, o in enumerate(oracles)]
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
            if a.error is None and a.hypothesis is not None and np.shape(a.hypothesis) != (o.n, o.n):
                a.error = f"hypothesis has shape {np.shape(a.hypothesis)}, expected ({o.n}, {o.n})"
            if a.error is None and (a.intervention is None or not 0 <= a.intervention < o.n):
                a.error = f"intervention {a.intervention!r} is not a node index"
            if a.error is not None:
                rec.update(malformed=True, error=a.error)
                e["malformed"] += 1
                e["history"].append(rec)
                continue
            hyp = o.normalise(a.hypothesis)
            rec["hypothesis"] = hyp.tolist()
            rec["similarity"] = o.similarity(hyp)
            jc = justification_check(o, a, s.history)
            rec["justification_check"] = jc
            e["just"].append(jc["valid"])
            e["last_hyp"] = hyp
            if o.is_correct(hyp):
                rec["correct"] = True
                e["success"], e["rounds"] = True, t
                e["history"].append(rec)
                continue
            rec["correct"] = False
            rec["intervention"] = int(a.intervention)
            rec["observed"] = o.intervene(int(a.intervention))
            e["history"].append(rec)
    out = []
    for e, o in zip(eps, oracles):
        hyp = e.pop("last_hyp")
        just = e.pop("just")
        e["final_similarity"] = o.similarity(hyp)
        e["final_hypothesis"] = hyp.tolist()
        e["exact_match"] = bool(np.array_equal(o.normalise(hyp), o.adj))
        e["justification_validity"] = float(np.mean(just)) if just else float("nan")
        e["rounds_played"] = len(e["history"])
        e["interventions"] = sum(h["intervention"] is not None for h in e["history"])
        out.append(e)
    return out


def scores(episodes: list[dict]) -> dict:
    """Success rate, mean rounds to success (successful episodes only; NaN if none), mean final
    similarity, justification validity (mean over episodes that had a well-formed round) and the
    share of malformed rounds."""
    if not episodes:
        return {}
    succ = [e for e in episodes if e["success"]]
    jv = [e["justification_validity"] for e in episodes if not np.isnan(e["justification_validity"])]
    played = sum(e["rounds_played"] for e in episodes)
    return {"success_rate": len(succ) / len(episodes),
            "rounds_to_success": float(np.mean([e["rounds"] for e in succ])) if succ else float("nan"),
            "similarity": float(np.mean([e["final_similarity"] for e in episodes])),
            "justification_validity": float(np.mean(jv)) if jv else float("nan"),
            "malformed_rate": sum(e["malformed"] for e in episodes) / played if played else 0.0,
            "episodes": len(episodes)}
