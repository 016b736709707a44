"""The MATH^2 question pipeline, stage by stage (Shah et al., arXiv 2407.21009, Sec. 2):

1. skill-pair validation: the model judges whether two coarse skills are too similar; similar pairs
   are rejected (an unreadable verdict rejects only with ``reject_unreadable_pairs``);
2. question generation: a question plus brief solution needing both skills, prompted with each
   skill's exemplars and a worked generation turn placed before the request (multi-turn exemplar);
3. attempted solution by a "defeatist" solver that hunts for flaws in the question;
4. question validation: the validator sees each skill with ``n_exemplars`` exemplar Q/A pairs, the
   question and the attempted solution, checks the paper's rubric and ends with
   ``# FINAL ANSWER`` Yes/No; ``n_validation_votes`` samples, strict majority of Yes passes;
5. final solution: ``n_final_solutions`` samples, answers grouped by math-verify equivalence; the
   largest group's answer is the reference; a question whose samples all disagree is dropped.
Step 6, human verification and edits, is the annotation store and the review widget.

Each candidate keeps every stage's prompt, raw outputs, parsed values and decision so a reviewer can
see why it was kept or dropped. Each stage is ONE batched ``generate`` call over all live candidates.

Reconstruction (the paper is silent): sampling temperatures, the number of validator votes (3), the
tie rule of the final vote (``drop_ties``), unreadable validator verdicts as their own category (never
"No": a question whose votes cannot be read is dropped as ``validation_unreadable``, counted apart),
unreadable pair verdicts letting the pair through (``reject_unreadable_pairs``), the structured forms
of every stage (``structured``, see :mod:`workbench.math2.structured`), the math-verify check of the
generator's ``Computation:`` line, and the exact prompt wording (the paper's prompts are long
GPT-4/Claude prompts; ours are short rewrites of their rubric).
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..llm import SamplingParams
from ..seeding import derive_seed, make_rng
from ..tasks.math_answers import answers_equivalent
from .parsing import generation_example, render_fmt
from .structured import (Parsed, answer_structure, generation_structure, parse_generation, parse_solution_answer,
                         parse_verdict, tally, verdict_structure, verify_computation)
from .skills import exemplar_block

STAGES = ("pair_validation", "generation", "attempt", "validation", "final_solution")


def sample_pairs(skill_names: Sequence[str], n_pairs: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``n_pairs`` distinct unordered pairs of distinct skills, uniformly without replacement.

    >>> sorted(sample_pairs(["c", "a", "b"], 3, np.random.default_rng(0)))
    [('a', 'b'), ('a', 'c'), ('b', 'c')]
    """
    names = sorted(skill_names)
    all_pairs = list(itertools.combinations(names, 2))
    if n_pairs > len(all_pairs):
        raise ValueError(f"asked for {n_pairs} skill pairs but {len(names)} skills make only {len(all_pairs)}")
    idx = rng.choice(len(all_pairs), size=n_pairs, replace=False)
    return [all_pairs[i] for i in idx]


def majority_answer(answers: Sequence[str | None], *, drop_ties: bool = True) -> dict[str, Any]:
    """Group answers by math-verify equivalence; the largest group wins.

    Returns ``{"answer", "votes", "groups", "n_parsed", "decision"}``; ``decision`` is ``keep``,
    ``all_disagree`` (every parsed answer differs, or fewer than two parsed), ``tie`` (dropped only
    when ``drop_ties``) or ``no_answer``.

    >>> majority_answer(["1/2", "0.5", "3", None])["answer"], majority_answer(["1/2", "0.5", "3"])["votes"]
    ('1/2', 2)
    >>> majority_answer(["1", "2", "3", "4"])["decision"], majority_answer(["1", "1", "2", "2"])["decision"]
    ('all_disagree', 'tie')
    """
    groups: list[list[str]] = []
    for a in answers:
        if a is None:
            continue
        for g in groups:
            if answers_equivalent(a, g[0]):
                g.append(a)
                break
        else:
            groups.append([a])
    n_parsed = sum(len(g) for g in groups)
    if not groups:
        return {"answer": None, "votes": 0, "groups": [], "n_parsed": 0, "decision": "no_answer"}
    groups.sort(key=len, reverse=True)  # stable: ties keep first-seen order
    top = len(groups[0])
    if top < 2:
        decision = "all_disagree"
    elif len(groups) > 1 and len(groups[1]) == top:
        decision = "tie" if drop_ties else "keep"
    else:
        decision = "keep"
    return {"answer": groups[0][0], "votes": top, "groups": [[g[0], len(g)] for g in groups],
            "n_parsed": n_parsed, "decision": decision}


