"""Tests of the structured MATH^2 path (workbench.math2.structured and its use in the pipeline): every
strict / lenient / unparsed parser case, truncation flags, the tallies, unreadable verdicts as their own
category (never "No"), labels chosen from the extracted skill list, the math-verify check of a generated
Computation line, and the gold rule of the square-law evaluation (never the model's own majority by
default). Scripted backends check every scripted text against the requested structure, so a structure
the pipeline asks for and a text it could never produce fail loudly."""
from __future__ import annotations

import re

import pytest

from workbench.llm import load_llm
from workbench.math2 import Config, run, run_pipeline
from workbench.math2.evaluate import binomial_se, evaluate, generated_gold
from workbench.math2.pipeline import stage_structures, vote_decision
from workbench.math2.skills import assign_skills, label_skills, reassign
from workbench.math2.structured import (Parsed, answer_structure, generation_structure, label_structure, parse_generation,
                                        parse_label, parse_solution_answer, parse_verdict, skill_choice, tally,
                                        verdict_structure, verify_computation)


def text_of(prompt):
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


# ------------------------------------------------------------------------------- verdict parser
@pytest.mark.parametrize("text, value, how", [
    ("They differ.<answer>Yes</answer>", True, "strict"),
    ("Too close.<answer>No</answer>", False, "strict"),
    ("# REASONING\nok\n# FINAL ANSWER\nNo", False, "strict"),          # the paper's form
    ("# FINAL ANSWER: Yes", True, "strict"),
    ("Yes, they are different.", True, "lenient"),                    # yes/no last line: fallback only
    ("I think the answer is no", False, "lenient"),                  # lone word: fallback only
    ("# FINAL ANSWER: Yes\n# FINAL ANSWER: No", None, "none"),          # contradicting finals
    ("I like turtles", None, "none"),
    ("", None, "none"),
    ("Both needed.<answer>Yes</answer> and more text", True, "lenient"),  # the tag must close the output
])
def test_parse_verdict_cases(text, value, how):
    r = parse_verdict(text)
    assert (r.value, r.how) == (value, how)


def test_unreadable_verdict_is_never_no():
    r = parse_verdict("the question is fine")
    assert r.value is None and r.used(lenient=True) is None and r.used(lenient=False) is None
    assert vote_decision([None, None, None])["decision"] == "unreadable"
    # one readable Yes and two unreadable: the unreadable votes do not count against it
    assert vote_decision([True, None, None]) == {"decision": "pass", "yes": 1, "no": 0, "unreadable": 2}
    assert vote_decision([True, False, None])["decision"] == "fail"  # a tie is not a Yes majority
    assert vote_decision([True, None, None], min_readable=2)["decision"] == "unreadable"


def test_lenient_values_enter_decisions_only_when_asked():
    r = parse_verdict("Yes, they are different.")
    assert r.used(lenient=False) is None and r.used(lenient=True) is True


# -------------------------------------------------------------------------------- answer parser
@pytest.mark.parametrize("text, value, how", [
    ("3 + 4 = 7. <answer>7</answer>", "7", "strict"),
    ("first <answer>2</answer> then <answer>3/4</answer>", "3/4", "strict"),   # the last tag
    ("so \\boxed{12}", "12", "strict"),                                        # the paper's form
    ("<answer>1,200</answer>", "1200", "strict"),
    ("it is <answer>4", "4", "lenient"),                                      # cut before the tag closed
    ("The answer is 7.", "7", "lenient"),
    ("x = 3 + 4 = 7", "7", "lenient"),
    ("I do not know", None, "none"),
    ("", None, "none"),
])
def test_parse_solution_answer_cases(text, value, how):
    r = parse_solution_answer(text)
    assert (r.value, r.how) == (value, how)


# ---------------------------------------------------------------------------- generation parser
GOOD_GEN = ("# QUESTION\nA box holds 12 pens and 25% are red. How many pens are red?\n# SOLUTION\n"
            "A quarter of the pens.\nComputation: 12 * 25 / 100 = \\boxed{3}")


def test_parse_generation_cases():
    r = parse_generation(GOOD_GEN)
    assert r.how == "strict" and r.value["answer"] == "3" and r.value["computation"] == "12 * 25 / 100"
    assert r.value["question"].startswith("A box holds 12 pens")
    r = parse_generation("Question: What is 2% of 50?\nSolution: 1")
    assert r.how == "lenient" and r.value["question"] == "What is 2% of 50?"
    r = parse_generation("# QUESTION\nWhat is 2% of 50 apples?\n# SOLUTION\nIt is 1.")  # no boxed answer
    assert r.how == "lenient" and r.value["computation"] is None
    assert parse_generation("# QUESTION\n<the question>\n# SOLUTION\n<a brief solution>").how == "none"
    assert parse_generation("").how == "none"