def _params(cfg, max_tokens: int, n: int = 1, stop: tuple[str, ...] = (), structure=None,
            temperature: float | None = None) -> SamplingParams:
    return SamplingParams(temperature=cfg.temperature if temperature is None else temperature, top_p=cfg.top_p,
                          max_tokens=max_tokens, n=n, stop=stop, structure=structure if cfg.structured else None)


def _group(comps, n_prompts: int, n: int) -> list[list]:
    """Prompt-major flat completions -> per prompt list of completions."""
    out: list[list] = [[None] * n for _ in range(n_prompts)]
    for c in comps:
        out[c.index][c.sample] = c
    return out


def _drop(cand: dict, stage: str, reason: str) -> None:
    cand["status"], cand["dropped_at"], cand["reason"] = "dropped", stage, reason


def vote_decision(votes: Sequence[bool | None], min_readable: int = 1) -> dict[str, Any]:
    """The validator's decision from its votes (True = Yes, False = No, None = unreadable).

    Unreadable votes are their own category, never "No": the decision is ``pass`` when more readable
    votes say Yes than No, ``fail`` otherwise, and ``unreadable`` when fewer than ``min_readable`` votes
    could be read (reconstruction; the paper takes a majority of readable GPT-4 verdicts).

    >>> vote_decision([True, None, None])["decision"], vote_decision([None, None, None])["decision"]
    ('pass', 'unreadable')
    >>> vote_decision([True, False, None])["decision"], vote_decision([True, True, False])["decision"]
    ('fail', 'pass')
    """
    yes = sum(v is True for v in votes)
    no = sum(v is False for v in votes)
    bad = sum(v is None for v in votes)
    if yes + no < min_readable:
        decision = "unreadable"
    else:
        decision = "pass" if yes > no else "fail"
    return {"decision": decision, "yes": yes, "no": no, "unreadable": bad}


def stage_structures(cfg) -> dict[str, Any]:
    """The structure each pipeline stage decodes under (None for all when ``cfg.structured`` is off)."""
    if not cfg.structured:
        return {s: None for s in STAGES}
    verdict = verdict_structure(cfg.verdict_reasoning_chars)
    answer = answer_structure(cfg.answer_reasoning_chars)
    return {"pair_validation": verdict, "generation": generation_structure(cfg.question_max_chars, cfg.solution_max_chars),
            "attempt": answer, "validation": verdict, "final_solution": answer}


def generation_chat(skill_a: dict, skill_b: dict, name_a: str, name_b: str, n_ex: int, n_turns: int,
                    structured: bool = False) -> list[dict]:
    """The generation request as a chat: ``n_turns`` worked example turns, then the real request."""
    chat: list[dict] = []
    ex = generation_example()
    for _ in range(min(n_turns, 1)):  # one worked example ships with the project
        chat.append({"role": "user", "content": render_fmt("generate_question", structured, skill_a=ex["skill_a"],
                                                           skill_b=ex["skill_b"], exemplars_a=ex["exemplars_a"],
                                                           exemplars_b=ex["exemplars_b"])})
        chat.append({"role": "assistant", "content": ex["response_structured" if structured else "response"]})
    chat.append({"role": "user", "content": render_fmt(
        "generate_question", structured, skill_a=name_a, skill_b=name_b,
        exemplars_a=exemplar_block(skill_a, n_ex, with_answers=False),
        exemplars_b=exemplar_block(skill_b, n_ex, with_answers=False))})
    return chat


def run_pipeline(repo: dict, llm, cfg, *, progress: bool = True) -> dict[str, Any]:
    """Run the five stages for ``cfg.n_pairs`` random skill pairs of ``repo``.

    Returns ``{"candidates": [...], "yields": {stage: survivors}, "unparsed": {stage: count},
    "parse": {stage: tally}}`` (``tally``: strict / lenient-only / unparsed / truncated counts and shares
    over every output of the stage). A candidate: ``{"id", "skills": [a, b], "status": kept|dropped,
    "dropped_at", "reason", "question", "answer", "generator_answer", "verification", "stages": {stage:
    {"prompt", "raw": [...], "parsed": ..., "how": [...], "truncated": [...], "decision"}}}``.
    """
    skills = repo["skills"]
    names = [s for s in skills if skills[s]["exemplars"]]
    if len(names) < 2:
        raise ValueError(f"the skill repository needs at least two skills with exemplars, has {len(names)}")
    rng = make_rng(cfg.seed, "pairs")
    pairs = sample_pairs(names, min(cfg.n_pairs, len(names) * (len(names) - 1) // 2), rng)
    cands = [{"id": f"q{cfg.seed}-{i:03d}", "skills": [a, b], "status": "live", "dropped_at": None, "reason": None,
              "question": None, "answer": None, "generator_answer": None, "verification": None, "stages": {}}
             for i, (a, b) in enumerate(pairs)]
    parsed_all: dict[str, list[Parsed]] = {s: [] for s in STAGES}
    yields = {"pairs_sampled": len(cands)}
    st = stage_structures(cfg)
    fmt = bool(cfg.structured)
    lenient = cfg.lenient_parsing
    bar = tqdm(total=len(STAGES), desc="math2 pipeline", disable=not progress)

    def live():
        return [c for c in cands if c["status"] == "live"]

    def record(c, stage, prompt, comps, results, **extra):
        parsed_all[stage].extend(results)
        c["stages"][stage] = {"prompt": prompt, "raw": [x.text for x in comps],
                              "how": [p.how for p in results], "truncated": [p.truncated for p in results], **extra}

    # 1. skill-pair validation
    batch = live()
    prompts = [render_fmt("validate_pair", fmt, skill_a=a, skill_b=b, example_a=skills[a]["exemplars"][0]["question"],
                          example_b=skills[b]["exemplars"][0]["question"])
               for a, b in (c["skills"] for c in batch)]
    if batch:
        comps = llm.generate(prompts, _params(cfg, cfg.pair_max_tokens, structure=st["pair_validation"]),
                             seeds=[derive_seed(cfg.seed, "pair", c["id"]) for c in batch])
        for c, p, comp in zip(batch, prompts, comps):
            r = parse_verdict(comp.text, comp.finish_reason == "length")
            v = r.used(lenient)
            record(c, "pair_validation", p, [comp], [r], parsed=v,
                   decision="distinct" if v else ("too_similar" if v is False else "unreadable"))
            if v is False:
                _drop(c, "pair_validation", "skills judged too similar")
            elif v is None and cfg.reject_unreadable_pairs:
                _drop(c, "pair_validation", "pair verdict unreadable")
    yields["pair_validation"] = len(live())
    bar.update()

    # 2. question generation (multi-turn exemplar)
    batch = live()
    if batch:
        chats = [generation_chat(skills[a], skills[b], a, b, cfg.n_exemplars, cfg.n_generation_examples, fmt)
                 for a, b in (c["skills"] for c in batch)]
        comps = llm.generate(chats, _params(cfg, cfg.generation_max_tokens, structure=st["generation"]),
                             seeds=[derive_seed(cfg.seed, "generate", c["id"]) for c in batch])
        for c, chat, comp in zip(batch, chats, comps):
            r = parse_generation(comp.text, comp.finish_reason == "length")
            g = r.used(lenient)
            record(c, "generation", chat, [comp], [r], parsed=r.value,
                   decision="parsed" if g else ("lenient_only" if r.how == "lenient" else "unparsed"))
            if g is None:
                _drop(c, "generation", "no question in the asked format" if r.how == "lenient"
                      else "no question found in the generator's output")
            else:
                c["question"], c["generator_answer"] = g["question"], g["answer"]
                c["verification"] = verify_computation(g.get("computation"), g["answer"], g["question"],
                                                       cfg.verify_numbers_from_question)
    yields["generation"] = len(live())
    bar.update()

    # 3. attempted solution by a flaw-seeking solver
    batch = live()
    if batch:
        prompts = [render_fmt("attempt_solution", fmt, question=c["question"]) for c in batch]
        comps = llm.generate(prompts, _params(cfg, cfg.attempt_max_tokens, structure=st["attempt"]),
                             seeds=[derive_seed(cfg.seed, "attempt", c["id"]) for c in batch])
        for c, p, comp in zip(batch, prompts, comps):
            r = parse_solution_answer(comp.text, comp.finish_reason == "length")
            record(c, "attempt", p, [comp], [r], parsed=r.used(lenient), decision="attempted")
    yields["attempt"] = len(live())
    bar.update()

    # 4. rubric validation with a vote
    batch = live()
    if batch:
        prompts = [render_fmt("validate_question", fmt, skill_a=a, skill_b=b,
                              exemplars_a=exemplar_block(skills[a], cfg.n_exemplars),
                              exemplars_b=exemplar_block(skills[b], cfg.n_exemplars),
                              question=c["question"], attempt=c["stages"]["attempt"]["raw"][0].strip() or "(empty)")
                   for c, (a, b) in ((c, c["skills"]) for c in batch)]
        k = cfg.n_validation_votes
        comps = llm.generate(prompts, _params(cfg, cfg.validation_max_tokens, n=k, structure=st["validation"]),
                             seeds=[derive_seed(cfg.seed, "validate", c["id"]) for c in batch])
        for c, p, row in zip(batch, prompts, _group(comps, len(batch), k)):
            rs = [parse_verdict(x.text, x.finish_reason == "length") for x in row]
            votes = [r.used(lenient) for r in rs]
            d = vote_decision(votes, cfg.min_readable_votes)
            tallytxt = f"{d['yes']} yes, {d['no']} no, {d['unreadable']} unreadable of {k}"
            record(c, "validation", p, row, rs, parsed=votes, vote=d, decision=f"{d['decision']} ({tallytxt})")
            if d["decision"] == "fail":
                _drop(c, "validation", f"validator said No ({tallytxt})")
            elif d["decision"] == "unreadable":
                _drop(c, "validation_unreadable", f"validator verdicts unreadable ({tallytxt})")
    yields["validation"] = len(live())
    bar.update()

    # 5. final solution by majority vote (questions that failed validation are solved too when
    #    cfg.eval_include_dropped, so their would-be answers can be inspected; they stay dropped)
    batch = [c for c in cands if c["status"] == "live" or (cfg.eval_include_dropped and c["question"])]
    if batch:
        prompts = [render_fmt("final_solution", fmt, question=c["question"]) for c in batch]
        k = cfg.n_final_solutions
        comps = llm.generate(prompts, _params(cfg, cfg.final_max_tokens, n=k, structure=st["final_solution"],
                                              temperature=cfg.final_temperature),
                             seeds=[derive_seed(cfg.seed, "final", c["id"]) for c in batch])
        for c, p, row in zip(batch, prompts, _group(comps, len(batch), k)):
            rs = [parse_solution_answer(x.text, x.finish_reason == "length") for x in row]
            answers = [r.used(lenient) for r in rs]
            m = majority_answer(answers, drop_ties=cfg.drop_ties)
            record(c, "final_solution", p, row, rs, parsed=answers, vote=m, decision=m["decision"])
            if m["decision"] == "keep":
                c["answer"] = m["answer"]
            if c["status"] == "live":
                if m["decision"] == "keep":
                    c["status"] = "kept"
                else:
                    _drop(c, "final_solution", {"all_disagree": "final solutions all disagree (ambiguous)",
                                                "tie": "final solutions tie", "no_answer": "no final answer readable"}
                          [m["decision"]])
    yields["final_solution"] = sum(c["status"] == "kept" for c in cands)
    bar.update()
    bar.close()
    parse = {s: tally(v) for s, v in parsed_all.items()}
    return {"candidates": cands, "yields": yields, "unparsed": {s: t["unparsed"] for s, t in parse.items()},
            "parse": parse}