def test_generation_structure_accepts_the_worked_example():
    from workbench.math2.parsing import generation_example

    ex = generation_example()["response_structured"]
    g = generation_structure(240, 160)
    assert g.matches(ex)
    assert not g.matches(ex.replace("Computation:", "Result:"))
    assert not g.matches("# QUESTION\nshort\n# SOLUTION\nx\nComputation: 1 + 1 = \\boxed{2}")  # question < 20 chars
    assert parse_generation(ex).how == "strict"


# ---------------------------------------------------------------------------------- label parser
@pytest.mark.parametrize("text, value, how", [
    ("SKILL: Area of Triangles", "area of triangles", "strict"),
    ("Sure!\nSKILL: fractions", "fractions", "lenient"),            # not the first line: fallback
    ("<skill>fractions</skill>", "fractions", "lenient"),
    ("This problem requires a combination of algebraic thinking and", "algebraic thinking", "lenient"),
    ("SKILL: <skill name>", None, "none"),
    ("", None, "none"),
])
def test_parse_label_free_cases(text, value, how):
    r = parse_label(text)
    assert (r.value, r.how) == (value, how)


@pytest.mark.parametrize("text, value, how", [
    ("percentages", "percentages", "strict"),
    ("I would say percentages here", "percentages", "lenient"),
    ("fractions or percentages", None, "none"),                    # two names: ambiguous
    ("linear equations", None, "none"),                            # not in the list
    ("area of triangles", "area of triangles", "strict"),
    ("it is the area of triangles", "area of triangles", "lenient"),  # "area" inside it is not a second hit
])
def test_parse_label_choice_cases(text, value, how):
    r = parse_label(text, choices=["fractions", "percentages", "area", "area of triangles"])
    assert (r.value, r.how) == (value, how)


def test_structures_accept_what_the_parsers_read_strictly():
    assert label_structure().matches("SKILL: area of triangles")
    assert parse_label("SKILL: area of triangles").how == "strict"
    v = verdict_structure(50)
    assert v.matches("fine.<answer>No</answer>") and parse_verdict("fine.<answer>No</answer>").how == "strict"
    assert not v.matches("x" * 51 + "<answer>No</answer>")
    a = answer_structure(40)
    for ans in ("7", "-3", "2.5", "3/4"):
        assert a.matches(f"ok <answer>{ans}</answer>") and parse_solution_answer(f"ok <answer>{ans}</answer>").value == ans
    assert skill_choice(["b", "a", "b"]).options == ("a", "b")
    with pytest.raises(ValueError, match="skill list is empty"):
        skill_choice([])


def test_stage_structures_follow_config():
    st = stage_structures(Config(structured=True, verdict_reasoning_chars=33))
    assert st["validation"].max_reasoning_chars == 33 and st["pair_validation"] == st["validation"]
    assert all(v is None for v in stage_structures(Config(structured=False)).values())


# ----------------------------------------------------------------------------------- tallies
def test_tally_counts_each_kind_and_truncation():
    ps = [Parsed("a", "strict"), Parsed("b", "strict", True), Parsed("c", "lenient"), Parsed(None, "none", True)]
    t = tally(ps)
    assert (t["n"], t["strict"], t["lenient_only"], t["unparsed"], t["truncated"]) == (4, 2, 1, 1, 2)
    assert t["strict_share"] == 0.5 and t["truncated_share"] == 0.5
    assert tally([])["strict_share"] is None


# ----------------------------------------------------------------------- math-verify of solutions
@pytest.mark.parametrize("comp, ans, question, ok", [
    ("12 * 25 / 100", "3", "12 pens, 25% red", True),
    ("12 * 25 / 100", "3.0", "12 pens, 25% red", True),          # math-verify: 3.0 == 3
    ("1 / 2 + 1 / 4", "3/4", "add 1/2 and 1/4", True),
    ("12 * 25 / 100", "4", "12 pens, 25% red", False),           # wrong arithmetic
    ("12 * 30 / 100", "3.6", "12 pens, 25% red", False),         # 30 is not in the question
    ("3", "3", "3 cats", False),                                 # no operation
    ("x + 2", "3", "x + 2", False),                              # not plain arithmetic
    (None, "3", "q", False),
])
def test_verify_computation(comp, ans, question, ok):
    assert verify_computation(comp, ans, question)["verified"] is ok


def test_verify_computation_numbers_rule_is_a_switch():
    assert verify_computation("12 * 30 / 100", "3.6", "12 pens", numbers_from_question=False)["verified"]


# ------------------------------------------------------------------------------ gold and scoring
def _cand(i, status="kept", answer="3", gen="3", verified=True):
    return {"id": f"q{i}", "question": f"question {i}", "status": status, "answer": answer, "generator_answer": gen,
            "skills": ["a", "b"], "verification": {"verified": verified}}


def test_generated_gold_never_the_majority_by_default():
    cands = [_cand(0, answer="5", gen="3"), _cand(1, verified=False), _cand(2, status="dropped")]
    probs, left = generated_gold(cands)
    assert [p["id"] for p in probs] == ["q0"] and probs[0]["answer"] == "3"  # the verified answer, not 5
    assert left == {"not_kept": 1, "not_verified": 1}
    probs, _ = generated_gold(cands, "majority")
    assert [p["answer"] for p in probs] == ["5", "3"]
    with pytest.raises(ValueError, match="gold must be"):
        generated_gold(cands, "self")
    with pytest.raises(ValueError, match="gold must be"):
        Config(gold="self")


def test_evaluate_headline_is_strict_and_lenient_sits_beside():
    probs = [{"id": str(i), "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(4)]
    replies = {"What is 0 + 1": "0 + 1 = 1 <answer>1</answer>",       # strict, right
               "What is 1 + 1": "1 + 1 = 2, so the answer is 2.",     # lenient only, right
               "What is 2 + 1": "<answer>9</answer>",                  # strict, wrong
               "What is 3 + 1": "no idea"}                             # unparsed
    llm = load_llm("scripted", responses=replies, cache="off")
    ev = evaluate(llm, probs, seed=0, tag="t")
    assert ev["n_correct"] == 1 and ev["accuracy"] == 0.25 and ev["accuracy_lenient"] == 0.5
    assert ev["accuracy_se"] == pytest.approx(binomial_se(0.25, 4)) == pytest.approx((0.25 * 0.75 / 4) ** 0.5)
    assert (ev["parse"]["strict"], ev["parse"]["lenient_only"], ev["parse"]["unparsed"]) == (2, 1, 1)


# ------------------------------------------------------------------------- structured pipeline
def toy_repo():
    sk = {}
    for name, qs in {"fractions": ["What is 1/2 + 1/4?"], "percentages": ["What is 10% of 50?"],
                     "area": ["Area of a 5 by 3 rectangle?"]}.items():
        sk[name] = {"fine_labels": [name], "exemplars": [{"id": f"{name}{i}", "question": q, "solution": "",
                                                          "answer": "1", "fine_label": name} for i, q in enumerate(qs)]}
    return {"skills": sk, "n_problems": 3, "n_unlabelled": 0}


def structured_responder(validate=("Yes",), final=("3",), gen=GOOD_GEN, pair="Yes"):
    def f(prompt, req):
        t = text_of(prompt)
        if "different enough" in t:
            return f"They differ.<answer>{pair}</answer>"
        if "requires BOTH" in t:
            return gen
        if "skeptical solver" in t:
            return "12 * 25 / 100 = 3 <answer>3</answer>"
        if "checking a new math question" in t:
            v = validate[req.sample % len(validate)]
            return v if "<answer>" in v or "#" in v else f"Fine.<answer>{v}</answer>"
        if "step by step" in t:
            return f"Compute. <answer>{final[req.sample % len(final)]}</answer>"
        return "ok <answer>1</answer>"
    return f


def scfg(**kw):
    base = dict(backend="scripted", n_pairs=1, n_coarse_skills=3, n_validation_votes=3, n_final_solutions=4)
    base.update(kw)
    return Config(**base)


def test_structured_pipeline_keeps_a_valid_question_and_tallies_each_stage():
    llm = load_llm("scripted", responses=structured_responder(), cache="off")
    out = run_pipeline(toy_repo(), llm, scfg(), progress=False)
    c = out["candidates"][0]
    assert c["status"] == "kept" and c["answer"] == "3" and c["verification"]["verified"]
    assert "<answer>Yes</answer>" in c["stages"]["validation"]["prompt"]  # the prompt names the enforced form
    for stage, n in (("pair_validation", 1), ("generation", 1), ("attempt", 1), ("validation", 3),
                     ("final_solution", 4)):
        t = out["parse"][stage]
        assert (t["n"], t["strict"], t["lenient_only"], t["unparsed"], t["truncated"]) == (n, n, 0, 0, 0), stage


def test_structured_pipeline_refuses_texts_the_structure_forbids():
    """The scripted backend checks each text against the requested structure: a free-text verdict under
    the structured default is a loud error, not a silently lenient parse."""
    from workbench.llm.structure import StructureViolationError

    llm = load_llm("scripted", responses=structured_responder(validate=("Yes, fine.",)), cache="off")
    with pytest.raises(StructureViolationError):
        run_pipeline(toy_repo(), llm, scfg(), progress=False)


def test_unreadable_votes_drop_as_their_own_category_not_as_no():
    # free text (structure off), strict parsing: three unreadable votes
    def f(prompt, req):
        t = text_of(prompt)
        if "checking a new math question" in t:
            return "The question seems"
        return structured_responder()(prompt, req)
    llm = load_llm("scripted", responses=f, cache="off")
    out = run_pipeline(toy_repo(), llm, scfg(structured=False), progress=False)
    c = out["candidates"][0]
    assert c["dropped_at"] == "validation_unreadable" and "unreadable" in c["reason"]
    assert c["stages"]["validation"]["vote"] == {"decision": "unreadable", "yes": 0, "no": 0, "unreadable": 3}
    assert out["unparsed"]["validation"] == 3
    # one readable Yes and two unreadable votes pass (before: 1/3 Yes was a fail)
    def g(prompt, req):
        t = text_of(prompt)
        if "checking a new math question" in t:
            return "Fine.<answer>Yes</answer>" if req.sample == 0 else "The question seems"
        return structured_responder()(prompt, req)
    out = run_pipeline(toy_repo(), load_llm("scripted", responses=g, cache="off"), scfg(structured=False),
                       progress=False)
    assert out["candidates"][0]["status"] == "kept"


def test_strict_parsing_drops_lenient_only_generation_unless_asked():
    def f(prompt, req):
        if "requires BOTH" in text_of(prompt):
            return "Question: What is 2% of 50 apples?\nSolution: 1"
        return structured_responder()(prompt, req)
    out = run_pipeline(toy_repo(), load_llm("scripted", responses=f, cache="off"), scfg(structured=False),
                       progress=False)
    c = out["candidates"][0]
    assert c["dropped_at"] == "generation" and "asked format" in c["reason"]
    assert out["parse"]["generation"]["lenient_only"] == 1
    out = run_pipeline(toy_repo(), load_llm("scripted", responses=f, cache="off"),
                       scfg(structured=False, lenient_parsing=True), progress=False)
    assert out["candidates"][0]["question"] == "What is 2% of 50 apples?"


def test_truncated_outputs_are_flagged():
    """A scripted text that fills max_tokens ends with finish_reason 'length'; the stage tally counts it."""
    def f(prompt, req):
        if "different enough" in text_of(prompt):
            return "word " * 200
        return structured_responder()(prompt, req)
    out = run_pipeline(toy_repo(), load_llm("scripted", responses=f, cache="off"),
                       scfg(structured=False, pair_max_tokens=8), progress=False)
    t = out["parse"]["pair_validation"]
    assert t["truncated"] == 1 and t["unparsed"] == 1
    assert out["candidates"][0]["stages"]["pair_validation"]["truncated"] == [True]


# ------------------------------------------------------------------------------- labels from list
SEEDS = [{"id": "a", "question": "What is 1/2 + 1/4?", "answer": "3/4"},
         {"id": "b", "question": "What is 10% of 50?", "answer": "5"},
         {"id": "c", "question": "What is 3/4 - 1/4?", "answer": "1/2"}]


def test_labels_constrained_and_chosen_from_the_extracted_list():
    def f(prompt, req):
        t = text_of(prompt)
        if "What mathematical skill" in t:
            return "SKILL: fraction arithmetic" if "/" in t.split("Solution:")[0] else "SKILL: percentages"
        if "Which one of these math skills" in t:
            assert "- fraction arithmetic\n- percentages" in t  # the extracted list, shown to the model
            return "percentages" if "%" in t else "fraction arithmetic"
        raise AssertionError(t)
    llm = load_llm("scripted", responses=f, cache="off")
    labels = label_skills(SEEDS, llm, seed=0, structured=True, lenient=False)
    assert [r["label"] for r in labels] == ["fraction arithmetic", "percentages", "fraction arithmetic"]
    assert all(r["how"] == "strict" for r in labels)
    from workbench.llm.structure import StructureViolationError
    with pytest.raises(StructureViolationError):  # prose is not a label under the structure
        label_skills(SEEDS, load_llm("scripted", responses={None: "It tests fractions."}, cache="off"), seed=0,
                     structured=True)
    asg = assign_skills(SEEDS, labels, ["percentages", "fraction arithmetic"], llm, seed=0, structured=True)
    assert [a["skill"] for a in asg] == ["fraction arithmetic", "percentages", "fraction arithmetic"]
    clus = reassign({"coarse": {"a": "x", "b": "y", "c": "x"}, "n_unlabelled": 0}, asg)
    assert clus["coarse"] == {"a": "fraction arithmetic", "b": "percentages", "c": "fraction arithmetic"}
    assert clus["coarse_from_clusters"]["a"] == "x" and clus["n_unassigned"] == 0


def test_a_name_outside_the_list_cannot_be_a_label():
    from workbench.llm.structure import StructureViolationError

    llm = load_llm("scripted", responses={None: "geometry"}, cache="off")
    with pytest.raises(StructureViolationError):
        assign_skills(SEEDS, [], ["percentages", "fractions"], llm, seed=0, structured=True)
    # free text: an answer outside the list is unreadable, not a new skill
    asg = assign_skills(SEEDS, [], ["percentages", "fractions"], llm, seed=0, structured=False)
    assert all(a["skill"] is None and a["how"] == "none" for a in asg)


# ---------------------------------------------------------------------------------- full run
def full_structured(prompt, req):
    t = text_of(prompt)
    if "What mathematical skill" in t:
        q = re.search(r"Problem: (.*)", t).group(1)
        return "SKILL: " + ("fractions" if "frac" in q else "percentages" if "%" in q else "arithmetic")
    if "Which one of these math skills" in t:
        q = re.search(r"Problem: (.*)", t).group(1)
        return "fractions" if "frac" in q else "percentages" if "%" in q else "arithmetic"
    if t.startswith("Solve the following math problem. Write"):  # evaluation
        if "A box holds 12 pens" in t:
            return "<answer>3</answer>"
        return "<answer>15</answer>" if "7 + 8" in t else "<answer>0</answer>"
    return structured_responder()(prompt, req)


def test_run_structured_end_to_end_reports_parse_shares_and_verified_gold(tmp_path):
    llm = load_llm("scripted", responses=full_structured, cache="off")
    c = Config(backend="scripted", n_seed_problems=0, n_pairs=2, n_coarse_skills=3)
    res = run(c, llm=llm, out_dir=tmp_path, progress=False)
    s = res["summary"]
    assert s["structured"] and s["gold"] == "verified"
    assert s["yields"]["final_solution"] == 2 and s["n_verified"] == 2
    assert set(s["parse_strict_share"]) >= {"labels", "skill_choice", "questions", "validation", "final_solution",
                                            "eval_seed", "eval_generated"}
    assert all(v == 1.0 for v in s["parse_strict_share"].values())
    assert all(v == 0.0 for v in s["truncated_share"].values())
    assert s["accuracy"]["seed"] == pytest.approx(1 / 24) and s["accuracy"]["generated"] == 1.0
    assert s["accuracy"]["seed_se"] == pytest.approx(binomial_se(1 / 24, 24))
    assert set(res["clustering"]["coarse"].values()) <= {"fractions", "percentages", "arithmetic"}


def test_final_solution_samples_at_their_own_temperature():
    llm = load_llm("scripted", responses=structured_responder(), cache="off")
    seen = []
    orig = llm.generate

    def spy(prompts, params, **kw):
        seen.append(params)
        return orig(prompts, params, **kw)
    llm.generate = spy
    run_pipeline(toy_repo(), llm, scfg(temperature=0.7, final_temperature=0.3), progress=False)
    assert [p.temperature for p in seen] == [0.7, 0.7, 0.7, 0.7, 0.3]
    assert seen[-1].n == 4 and seen[-1].structure is not None and seen[3].structure == seen[0].structure
    seen.clear()
    run_pipeline(toy_repo(), llm, scfg(temperature=0.7, final_temperature=None), progress=False)
    assert seen[-1].temperature == 0.7
    with pytest.raises(ValueError, match="final_temperature"):
        Config(final_temperature=-1)
